//! A deterministic host for the integration tests (`flow.rs`, `attacks.rs`).
//!
//! It plays every party on the IO side of docs/design.md#sans-io the way a deployment would, one
//! protocol step per method:
//!
//! * [`Host`]: the MCP server's HTTP handlers around the [`Gate`], with an in-memory
//!   [`Store`] that *takes* single-use records atomically, before any upstream call
//!   (docs/design.md#store-contract), a controllable clock and the kit's deterministic
//!   entropy;
//! * [`Browser`]: a cookie jar that applies every `Set-Cookie` (including `Max-Age=0`
//!   deletion, `__Host-` rules and SameSite=Lax) and sends the Fetch Metadata a real
//!   browser sends for each kind of navigation ([`Nav`]);
//! * [`App`]: an MCP client (its registration, PKCE pair and `state`), which checks
//!   `state` and `iss` on the redirect it receives, as MCP 2026-07-28 clients do (R47);
//! * [`FakeGithub`]: a GitHub double that, like GitHub for a returning user, approves
//!   without a prompt (docs/upstreams.md#github-returning-user) and answers with GitHub's wire
//!   shapes (docs/upstreams.md#fixtures: F1–F3, F5, F7, F9, F14, F15), including upstream PKCE and
//!   single-use codes.
//!
//! Nothing here decides anything the core should decide: every answer comes from the gate.

// `flow.rs` and `attacks.rs` each use a different subset of this module.
#![allow(dead_code, unused_imports)]

mod browser;
mod github;

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use consent_gate::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

pub use browser::{App, Browser, Client, ConsentFields, Nav};
pub use github::{ATTACKER, FakeGithub, GithubUser, UPSTREAM_CLIENT_ID, UPSTREAM_SECRET, VICTIM};

/// Our issuer in the loopback development configuration.
pub const ISSUER: &str = "http://127.0.0.1:8080";
/// The MCP resource in the loopback development configuration.
pub const RESOURCE: &str = "http://127.0.0.1:8080/mcp";
/// Our issuer in the https configuration.
pub const HTTPS_ISSUER: &str = "https://mcp.example";
/// The start of every test's clock.
pub const T0: UnixTime = UnixTime(1_700_000_000);

/// The core's fault switches (in builds with `RUSTFLAGS="--cfg consent_gate_faults"`), or
/// in other builds the kit's one-valued stand-in, so that the attack scenarios read the same
/// in every build: one type for every checker.
pub use consent_gate_spec::Faults;
/// The server's HMAC key (a second gate with the same key mints tokens we can verify).
pub const SERVER_KEY: [u8; 32] = [7; 32];

/// The RFC 7636 S256 transform.
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Form-encodes name/value pairs.
pub fn encode<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (n, v) in pairs {
        s.append_pair(n, v);
    }
    s.finish()
}

/// One form-encoded component.
pub fn form_component(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The decoded query of a URL (everything after `?`); a repeated name is a test failure.
pub fn query_params(url: &str) -> BTreeMap<String, String> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let mut out = BTreeMap::new();
    for (n, v) in url::form_urlencoded::parse(query.as_bytes()) {
        assert!(
            out.insert(n.to_string(), v.to_string()).is_none(),
            "{n} repeated in {url}"
        );
    }
    out
}

/// The `Location` of a redirect.
pub fn location(reply: &Reply) -> &str {
    reply
        .header("location")
        .expect("a redirect with a Location")
}

/// The body of a page as text.
pub fn html(reply: &Reply) -> String {
    String::from_utf8(reply.body.clone()).expect("UTF-8 page")
}

/// A record as its store would hold it, edited by someone with write access to the store
/// (A16): serialized, changed, deserialized, MAC untouched.
pub fn tamper<T: Serialize + DeserializeOwned>(
    record: &T,
    edit: impl FnOnce(&mut serde_json::Value),
) -> T {
    let mut v = serde_json::to_value(record).expect("records serialize");
    edit(&mut v);
    serde_json::from_value(v).expect("the edited record still deserializes")
}

// ---------------------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------------------

/// A record and the key it is stored under.
pub trait Keyed: Clone {
    /// The record's store key.
    fn store_key(&self) -> StoreKey;
}

macro_rules! keyed {
    ($($t:ty => |$r:ident| $e:expr;)*) => {
        $(impl Keyed for $t {
            fn store_key(&self) -> StoreKey {
                let $r = self;
                $e
            }
        })*
    };
}

