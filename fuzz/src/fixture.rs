//! The fixed world every surface target runs against: one configuration, two registered
//! clients, and the records of honest flows stopped at each step (a pending consent, an
//! approved transaction, an issued code, a redeemed grant with its refresh token).
//!
//! Built once per process ([`fixture`]) by driving the real core, so the records carry
//! valid MACs and the seed corpus can name their handles. Entropy is the kit's deterministic
//! SplitMix64 stream: the same build always mints the same client ids, forms and codes, which
//! is what lets the committed seeds (`corpus/`) reach the deep paths.

use std::sync::LazyLock;

use consent_gate::{
    Authorization, AuthorizeRequest, BrowserContext, Callback, ClientRecord, CodeRecord,
    ConsentForm, ConsentPolicy, Decision, Gate, GrantRecord, PendingConsent, RefreshRecord,
    StoreKey, TokenRequest, TransactionRecord, UnixTime, UpstreamResponse,
};
use consent_gate_spec::kit::{self, GateSetup, Nav};

/// Our issuer (https: cookies carry the `__Host-` prefix, as in production).
pub const ISSUER: &str = kit::HTTPS_ISSUER;
/// The MCP resource.
pub const RESOURCE: &str = "https://mcp.example/mcp";
/// The RFC 7636 appendix B verifier; every fixture flow uses its challenge.
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
/// `S256(VERIFIER)`.
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
/// The instant every surface target runs at.
pub const NOW: UnixTime = kit::T0;
/// GitHub's token success (docs/upstreams.md#f5).
pub const F5: &[u8] = br#"{"access_token":"gho_16C7e42F292c6912E7710c838347Ae178B4a","token_type":"bearer","scope":"read:user,user:email"}"#;
/// GitHub's `GET /user` (docs/upstreams.md#f14, trimmed to the members we read plus a few).
pub const F14: &[u8] = br#"{"login":"octocat","id":1,"node_id":"MDQ6VXNlcjE=","type":"User","site_admin":false,"name":"monalisa octocat","email":null}"#;

/// The core's fault switches (in builds with `RUSTFLAGS="--cfg consent_gate_faults"`,
/// which `.ci/fuzz` sets), or the spec crate's one-valued stand-in in other builds: one
/// type for every checker.
pub use consent_gate_spec::Faults;

/// The fault switches named by `CG_FAULT` (a name from `consent_gate::Faults::ALL`), read
/// once.
///
/// CI sets it to prove that the checkers are not vacuous: with a fault on, the `flow`
/// target must crash. An unknown name is a configuration error and panics at start-up,
/// so a typo in CI cannot turn the self-test into a silent pass; so is any name in a build
/// without `--cfg consent_gate_faults`, which has no switches to turn on.
pub fn faults_from_env() -> Faults {
    match std::env::var("CG_FAULT") {
        Err(_) => Faults::NONE,
        Ok(name) if name.is_empty() || name == "none" => Faults::NONE,
        #[cfg(consent_gate_faults)]
        Ok(name) => Faults::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| *f)
            .unwrap_or_else(|| panic!("CG_FAULT={name:?} is not one of Faults::ALL")),
        #[cfg(not(consent_gate_faults))]
        Ok(name) => panic!(
            "CG_FAULT={name:?} needs the fault switches: build with RUSTFLAGS=\"--cfg consent_gate_faults\""
        ),
    }
}

/// The configuration every target uses, with a consent policy and fault switches: the
/// kit's gate builder with the real github.com preset (the surface targets feed it GitHub's
/// recorded answers, F5/F14), and a display name with markup in it, since configured text is
/// escaped too (R23): the pages' markup check would see a raw tag.
pub fn gate(policy: ConsentPolicy, faults: Faults) -> Gate {
    let (gate, _) = GateSetup {
        https: true,
        policy,
        faults,
        github_com: true,
        upstream_name: "GitHub <Enterprise> & \"Co\"",
        key: [0x42; 32],
        ..GateSetup::default()
    }
    .build();
    gate
}

/// The kit's deterministic entropy (one SplitMix64 stream): the same build always mints the
/// same client ids, forms and codes, which the committed seeds name.
pub use consent_gate_spec::entropy::SplitMix64;

