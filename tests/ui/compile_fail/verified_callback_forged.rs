// Guarantee (docs/design.md#typestate, R35, A2): a `VerifiedCallback` (permission to exchange the
// upstream code) only comes out of `Gate::verify_callback`, which checks the taken
// transaction record, its MAC, expiry and the browser binding cookie. Its fields are
// private, so the binding check cannot be skipped by building one from a record.
// Expected: E0451 (private fields).
use consent_gate::{HttpRequest, TransactionRecord, VerifiedCallback};

fn skip_binding(record: TransactionRecord) -> VerifiedCallback {
    VerifiedCallback {
        details: record.details().clone(),
        token_request: HttpRequest {
            method: "POST",
            url: String::from("https://github.com/login/oauth/access_token"),
            headers: Vec::new(),
            body: Vec::new(),
        },
        user_endpoint: String::from("https://api.github.com/user"),
        issuer: String::from("https://mcp.example"),
        clear_cookie: String::new(),
    }
}

fn main() {
    let _ = skip_binding;
}