keyed! {
    ClientRecord => |r| r.key();
    PendingConsent => |r| *r.key();
    TransactionRecord => |r| *r.key();
    CodeRecord => |r| *r.key();
    GrantRecord => |r| r.key();
    RefreshRecord => |r| *r.key();
}

/// One kind of record, by store key.
#[derive(Clone, Debug)]
pub struct Table<T>(BTreeMap<StoreKey, T>);

impl<T> Default for Table<T> {
    fn default() -> Self {
        Self(BTreeMap::new())
    }
}

impl<T: Keyed> Table<T> {
    /// Stores (or overwrites) a record under its key.
    pub fn put(&mut self, record: T) {
        self.0.insert(record.store_key(), record);
    }
    /// Stores a record only if none is under its key (R63: a refresh successor).
    pub fn put_if_absent(&mut self, record: T) {
        self.0.entry(record.store_key()).or_insert(record);
    }
    /// A copy of the record under `key`.
    pub fn get(&self, key: &StoreKey) -> Option<T> {
        self.0.get(key).cloned()
    }
    /// Get-and-delete in one step: what a real store does atomically (a Redis `GETDEL`, a
    /// `DELETE … RETURNING`); single-threaded here, so trivially atomic.
    pub fn take(&mut self, key: &StoreKey) -> Option<T> {
        self.0.remove(key)
    }
    /// Deletes the record under `key`.
    pub fn delete(&mut self, key: &StoreKey) {
        self.0.remove(key);
    }
    /// How many records are stored.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether none is stored.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Every stored record.
    pub fn all(&self) -> Vec<T> {
        self.0.values().cloned().collect()
    }
}

/// The host's store: one table per record kind.
#[derive(Clone, Debug, Default)]
pub struct Store {
    /// Client registrations.
    pub clients: Table<ClientRecord>,
    /// Consent pages shown and not yet answered (taken on the decision).
    pub pending: Table<PendingConsent>,
    /// Upstream transactions (taken at the callback).
    pub txns: Table<TransactionRecord>,
    /// Authorization codes (taken at the token endpoint, stored back redeemed).
    pub codes: Table<CodeRecord>,
    /// Grants (deleted to revoke).
    pub grants: Table<GrantRecord>,
    /// Refresh tokens (read, never taken: rotation is recorded in the record).
    pub refresh: Table<RefreshRecord>,
}

/// Deterministic entropy: the kit's SplitMix64 stream, so every handle is distinct and
/// every run draws the same sequence.
pub use consent_gate_spec::entropy::SplitMix64;

/// How to configure the gate under test.
#[derive(Clone, Debug)]
pub struct Setup {
    /// https issuer with `__Host-` cookies instead of the loopback development mode.
    pub https: bool,
    /// Another canonical MCP resource than the default.
    pub resource: Option<&'static str>,
    /// The scopes offered to MCP clients.
    pub scopes: Vec<&'static str>,
    /// The consent policy.
    pub policy: ConsentPolicy,
    /// The lifetimes.
    pub lifetimes: Lifetimes,
    /// Whether the gate knows the upstream's RFC 9207 issuer (`UpstreamConfig::issuer`).
    pub upstream_issuer: bool,
    /// Fault switches (only `Faults::NONE` without `--cfg consent_gate_faults`).
    pub faults: Faults,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            https: false,
            resource: None,
            scopes: vec!["mcp"],
            policy: ConsentPolicy::Always,
            lifetimes: Lifetimes::default(),
            upstream_issuer: true,
            faults: Faults::NONE,
        }
    }
}

/// Tokens from the token endpoint.
#[derive(Clone, Debug)]
pub struct Tokens {
    /// The reply as sent.
    pub reply: Reply,
    /// Its JSON body.
    pub json: serde_json::Value,
}

impl Tokens {
    /// The access token.
    pub fn access(&self) -> &str {
        self.json["access_token"].as_str().expect("access_token")
    }
    /// The refresh token, if one was issued.
    pub fn refresh(&self) -> Option<&str> {
        self.json["refresh_token"].as_str()
    }
}

/// A loopback host with one registered public client (refresh allowed), the victim's
/// browser, and an app of that client.
pub fn app_host() -> (Host, Browser, App) {
    let mut host = Host::new();
    let client = host.register_public("Acme Agent", "http://127.0.0.1:9/cb");
    let browser = host.browser(VICTIM);
    let app = App::new(&client, "acme");
    (host, browser, app)
}