/// `name=value` of the first `Set-Cookie` whose name starts with `prefix`.
pub fn cookie_pair<'a>(set_cookies: impl Iterator<Item = &'a str>, prefix: &str) -> Option<String> {
    set_cookies
        .filter(|c| c.starts_with(prefix))
        .find_map(|c| c.split(';').next())
        .map(str::to_owned)
}

/// The value of query parameter `name` in a URL (form-decoded).
pub fn query_param(url: &str, name: &str) -> Option<String> {
    form_param(url.split_once('?')?.1.as_bytes(), name)
}

/// The value of parameter `name` in a query string or form body (form-decoded).
pub fn form_param(query: &[u8], name: &str) -> Option<String> {
    url::form_urlencoded::parse(query)
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.into_owned())
}

/// Everything the surface targets look up.
#[derive(Debug)]
pub struct Fixture {
    /// The switches in force (from `CG_FAULT`).
    pub faults: Faults,
    /// `ConsentPolicy::Always`.
    pub gate: Gate,
    /// `ConsentPolicy::Remember`.
    pub remember_gate: Gate,
    /// A public client: `https://app.example/cb` and `http://127.0.0.1/cb`.
    pub public: ClientRecord,
    /// A `client_secret_basic` client with one redirect URI that has a query.
    pub confidential: ClientRecord,
    /// Its secret.
    pub confidential_secret: String,
    /// The fixture browser's `Cookie` pair for the consent binding (`__Host-cg-browser=…`).
    pub browser_cookie: String,
    /// A consent page shown to that browser and not yet answered.
    pub pending: PendingConsent,
    /// The approving form body for it.
    pub consent_body: String,
    /// A transaction approved in that browser, waiting for its callback.
    pub txn: TransactionRecord,
    /// Its binding cookie pair.
    pub binding_cookie: String,
    /// The upstream callback query for it (GitHub shape, with `iss`).
    pub callback_query: String,
    /// An unredeemed code for the public client, and the code itself.
    pub code: CodeRecord,
    /// The code value.
    pub code_value: String,
    /// An unredeemed code for the confidential client, and the code itself.
    pub confidential_code: CodeRecord,
    /// The code value.
    pub confidential_code_value: String,
    /// A grant made by redeeming a code of the public client.
    pub grant: GrantRecord,
    /// Its refresh record and token.
    pub refresh: RefreshRecord,
    /// The refresh token.
    pub refresh_token: String,
    /// An access token of that grant.
    pub access_token: String,
    /// A remember cookie pair minted by `remember_gate` for (public, app.example/cb).
    pub remember_cookie: String,
}

impl Fixture {
    /// The host's client lookup.
    pub fn client(&self, key: &StoreKey) -> Option<&ClientRecord> {
        [&self.public, &self.confidential]
            .into_iter()
            .find(|c| c.key() == *key)
    }

    /// The host's single-use lookups (the fixture keeps each record, so every
    /// iteration can take it again).
    pub fn code(&self, key: &StoreKey) -> Option<CodeRecord> {
        [&self.code, &self.confidential_code]
            .into_iter()
            .find(|c| c.key() == key)
            .cloned()
    }
}

/// The records of one honest flow, stopped at every step: the kit's cookie jar for the
/// fixture browser and the kit's store, into which every step's operations go and out of
/// which each record the surface targets need is taken, as a host would.
struct Steps {
    gate: Gate,
    rng: SplitMix64,
    browser: kit::Browser,
    store: kit::Store,
}

impl Steps {
    fn new(gate: Gate, seed: u64, browser: kit::Browser) -> Self {
        Steps {
            gate,
            rng: SplitMix64(seed),
            browser,
            store: kit::Store::default(),
        }
    }

