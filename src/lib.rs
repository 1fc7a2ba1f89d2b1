//! # consent-gate
//!
//! The OAuth core of a remote MCP server that logs users in through a third-party provider
//! (GitHub, Google, …), built so that the confused deputy cannot happen.
//!
//! ## The threat
//!
//! Such a server is an authorization server for MCP clients, which register themselves on
//! the fly, and *one* OAuth client of the upstream with one static client id. The upstream
//! remembers that the user approved *the server* and skips its own consent screen next
//! time. So an attacker registers a client with `redirect_uri=https://evil.example/cb`,
//! sends the victim an `/authorize` link, the upstream waves the victim through, and a
//! naive server hands the victim's authorization code to evil.example (A1). Peers closed
//! this one path at a time (A2 forwarded upstream URL, A3 CSRF on the consent POST, A4
//! remembered consent with an AS in the middle).
//!
//! ## The chain of proofs
//!
//! Each step is a type; each transition consumes its input:
//!
//! ```text
//! AuthorizeRequest ─ Gate::authorize ─▶ Authorization::NeedsConsent(ConsentPrompt)
//! ConsentForm + taken PendingConsent ─ Gate::decide ─▶ Decision::Approved(ConsentGiven) | Denied(ClientRedirect)
//! ConsentGiven ─ Gate::upstream_redirect (the ONLY way) ─▶ UpstreamRedirect { 303, binding cookie, TransactionRecord }
//! Callback + taken TransactionRecord + cookie ─ Gate::verify_callback ─▶ VerifiedCallback
//! VerifiedCallback + upstream token response ─▶ UpstreamAuthenticated
//! UpstreamAuthenticated + user document + client ─ Gate::issue_code ─▶ CodeIssued { 303 with code, state, iss }
//! TokenRequest + taken CodeRecord ─ Gate::redeem_code ─▶ TokensIssued
//! Authorization header ─ Gate::verify_bearer ─▶ BearerClaims ─ confirm(grant) ─▶ Principal
//! Principal (upstream refresh due) + upstream answer ─ Gate::accept_upstream_refresh ─▶ Principal, renewed grant
//! ```
//!
//! [`ConsentGiven`] has private fields and no `Clone`, `Default` or `Deserialize`; only a
//! verified approval makes one, and [`UpstreamRedirect`] has no constructor but the one
//! that consumes it. The compile-fail tests prove that misuse does not compile.
//!
//! ## Sans-IO
//!
//! Nothing here opens a socket, reads a clock, draws randomness or touches storage. Time
//! ([`UnixTime`]), entropy ([`Entropy`]) and the records the host looked up come in as
//! arguments; replies ([`Reply`]), records to store and HTTP requests to make come out as
//! data. The same core runs under hyper, a test, a fuzzer and a model checker.
//!
//! ## How to drive it
//!
//! Every step that touches state returns a [`Step`]: store operations ([`Op`]) and the
//! [`Reply`] to send after them. A host writes one executor for it. Records cross the
//! boundary as bytes under a [`Kind`] and a [`StoreKey`] (a hash of the secret handle,
//! never the handle); [`Record::decode`] turns what the host read back into the typed record
//! a step takes, and the step checks its MAC, so an edited store entry is refused. Single-use
//! records (consent pages, upstream trips, codes) are *taken*: read and deleted atomically.
//!
//! The whole flow, with a `HashMap` as the store and the upstream's answers written by hand:
//!
//! ```
//! use consent_gate::*;
//! use std::collections::HashMap;
//!
//! /// The host's store: bytes by kind and key. Single-threaded here, so `take` is atomic.
//! #[derive(Default)]
//! struct Store(HashMap<(Kind, StoreKey), Vec<u8>>);
//!
//! impl Store {
//!     /// The one executor: apply the operations in order, then hand back the reply.
//!     fn apply(&mut self, step: impl Into<Step>) -> Reply {
//!         let step = step.into();
//!         for op in step.ops {
//!             match op {
//!                 Op::Put { kind, key, value, .. } => { self.0.insert((kind, key), value); }
//!                 Op::PutIfAbsent { kind, key, value, .. } => { self.0.entry((kind, key)).or_insert(value); }
//!                 Op::Delete { kind, key } => { self.0.remove(&(kind, key)); }
//!             }
//!         }
//!         step.reply
//!     }
//!     fn get<R: Record>(&self, key: StoreKey) -> Option<R> {
//!         R::decode(self.0.get(&(R::KIND, key))?)
//!     }
//!     fn take<R: Record>(&mut self, key: StoreKey) -> Option<R> {
//!         R::decode(&self.0.remove(&(R::KIND, key))?)
//!     }
//! }
//!
//! /// The value after `name=` in `text`, up to the next `&`, `"` or `;`.
//! fn after<'t>(text: &'t str, name: &str) -> &'t str {
//!     let rest = text.split(name).nth(1).expect(name);
//!     rest.split(['&', '"', ';']).next().unwrap()
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let upstream = UpstreamConfig::github("static-client-id", ClientSecret::new("secret"));
//! let key = ServerKey::new(&[7u8; 32]).unwrap(); // from your secret store
//! let config = Config::builder("https://mcp.example", "https://mcp.example/mcp", upstream, Keys::new(key))
//!     .build()?;
//! let gate = Gate::new(config);
//! let mut n = 0u8;
//! let mut entropy = |buf: &mut [u8]| { n = n.wrapping_add(1); buf.fill(n) }; // use the OS RNG!
//! let now = UnixTime(1_700_000_000);
//! let mut store = Store::default();
//!
//! // POST /register
//! let registered = gate.register(br#"{"redirect_uris":["https://app.example/cb"],"token_endpoint_auth_method":"none"}"#,
//!     now, &mut entropy)?;
//! let client_id = registered.record.client_id().to_owned();
//! assert_eq!(store.apply(registered).status, 201);
//!
//! // GET /authorize: the consent page, and a pending consent stored behind it.
//! let query = format!("response_type=code&client_id={client_id}&redirect_uri=https%3A%2F%2Fapp.example%2Fcb\
//!     &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&state=xyz");
//! let request = AuthorizeRequest::parse(query.as_bytes())?;
//! let client = store.get::<ClientRecord>(request.client_key());
//! let browser = BrowserContext { sec_fetch_site: Some("none"), ..Default::default() };
//! let Authorization::NeedsConsent(prompt) = gate.authorize(request, client.as_ref(), browser, now, &mut entropy)?
//! else { unreachable!("remembered consent is off by default") };
//! let page = store.apply(prompt);
//! let consent_cookie = page.set_cookies().next().unwrap().split(';').next().unwrap().to_owned();
//! let html = String::from_utf8(page.body)?;
//!
//! // POST /authorize: the user approves; the pending consent is taken, never read twice.
//! let body = format!("tx={}&csrf={}&decision=approve", after(&html, "name=\"tx\" value=\""),
//!     after(&html, "name=\"csrf\" value=\""));
//! let form = ConsentForm::parse(body.as_bytes())?;
//! let pending = store.take::<PendingConsent>(form.pending_key());
//! let browser = BrowserContext { cookies: &consent_cookie, origin: Some("https://mcp.example"),
//!     sec_fetch_site: Some("same-origin") };
//! let Decision::Approved(consent) = gate.decide(form, pending, browser, now)? else { unreachable!() };
//!
//! // The only way to the upstream consumes the proof of consent.
//! let to_upstream = store.apply(gate.upstream_redirect(consent, now, &mut entropy));
//! let state = after(to_upstream.header("location").unwrap(), "state=").to_owned();
//! let binding = to_upstream.set_cookies().next().unwrap().split(';').next().unwrap().to_owned();
//!
//! // GET /callback: the transaction is taken, the browser binding checked.
//! let callback = Callback::parse(format!("code=upstream-code&state={state}").as_bytes())?;
//! let transaction = store.take::<TransactionRecord>(callback.transaction_key());
//! let verified = gate.verify_callback(callback, transaction, BrowserContext::with_cookies(&binding), now)?;
//! let _token_request: &HttpRequest = verified.token_request(); // the host sends it
//! let authenticated = verified.accept_token_response(UpstreamResponse { status: 200,
//!     content_type: Some("application/json"), body: br#"{"access_token":"gho_x","token_type":"bearer"}"# })?;
//! let _user_request: HttpRequest = authenticated.user_request(); // and this one
//! let client = store.get::<ClientRecord>(authenticated.client_key());
//! let issued = gate.issue_code(authenticated, UpstreamResponse { status: 200,
//!     content_type: Some("application/json"), body: br#"{"id":1,"login":"octocat"}"# },
//!     client.as_ref(), now, &mut entropy)?;
//! let to_client = store.apply(issued);
//! let location = to_client.header("location").unwrap();
//! assert!(location.starts_with("https://app.example/cb?code="));
//! let code = after(location, "code=");
//!
//! // POST /token: the code is taken and redeemed once.
//! let body = format!("grant_type=authorization_code&code={code}&client_id={client_id}\
//!     &redirect_uri=https%3A%2F%2Fapp.example%2Fcb&code_verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
//! let request = TokenRequest::parse(body.as_bytes(), None)?;
//! let code_record = store.take::<CodeRecord>(request.record_key());
//! let client = store.get::<ClientRecord>(request.client_key());
//! let tokens = store.apply(gate.redeem_code(&request, code_record, client.as_ref(), now, &mut entropy)?);
//! let json: serde_json::Value = serde_json::from_slice(&tokens.body)?;
//! let access = json["access_token"].as_str().unwrap().to_owned();
//!
//! // The MCP endpoint: a valid token of a live grant speaks for the user.
//! let header = format!("Bearer {access}");
//! let claims = gate.verify_bearer(Some(&header), now)?;
//! let grant = store.get::<GrantRecord>(claims.grant_key());
//! assert_eq!(claims.confirm(grant.as_ref(), now)?.subject(), "github:1");
//!
//! // POST /revoke: the grant is deleted, and with it every token of it.
//! let request = RevocationRequest::parse(format!("token={access}&client_id={client_id}").as_bytes(), None)?;
//! let client = store.get::<ClientRecord>(request.client_key());
//! let refresh = store.get::<RefreshRecord>(request.refresh_key());
//! store.apply(gate.revoke(&request, client.as_ref(), refresh.as_ref(), now)?);
//! let claims = gate.verify_bearer(Some(&header), now)?;
//! let grant = store.get::<GrantRecord>(claims.grant_key());
//! assert_eq!(claims.confirm(grant.as_ref(), now).err(), Some(BearerError::Revoked));
//! # Ok(())
//! # }
//! ```
//!
//! `examples/hyper_server.rs` is the same loop under hyper.
//!
//! ## Threat model
//!
//! The attacker registers clients, crafts links and auto-submitting cross-site forms,
//! receives everything sent to its redirect URIs, replays any URL it has seen and runs its
//! own browser through the flow. It cannot read the victim's cookies or the server's keys.
//! Attacks A1–A22 and requirements R1–R71 are cited by ID throughout and defined in the
//! repository's manual (`docs/requirements.md`); `spec/README.md` lists the properties
//! checked.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