/// The MCP server: a gate, its store, a clock, entropy, and the upstream it talks to.
pub struct Host {
    /// The gate under test.
    pub gate: Gate,
    /// The store.
    pub store: Store,
    /// The upstream.
    pub github: FakeGithub,
    /// The clock.
    pub now: UnixTime,
    /// The entropy.
    pub entropy: SplitMix64,
}

impl Host {
    /// The loopback development host with the default policy.
    pub fn new() -> Self {
        Self::with(Setup::default())
    }

    /// A host for `setup`.
    pub fn with(setup: Setup) -> Self {
        let (issuer, gh_base, gh_api) = if setup.https {
            (
                HTTPS_ISSUER,
                "https://github.example",
                "https://api.github.example",
            )
        } else {
            (
                ISSUER,
                "http://127.0.0.1:8080/up",
                "http://127.0.0.1:8080/up/api",
            )
        };
        let resource = setup
            .resource
            .map_or(format!("{issuer}/mcp"), str::to_owned);
        let github = FakeGithub::new(gh_base, gh_api, format!("{issuer}/callback"));
        let mut upstream = UpstreamConfig::custom(
            "GitHub",
            github.authorize_endpoint.clone(),
            github.token_endpoint.clone(),
            github.user_endpoint.clone(),
            UPSTREAM_CLIENT_ID,
            ClientSecret::new(UPSTREAM_SECRET),
        );
        upstream.issuer = setup.upstream_issuer.then(|| github.issuer.clone());
        upstream.scopes = vec!["read:user".into()];
        upstream.subject_prefix = "github:".into();
        let keys = Keys::new(ServerKey::new(&SERVER_KEY).expect("32 bytes"));
        let builder = Config::builder(issuer, resource, upstream, keys)
            .dev_loopback_http(!setup.https)
            .consent_policy(setup.policy)
            .lifetimes(setup.lifetimes)
            .scopes(setup.scopes.iter().copied());
        #[cfg(consent_gate_faults)]
        let builder = builder.faults(setup.faults);
        let gate = Gate::new(builder.build().expect("a valid test configuration"));
        assert_eq!(gate.config().callback_uri(), github.callback());
        Self {
            gate,
            store: Store::default(),
            github,
            now: T0,
            entropy: SplitMix64(0),
        }
    }

    /// Our issuer.
    pub fn issuer(&self) -> String {
        self.gate.config().issuer().to_owned()
    }

    /// Lets time pass.
    pub fn advance(&mut self, seconds: u64) {
        self.now = self.now.plus(seconds);
    }

    /// A fresh browser signed in to GitHub as `user`.
    pub fn browser(&self, user: GithubUser) -> Browser {
        Browser::new(&self.issuer(), user)
    }

    // --- POST /register -------------------------------------------------------------

    /// `POST /register` with a JSON body: stores the record, returns the owner's view.
    pub fn register(&mut self, json: &str) -> Result<(Client, Reply), RegistrationError> {
        let reg = self
            .gate
            .register(json.as_bytes(), self.now, &mut self.entropy)?;
        let v: serde_json::Value = serde_json::from_slice(&reg.reply.body).expect("JSON");
        let client = Client {
            id: reg.record.client_id().to_owned(),
            secret: v["client_secret"].as_str().map(str::to_owned),
            auth: match reg.record.auth_method() {
                TokenAuthMethod::None => "none",
                TokenAuthMethod::ClientSecretPost => "client_secret_post",
                TokenAuthMethod::ClientSecretBasic => "client_secret_basic",
            },
            redirect_uri: reg.record.redirect_uris()[0].as_str().to_owned(),
        };
        self.store.clients.put(reg.record);
        Ok((client, reg.reply))
    }

    /// Registers a client with one redirect URI, `auth` method, and the refresh grant.
    pub fn register_client(&mut self, name: &str, redirect_uri: &str, auth: &str) -> Client {
        let body = serde_json::json!({
            "client_name": name,
            "redirect_uris": [redirect_uri],
            "token_endpoint_auth_method": auth,
            "grant_types": ["authorization_code", "refresh_token"],
        });
        self.register(&body.to_string()).expect("registration").0
    }

    /// Registers a public client (every MCP client on a user's machine).
    pub fn register_public(&mut self, name: &str, redirect_uri: &str) -> Client {
        self.register_client(name, redirect_uri, "none")
    }

    // --- GET/POST /authorize ----------------------------------------------------------