    fn entropy(&mut self) -> impl FnMut(&mut [u8]) + '_ {
        |b: &mut [u8]| self.rng.fill(b)
    }

    /// The `Cookie` header the fixture browser sends (no Fetch Metadata: the surface
    /// targets vary that themselves).
    fn jar(&self) -> String {
        let headers = self.browser.request(Nav::Direct, NOW);
        headers.context().cookies.to_owned()
    }

    /// The store key of the code `code` (what the token endpoint would take).
    fn code_key(client: &ClientRecord, code: &str) -> StoreKey {
        let body = format!(
            "grant_type=authorization_code&code={code}&code_verifier={VERIFIER}&client_id={}",
            client.client_id()
        );
        TokenRequest::parse(body.as_bytes(), None)
            .expect("fixture token request")
            .record_key()
    }

    fn register(&mut self, json: &str) -> (ClientRecord, Option<String>) {
        let mut e = |b: &mut [u8]| self.rng.fill(b);
        let reg = self
            .gate
            .register(json.as_bytes(), NOW, &mut e)
            .expect("fixture registration");
        let record = reg.record.clone();
        let reply = self.store.apply(reg);
        let body: serde_json::Value = serde_json::from_slice(&reply.body).expect("json");
        let secret = body["client_secret"].as_str().map(str::to_owned);
        (record, secret)
    }

    /// GET /authorize → the pending record and the approving form body.
    fn consent(&mut self, client: &ClientRecord, redirect: &str) -> (PendingConsent, String) {
        let query = format!(
            "response_type=code&client_id={}&redirect_uri={}&state=client-state&code_challenge={CHALLENGE}&code_challenge_method=S256",
            client.client_id(),
            url::form_urlencoded::byte_serialize(redirect.as_bytes()).collect::<String>()
        );
        let req = AuthorizeRequest::parse(query.as_bytes()).expect("fixture query");
        let jar = self.jar();
        let gate = self.gate.clone();
        let out = gate
            .authorize(
                req,
                Some(client),
                BrowserContext::with_cookies(&jar),
                NOW,
                &mut self.entropy(),
            )
            .expect("fixture authorize");
        let Authorization::NeedsConsent(prompt) = out else {
            panic!("fixture: remembered consent under ConsentPolicy::Always")
        };
        let body = format!(
            "tx={}&csrf={}&decision=approve",
            prompt.view().form_tx,
            prompt.view().form_csrf
        );
        let page = self.store.apply(prompt);
        self.browser.apply(&page, NOW);
        let form = ConsentForm::parse(body.as_bytes()).expect("fixture form");
        let pending = self.store.take::<PendingConsent>(&form.pending_key());
        (pending.expect("the pending record was stored"), body)
    }

    /// POST /authorize approve → the transaction, its binding cookie and the callback.
    fn approve(
        &mut self,
        pending: PendingConsent,
        body: &str,
    ) -> (TransactionRecord, String, String) {
        let form = ConsentForm::parse(body.as_bytes()).expect("fixture form");
        let jar = self.jar();
        let Ok(Decision::Approved(consent)) =
            self.gate
                .decide(form, Some(pending), BrowserContext::with_cookies(&jar), NOW)
        else {
            panic!("fixture: approval refused")
        };
        let gate = self.gate.clone();
        let up = gate.upstream_redirect(consent, NOW, &mut self.entropy());
        let state = query_param(up.location(), "state").expect("state");
        let reply = self.store.apply(up);
        let binding = cookie_pair(reply.set_cookies(), "__Host-cg-bind-").expect("binding");
        self.browser.apply(&reply, NOW);
        let query = format!(
            "code=0123456789abcdef0123&state={state}&iss=https%3A%2F%2Fgithub.com%2Flogin%2Foauth"
        );
        let cb = Callback::parse(query.as_bytes()).expect("fixture callback");
        let txn = self.store.take::<TransactionRecord>(&cb.transaction_key());
        (txn.expect("the transaction was stored"), binding, query)
    }

    /// GET /callback + F5 + F14 → the code record and the code.
    fn callback(
        &mut self,
        txn: TransactionRecord,
        query: &str,
        client: &ClientRecord,
    ) -> (CodeRecord, String) {
        let cb = Callback::parse(query.as_bytes()).expect("fixture callback");
        let jar = self.jar();
        let verified = self
            .gate
            .verify_callback(cb, Some(txn), BrowserContext::with_cookies(&jar), NOW)
            .expect("fixture callback verifies");
        let ok = |body| UpstreamResponse {
            status: 200,
            content_type: Some("application/json; charset=utf-8"),
            body,
        };
        let auth = verified.accept_token_response(ok(F5)).expect("F5 accepted");
        let gate = self.gate.clone();
        let issued = gate
            .issue_code(auth, ok(F14), Some(client), NOW, &mut self.entropy())
            .expect("code issued");
        let reply = self.store.apply(issued);
        let location = reply.header("location").unwrap_or_default();
        let code = query_param(location, "code").expect("code");
        let record = self
            .store
            .take::<CodeRecord>(&Self::code_key(client, &code));
        (record.expect("the code was stored"), code)
    }

    fn full(&mut self, client: &ClientRecord, redirect: &str) -> (CodeRecord, String) {
        let (pending, body) = self.consent(client, redirect);
        let (txn, _, query) = self.approve(pending, &body);
        self.callback(txn, &query, client)
    }
}

