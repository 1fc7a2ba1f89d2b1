//! Tests that notice a broken check (issue 10, item 7: mutation testing).
//!
//! `cargo mutants` over the security-critical modules showed checks whose mutation no
//! test noticed: a condition of a conjunction dropped, a boundary moved by one, a field
//! left out of a record's MAC. Each test here pins one such check through the public
//! surface, with each condition refused *on its own* and each boundary tried on both
//! sides. Checks only the crate can reach (the remembered-consent cookie, the upstream
//! parsers, the compare and MAC primitives) have unit tests in `src/tests/`. `.ci/mutants`
//! runs cargo-mutants over these modules and fails on a survivor not listed, with its
//! reason, in `.ci/mutants-equivalent.txt`.

mod common;

use common::*;
use consent_gate::*;

// ---------------------------------------------------------------- helpers

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .expect("base64url")
}

/// The flow up to the point where the gate holds the upstream token: `app`'s request
/// approved in `browser`, GitHub's callback verified, its code exchanged.
fn authenticated(host: &mut Host, browser: &mut Browser, app: &App) -> UpstreamAuthenticated {
    let back = host.back_from_github(browser, app);
    let verified = verify(host, browser, &back).expect("a verified callback");
    let answer = host.github.token(verified.token_request());
    verified
        .accept_token_response(answer.as_response())
        .expect("the token exchange")
}

/// `GET /callback?…` up to the verification (the transaction taken first).
fn verify(
    host: &mut Host,
    browser: &Browser,
    url: &str,
) -> Result<VerifiedCallback, CallbackError> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let cb = Callback::parse(query.as_bytes())?;
    let txn = host.store.take::<TransactionRecord>(&cb.transaction_key());
    let headers = browser.request(Nav::CrossSite, host.now);
    host.gate
        .verify_callback(cb, txn, headers.context(), host.now)
}

/// GitHub's answer to the user request of `auth`.
fn user_of(host: &Host, auth: &UpstreamAuthenticated) -> Vec<u8> {
    host.github.user(&auth.user_request()).body
}

fn json_200(body: &[u8]) -> UpstreamResponse<'_> {
    UpstreamResponse {
        status: 200,
        content_type: Some("application/json"),
        body,
    }
}

/// `issue_code` with the registration `client` (looked up again, R38).
fn issue(
    host: &mut Host,
    auth: UpstreamAuthenticated,
    client: Option<&ClientRecord>,
) -> Result<CodeIssued, CallbackError> {
    let user = user_of(host, &auth);
    host.gate
        .issue_code(auth, json_200(&user), client, host.now, &mut host.entropy)
}

fn client_record(host: &Host, client: &Client) -> ClientRecord {
    host.store
        .get::<ClientRecord>(&StoreKey::client(&client.id))
        .expect("registered")
}

fn redeem_body(client: &Client, code: &str, verifier: &str) -> (String, Option<String>) {
    client.token_request(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("code_verifier", verifier),
    ])
}

#[path = "checks/bearer.rs"]
mod bearer;
#[path = "checks/issue_code.rs"]
mod issue_code;
#[path = "checks/registration.rs"]
mod registration;
#[path = "checks/token_endpoint.rs"]
mod token_endpoint;