    /// `GET /authorize?{query}` in `browser`: the consent page, or (remembered consent)
    /// the 303 to the upstream; an error page is the `Err`.
    pub fn get_authorize(
        &mut self,
        browser: &mut Browser,
        query: &str,
        nav: Nav,
    ) -> Result<Reply, AuthorizeError> {
        let req = AuthorizeRequest::parse(query.as_bytes())?;
        let client = self.store.clients.get(&req.client_key());
        let headers = browser.request(nav, self.now);
        let authorization = self.gate.authorize(
            req,
            client.as_ref(),
            headers.context(),
            self.now,
            &mut self.entropy,
        )?;
        let reply = match authorization {
            Authorization::NeedsConsent(prompt) => {
                let (pending, page) = prompt.into_parts();
                self.store.pending.put(pending);
                page
            }
            Authorization::Remembered(consent) => self.go_upstream(consent),
        };
        browser.apply(&reply, self.now);
        Ok(reply)
    }

    fn go_upstream(&mut self, consent: ConsentGiven) -> Reply {
        let up = self
            .gate
            .upstream_redirect(consent, self.now, &mut self.entropy);
        let (txn, reply) = up.into_parts();
        self.store.txns.put(txn);
        reply
    }

    /// `POST /authorize` (the consent decision) with a form `body` from `browser`.
    pub fn post_consent(
        &mut self,
        browser: &mut Browser,
        body: &str,
        nav: Nav,
    ) -> Result<Reply, ConsentError> {
        let form = ConsentForm::parse(body.as_bytes())?;
        let pending = self.store.pending.take(&form.pending_key());
        let headers = browser.request(nav, self.now);
        let reply = match self
            .gate
            .decide(form, pending, headers.context(), self.now)?
        {
            Decision::Approved(consent) => self.go_upstream(consent),
            Decision::Denied(to_client) => to_client.response(),
        };
        browser.apply(&reply, self.now);
        Ok(reply)
    }

    /// Clicks `decision` on a consent page shown in `browser`.
    pub fn click(
        &mut self,
        browser: &mut Browser,
        page: &Reply,
        decision: &str,
    ) -> Result<Reply, ConsentError> {
        let body = ConsentFields::read(page).body(decision);
        self.post_consent(browser, &body, Nav::SameOrigin)
    }

    /// The consent page for `app`'s request, opened by `nav` (a test failure otherwise).
    pub fn page(&mut self, browser: &mut Browser, app: &App, nav: Nav) -> Reply {
        let page = self.get_authorize(browser, &app.query(), nav);
        page.expect("a consent page")
    }

    /// The user opens `app`'s request and approves: our 303 to GitHub.
    pub fn approved(&mut self, browser: &mut Browser, app: &App) -> Reply {
        let page = self.page(browser, app, Nav::Direct);
        self.click(browser, &page, "approve").expect("an approval")
    }

    /// As [`Host::approved`], then GitHub sends the browser back: the callback URL.
    pub fn back_from_github(&mut self, browser: &mut Browser, app: &App) -> String {
        let up = self.approved(browser, app);
        self.through_github(browser, &up)
    }

    // --- the upstream, then GET /callback -----------------------------------------------

    /// The browser follows our 303 to GitHub, which sends it straight back: the callback
    /// URL it lands on.
    pub fn through_github(&mut self, browser: &Browser, to_github: &Reply) -> String {
        self.github.authorize(browser.github, location(to_github))
    }

    /// `GET /callback?…` in `browser`: take the transaction (before any upstream call),
    /// verify, exchange the code, fetch the user, look the client up again, issue the code.
    pub fn callback(&mut self, browser: &mut Browser, url: &str) -> Result<Reply, CallbackError> {
        let query = url.split_once('?').map_or("", |(_, q)| q);
        let cb = Callback::parse(query.as_bytes())?;
        let txn = self.store.txns.take(&cb.transaction_key());
        let headers = browser.request(Nav::CrossSite, self.now);
        let verified = self
            .gate
            .verify_callback(cb, txn, headers.context(), self.now)?;
        #[cfg(consent_gate_faults)]
        if let Some(record) = verified.reinsert() {
            self.store.txns.put(record.clone());
        }
        let answer = self.github.token(verified.token_request());
        let authenticated = verified.accept_token_response(answer.as_response())?;
        let user = self.github.user(&authenticated.user_request());
        let client = self.store.clients.get(&authenticated.client_key());
        let issued = self.gate.issue_code(
            authenticated,
            user.as_response(),
            client.as_ref(),
            self.now,
            &mut self.entropy,
        )?;
        let (code, reply) = issued.into_parts();
        self.store.codes.put(code);
        browser.apply(&reply, self.now);
        Ok(reply)
    }