// The floor: primitives every step reads and writes through. Each module imports only
// modules listed above it (`.ci/layering` checks it).
mod crypto;
mod at_rest;
mod params;
mod scope;
mod cookie;
mod redirect;
mod reply;
mod step;
mod messages;
mod page;
mod error;
mod upstream_json;
mod openid;
mod config;
mod metadata;
// The steps, in the order of the chain of proofs: each mints its proof type, and its
// step methods live beside it.
mod client_document;
mod register;
mod authorize;
mod consent;
mod upstream;
mod callback;
mod code;
mod installation;
mod grant;
mod bearer;
mod upstream_refresh;
mod token;
mod revoke;

use serde::{Deserialize, Serialize};

pub use authorize::{AuthorizationDetails, AuthorizeRequest};
pub use bearer::{BearerClaims, Principal};
pub use callback::{Callback, UpstreamAuthenticated, VerifiedCallback};
pub use client_document::{
    MAX_METADATA_DOCUMENT, METADATA_DOCUMENT_MAX_SECONDS, METADATA_DOCUMENT_MIN_SECONDS,
    is_metadata_document_url,
};
pub use code::{CodeIssued, CodeRecord};
/// The fault switches, only in builds with `--cfg consent_gate_faults` (never a release).
#[cfg(consent_gate_faults)]
pub use config::Faults;
pub use config::{
    Config, ConfigBuilder, ConsentPolicy, Lifetimes, RevocationShape, UpstreamConfig,
};
pub use consent::{
    Authorization, Choice, ConsentForm, ConsentGiven, ConsentPrompt, ConsentView, Decision,
    PendingConsent,
};
pub use cookie::BrowserContext;
pub use crypto::{
    ClientSecret, Entropy, Keys, RecordMac, ServerKey, StoreKey, UpstreamCode,
    UpstreamRefreshToken, UpstreamToken,
};
pub use error::{
    AuthorizeError, BearerError, CallbackError, ConfigError, ConsentError, DiscoveryError,
    RegistrationError, TokenError, UpstreamError, UpstreamRefreshError,
};
pub use grant::{GrantLookup, GrantRecord, RefreshRecord};
pub use installation::InstallationRevocation;
pub use messages::Language;
pub use metadata::paths;
pub use openid::{IdTokenPolicy, MAX_DISCOVERY_DOCUMENT, MAX_ID_TOKEN, ProviderMetadata};
pub use params::ParamError;
pub use redirect::{RedirectUri, RedirectUriError};
pub use register::{ClientRecord, MAX_REGISTRATION_BODY, Registered, TokenAuthMethod};
pub use reply::{ClientRedirect, HttpRequest, Reply, UpstreamResponse};
pub use revoke::{Revocation, RevocationRequest};
pub use scope::ScopeSet;
pub use step::{Kind, Op, Record, Step};
pub use token::{TokenRequest, TokensIssued};
pub use upstream::{TransactionRecord, UpstreamRedirect};
pub use upstream_json::MAX_UPSTREAM_BODY;
pub use upstream_refresh::UPSTREAM_REFRESH_MARGIN;

/// Wall-clock time in seconds since the Unix epoch, supplied by the host
/// (docs/conventions.md#time-is-an-argument: OAuth expiries are wall-clock, serialize, and a model
/// can enumerate them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UnixTime(pub u64);

impl UnixTime {
    /// `self + seconds`, saturating.
    pub fn plus(self, seconds: u64) -> Self {
        Self(self.0.saturating_add(seconds))
    }
}

/// The gate: a validated [`Config`] and the steps of the flow. Cheap to share (`&Gate`);
/// it holds no mutable state.
#[derive(Clone, Debug)]
pub struct Gate {
    config: Config,
    /// The hash every transaction records of the upstream it went to (R40, R67): fixed by
    /// the configuration, so computed once here rather than on every trip and callback.
    upstream_hash: [u8; 32],
}

impl Gate {
    /// A gate for this configuration.
    pub fn new(config: Config) -> Self {
        let upstream_hash = upstream::upstream_hash(&config.upstream);
        Self {
            config,
            upstream_hash,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }
}
