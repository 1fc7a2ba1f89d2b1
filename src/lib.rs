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
//! The host owns a store with an atomic *take* (get-and-delete) for single-use records.
//! Store keys are [`StoreKey`]s (hashes of secrets); every record carries a MAC, so an
//! edited store entry is refused.
//!
//! ```
//! # use consent_gate::*;
//! # use std::collections::HashMap;
//! # fn demo() -> Option<()> {
//! # let key = ServerKey::new(&[7u8; 32])?;
//! # let upstream = UpstreamConfig::custom("Demo", "http://127.0.0.1:8080/up/authorize",
//! #     "http://127.0.0.1:8080/up/token", "http://127.0.0.1:8080/up/user", "static-id",
//! #     ClientSecret::new("s"));
//! # let config = Config::builder("http://127.0.0.1:8080", "http://127.0.0.1:8080/mcp", upstream, Keys::new(key))
//! #     .dev_loopback_http(true).build().ok()?;
//! let gate = Gate::new(config);
//! let mut n = 0u8;
//! let mut entropy = |buf: &mut [u8]| { n = n.wrapping_add(1); buf.fill(n) }; // use the OS RNG!
//! let now = UnixTime(1_700_000_000);
//!
//! // POST /register
//! let reg = gate.register(br#"{"redirect_uris":["http://127.0.0.1:9/cb"],"token_endpoint_auth_method":"none"}"#,
//!     now, &mut entropy).ok()?;
//! let client = reg.record;                                         // store.put(client_id, …)
//!
//! // GET /authorize
//! let query = format!("response_type=code&client_id={}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb\
//!     &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256", client.client_id());
//! let req = AuthorizeRequest::parse(query.as_bytes()).ok()?;
//! let Authorization::NeedsConsent(prompt) =
//!     gate.authorize(req, Some(&client), BrowserContext::default(), now, &mut entropy).ok()?
//! else { return None };
//! let (pending, page) = prompt.into_parts();                       // store.put(pending); send page
//!
//! // POST /authorize: the browser sends back the form and its cookie
//! let cookie = page.set_cookies().next()?.split(';').next()?.to_owned();
//! let html = String::from_utf8(page.body).ok()?;
//! let field = |name: &str| html.split(&format!("name=\"{name}\" value=\"")).nth(1)?.split('"').next().map(str::to_owned);
//! let body = format!("tx={}&csrf={}&decision=approve", field("tx")?, field("csrf")?);
//! let form = ConsentForm::parse(body.as_bytes()).ok()?;
//! let taken = Some(pending);                                       // store.take(form.pending_key())
//! let Decision::Approved(consent) = gate.decide(form, taken, BrowserContext::with_cookies(&cookie), now).ok()?
//! else { return None };
//! let up = gate.upstream_redirect(consent, now, &mut entropy);     // consumes the proof
//! let (txn, redirect) = up.into_parts();                           // store.put(txn); send 303
//! assert_eq!(redirect.status, 303);
//! # let _ = txn; Some(())
//! # }
//! # assert!(demo().is_some());
//! ```
//!
//! `tests/flow.rs` drives the whole flow through the callback, token endpoint and bearer
//! check; `examples/hyper_server.rs` is a complete server.
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
mod config;
mod cookie;
mod crypto;
mod error;
mod metadata;
mod page;
mod params;
mod redirect;
mod reply;
mod scope;
mod upstream_json;
// The steps, in the order of the chain of proofs: each mints its proof type, and its
// step methods live beside it.
mod authorize;
mod bearer;
mod callback;
mod code;
mod consent;
mod grant;
mod register;
mod revoke;
mod token;
mod upstream;

use serde::{Deserialize, Serialize};

pub use authorize::{AuthorizationDetails, AuthorizeRequest};
pub use bearer::{BearerClaims, Principal};
pub use callback::{Callback, UpstreamAuthenticated, VerifiedCallback};
pub use code::{CodeIssued, CodeRecord};
/// The fault switches, only in builds with `--cfg consent_gate_faults` (never a release).
#[cfg(consent_gate_faults)]
pub use config::Faults;
pub use config::{Config, ConfigBuilder, ConsentPolicy, Lifetimes, UpstreamConfig};
pub use consent::{
    Authorization, Choice, ConsentForm, ConsentGiven, ConsentPrompt, ConsentView, Decision,
    PendingConsent,
};
pub use cookie::BrowserContext;
pub use crypto::{
    ClientSecret, Entropy, Keys, RecordMac, ServerKey, StoreKey, UpstreamCode, UpstreamToken,
};
pub use error::{
    AuthorizeError, BearerError, CallbackError, ConfigError, ConsentError, RegistrationError,
    TokenError, UpstreamError,
};
pub use grant::{GrantRecord, RefreshRecord};
pub use metadata::paths;
pub use params::ParamError;
pub use redirect::{RedirectUri, RedirectUriError};
pub use register::{ClientRecord, MAX_REGISTRATION_BODY, Registered, TokenAuthMethod};
pub use reply::{ClientRedirect, HttpRequest, Reply, UpstreamResponse};
pub use revoke::{Revocation, RevocationRequest};
pub use scope::ScopeSet;
pub use token::{TokenRequest, TokensIssued};
pub use upstream::{TransactionRecord, UpstreamRedirect};
pub use upstream_json::MAX_UPSTREAM_BODY;

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
}

impl Gate {
    /// A gate for this configuration.
    pub fn new(config: Config) -> Self {
        Self { config }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }
}