    // --- POST /token ---------------------------------------------------------------------

    /// `POST /token` with a form body and optional `Authorization` header. Codes are
    /// taken; on a reused code or refresh token the grant is deleted (R43, R53).
    pub fn post_token(
        &mut self,
        body: &str,
        authorization: Option<&str>,
    ) -> Result<Tokens, TokenError> {
        let req = TokenRequest::parse(body.as_bytes(), authorization)?;
        let client = self.store.clients.get(&req.client_key());
        let result = if req.is_code_grant() {
            let code = self.store.codes.take(&req.record_key());
            self.gate
                .redeem_code(&req, code, client.as_ref(), self.now, &mut self.entropy)
        } else {
            let record = self.store.refresh.get(&req.record_key());
            let grant = record
                .as_ref()
                .and_then(|r| self.store.grants.get(&r.grant_key()));
            self.gate
                .redeem_refresh(&req, record, grant.as_ref(), client.as_ref(), self.now)
        };
        match result {
            Ok(issued) => {
                issued
                    .grant
                    .into_iter()
                    .for_each(|g| self.store.grants.put(g));
                issued
                    .refresh
                    .into_iter()
                    .for_each(|r| self.store.refresh.put(r));
                issued
                    .successor
                    .into_iter()
                    .for_each(|r| self.store.refresh.put_if_absent(r));
                issued
                    .code
                    .into_iter()
                    .for_each(|c| self.store.codes.put(c));
                let json = serde_json::from_slice(&issued.reply.body).expect("JSON");
                Ok(Tokens {
                    reply: issued.reply,
                    json,
                })
            }
            Err(e) => {
                if let Some(grant) = e.revoke_grant() {
                    self.store.grants.delete(grant);
                }
                Err(e)
            }
        }
    }

    /// Redeems a code as `client`.
    pub fn redeem(
        &mut self,
        client: &Client,
        code: &str,
        verifier: &str,
        redirect_uri: Option<&str>,
    ) -> Result<Tokens, TokenError> {
        let mut pairs = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", verifier),
        ];
        pairs.extend(redirect_uri.map(|r| ("redirect_uri", r)));
        let (body, auth) = client.token_request(&pairs);
        self.post_token(&body, auth.as_deref())
    }

    /// Refreshes as `client`, optionally narrowing the scope.
    pub fn refresh(
        &mut self,
        client: &Client,
        refresh_token: &str,
        scope: Option<&str>,
    ) -> Result<Tokens, TokenError> {
        let mut pairs = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        pairs.extend(scope.map(|s| ("scope", s)));
        let (body, auth) = client.token_request(&pairs);
        self.post_token(&body, auth.as_deref())
    }

    // --- the MCP endpoint ------------------------------------------------------------------

    /// `Authorization: Bearer {access}` at the MCP endpoint: verify, then confirm the grant.
    pub fn bearer(&self, access: &str) -> Result<Principal, BearerError> {
        let claims = self
            .gate
            .verify_bearer(Some(&format!("Bearer {access}")), self.now)?;
        let grant = self.store.grants.get(&claims.grant_key());
        claims.confirm(grant.as_ref(), self.now)
    }

    // --- whole flows ---------------------------------------------------------------------

    /// The honest flow up to the code at the app: the app opens `/authorize` in the
    /// browser, the user approves (unless a remembered consent applies), GitHub sends the
    /// browser back, our callback redirects to the app.
    pub fn code_for(&mut self, browser: &mut Browser, app: &App) -> String {
        let reply = self
            .get_authorize(browser, &app.query(), Nav::Direct)
            .expect("consent page");
        let to_github = if reply.status == 200 {
            self.click(browser, &reply, "approve").expect("approval")
        } else {
            reply
        };
        let back = self.through_github(browser, &to_github);
        let to_app = self.callback(browser, &back).expect("callback");
        app.receive(&to_app, &self.issuer()).expect("a code")
    }

    /// The honest flow up to tokens.
    pub fn login(&mut self, browser: &mut Browser, app: &App) -> Tokens {
        let code = self.code_for(browser, app);
        self.redeem(&app.client, &code, &app.verifier, Some(&app.redirect_uri))
            .expect("tokens")
    }
}

impl Default for Host {
    fn default() -> Self {
        Self::new()
    }
}