fn build() -> Fixture {
    let faults = faults_from_env();
    let gate = self::gate(ConsentPolicy::Always, faults);
    let remember_gate = self::gate(ConsentPolicy::Remember, faults);
    let mut s = Steps::new(gate.clone(), 1, kit::Browser::new(ISSUER, kit::VICTIM));
    let (public, _) = s.register(
        r#"{"redirect_uris":["https://app.example/cb","http://127.0.0.1/cb"],"client_name":"App","token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"]}"#,
    );
    let (confidential, secret) = s.register(
        r#"{"redirect_uris":["https://conf.example/cb?x=1"],"client_name":"Confidential","grant_types":["authorization_code","refresh_token"]}"#,
    );
    let confidential_secret = secret.expect("a confidential client gets a secret");

    // A grant with a refresh token and an access token.
    let (redeem_me, redeem_code) = s.full(&public, "https://app.example/cb");
    let body = format!(
        "grant_type=authorization_code&code={redeem_code}&code_verifier={VERIFIER}&client_id={}",
        public.client_id()
    );
    let req = TokenRequest::parse(body.as_bytes(), None).expect("token request");
    let tokens = s
        .gate
        .clone()
        .redeem_code(&req, Some(redeem_me), Some(&public), NOW, &mut s.entropy())
        .expect("redeemed");
    let reply = s.store.apply(tokens);
    let json: serde_json::Value = serde_json::from_slice(&reply.body).expect("json");
    let access_token = json["access_token"].as_str().expect("access").to_owned();
    let refresh_token = json["refresh_token"].as_str().expect("refresh").to_owned();
    let claims = s
        .gate
        .verify_bearer(Some(&format!("Bearer {access_token}")), NOW)
        .expect("a fresh access token verifies");
    let grant = s.store.get::<GrantRecord>(&claims.grant_key());
    let grant = grant.expect("the grant was stored");
    let body = format!(
        "grant_type=refresh_token&refresh_token={refresh_token}&client_id={}",
        public.client_id()
    );
    let req = TokenRequest::parse(body.as_bytes(), None).expect("refresh request");
    let refresh = s.store.get::<RefreshRecord>(&req.record_key());
    let refresh = refresh.expect("the refresh record was stored");

    // Exact, not a port variant: the fixture must build under every fault switch,
    // `redirect_prefix_match` included (port variants are the seeds' business).
    let (code, code_value) = s.full(&public, "http://127.0.0.1/cb");
    let (confidential_code, confidential_code_value) =
        s.full(&confidential, "https://conf.example/cb?x=1");
    let (txn_pending, txn_body) = s.consent(&public, "https://app.example/cb");
    let (txn, binding_cookie, callback_query) = s.approve(txn_pending, &txn_body);
    let (pending, consent_body) = s.consent(&public, "https://app.example/cb");
    let browser = s
        .browser
        .cookie("__Host-cg-browser")
        .expect("the browser cookie");
    let browser_cookie = format!("__Host-cg-browser={browser}");

    // A remembered approval, minted by the Remember gate in the same browser.
    let mut r = Steps::new(remember_gate.clone(), 7, s.browser.clone());
    let (rp, rbody) = r.consent(&public, "https://app.example/cb");
    let _ = r.approve(rp, &rbody);
    let remembered = r
        .browser
        .cookie("__Host-cg-consent")
        .expect("a remember cookie");
    let remember_cookie = format!("__Host-cg-consent={remembered}");

    Fixture {
        faults,
        gate,
        remember_gate,
        public,
        confidential,
        confidential_secret,
        browser_cookie,
        pending,
        consent_body,
        txn,
        binding_cookie,
        callback_query,
        code,
        code_value,
        confidential_code,
        confidential_code_value,
        grant,
        refresh,
        refresh_token,
        access_token,
        remember_cookie,
    }
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(build);

/// The process-wide fixture.
pub fn fixture() -> &'static Fixture {
    &FIXTURE
}
