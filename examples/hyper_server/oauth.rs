//! The OAuth endpoints (docs/http-contract.md#endpoints), each the crate docs' host loop
//! with the store and the network filled in. The order inside each is the security:
//! single-use records are *taken* before anything else happens with them, and before any
//! call to the upstream (docs/design.md, the store contract).

use std::sync::Arc;

use consent_gate::{
    Authorization, AuthorizeError, AuthorizeRequest, Callback, CallbackError, ClientRecord,
    CodeRecord, ConsentError, ConsentForm, ConsentGiven, Decision, Gate, GrantRecord, HttpRequest,
    PendingConsent, RefreshRecord, RegistrationError, Reply, RevocationRequest, StoreKey,
    TokenError, TokenRequest, TransactionRecord, UnixTime, paths,
};
use consent_gate_store::{Kind, Store, StoreError};
use hyper::Method;
use serde::{Serialize, de::DeserializeOwned};
use tracing::{info, warn};

use crate::demo_upstream::DemoUpstream;
use crate::http::{Fetched, Req, Resp, Upstream, cors, entropy, method_not_allowed, now};
use crate::http::{preflight, reply, short, text};

/// Why a handler stopped early: the core refused (its reply is the answer, and every
/// refusal is a security event in the log), or the store failed (503).
pub enum Stop {
    Refused(Reply),
    Store(StoreError),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::Store(e)
    }
}

macro_rules! refusals {
    ($($error:ty),*) => {$(
        impl From<$error> for Stop {
            fn from(e: $error) -> Self {
                warn!(security = true, event = %variant(&e), reason = %e);
                Stop::Refused(e.response())
            }
        }
    )*};
}
refusals!(
    AuthorizeError,
    ConsentError,
    CallbackError,
    TokenError,
    RegistrationError
);

/// An error's variant in snake case, the log event (`BindingMismatch`: `binding_mismatch`).
/// Only the name: a variant's fields may carry attacker text.
pub fn variant(e: &impl std::fmt::Debug) -> String {
    let debug = format!("{e:?}");
    let name = debug
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or("");
    let mut event = String::new();
    for c in name.chars() {
        if c.is_uppercase() && !event.is_empty() {
            event.push('_');
        }
        event.push(c.to_ascii_lowercase());
    }
    event
}

/// The store's time: the same seconds the core was given.
pub fn secs(t: UnixTime) -> consent_gate_store::UnixTime {
    consent_gate_store::UnixTime::from_secs(t.0)
}

/// A core record as the store keeps it: serde JSON under the hash of its handle (never the
/// handle), in its kind's namespace, until it expires. Its MAC, not the store, makes an
/// edited entry worthless (docs/design.md#records).
pub trait Record: Serialize + DeserializeOwned {
    const KIND: Kind;
    fn key(&self) -> StoreKey;
    fn expires(&self, now: UnixTime) -> UnixTime;
}

macro_rules! record {
    ($type:ty, $kind:ident, |$r:ident, $now:ident| ($key:expr, $expires:expr)) => {
        impl Record for $type {
            const KIND: Kind = Kind::$kind;
            fn key(&self) -> StoreKey {
                let $r = self;
                $key
            }
            fn expires(&self, $now: UnixTime) -> UnixTime {
                let $r = self;
                $expires
            }
        }
    };
}

/// The core gives registrations no expiry; a store must. A client whose registration is
/// gone registers again.
const CLIENT_LIFETIME: u64 = 90 * 24 * 3600;
record!(ClientRecord, Client, |_r, now| (
    _r.key(),
    now.plus(CLIENT_LIFETIME)
));
record!(PendingConsent, Consent, |r, _now| (
    *r.key(),
    r.expires_at()
));
record!(TransactionRecord, Transaction, |r, _now| (
    *r.key(),
    r.expires_at()
));
record!(CodeRecord, Code, |r, _now| (*r.key(), r.expires_at()));
record!(GrantRecord, Grant, |r, _now| (r.key(), r.expires_at()));
record!(RefreshRecord, Refresh, |r, _now| (*r.key(), r.expires_at()));

/// Everything a request handler needs; shared by all connections.
pub struct App {
    pub gate: Gate,
    pub store: Arc<dyn Store>,
    pub upstream: Upstream,
    pub demo: Option<DemoUpstream>,
    /// Our own origin (`scheme://host:port`), for the `Origin` check on `/mcp`.
    pub origin: String,
    metadata_paths: (Vec<String>, Vec<String>),
    callback_path: String,
    mcp_path: String,
}

impl App {
    pub fn new(gate: Gate, store: Arc<dyn Store>, demo: Option<DemoUpstream>) -> Self {
        // `(origin, path)` of an absolute URL that the configuration validated.
        let split = |url: &str| {
            let after_scheme = url.find("://").map_or(0, |i| i + 3);
            let path = url[after_scheme..]
                .find('/')
                .map_or(url.len(), |i| after_scheme + i);
            (url[..path].to_owned(), url[path..].to_owned())
        };
        let config = gate.config();
        let (origin, mcp_path) = split(config.resource());
        let callback_path = split(config.callback_uri()).1;
        let as_paths = gate.authorization_server_metadata_paths();
        let metadata_paths = (as_paths, gate.protected_resource_metadata_paths());
        let upstream = Upstream::new();
        App {
            gate,
            store,
            upstream,
            demo,
            origin,
            metadata_paths,
            callback_path,
            mcp_path,
        }
    }

    /// Stores a record until it expires (one already expired needs no storing), or with
    /// `if_absent` only where no live one is; says whether it did.
    async fn write<R: Record>(&self, r: &R, now: UnixTime, if_absent: bool) -> Result<bool, Stop> {
        let (key, expires) = (*r.key().as_bytes(), r.expires(now));
        let value = serde_json::to_vec(r).expect("records are plain data");
        let store = &self.store;
        Ok(match (expires > now, if_absent) {
            (false, _) => false,
            (true, false) => store
                .put(R::KIND, key, value, secs(expires), secs(now))
                .await
                .map(|()| true)?,
            (true, true) => {
                store
                    .put_if_absent(R::KIND, key, value, secs(expires), secs(now))
                    .await?
            }
        })
    }

    async fn put<R: Record>(&self, record: &R, now: UnixTime) -> Result<(), Stop> {
        self.write(record, now, false).await.map(drop)
    }

    /// The live record under `key` (one that does not parse counts as absent), and with
    /// `take` removed in the same atomic step: single use (R36, A7, A8).
    async fn read<R: Record>(
        &self,
        key: &StoreKey,
        now: UnixTime,
        take: bool,
    ) -> Result<Option<R>, Stop> {
        let (kind, key, now) = (R::KIND, *key.as_bytes(), secs(now));
        let found = match take {
            true => self.store.take(kind, key, now).await?,
            false => self.store.get(kind, key, now).await?,
        };
        Ok(found.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
    }

    pub async fn get<R: Record>(&self, key: &StoreKey, now: UnixTime) -> Result<Option<R>, Stop> {
        self.read(key, now, false).await
    }

    async fn take<R: Record>(&self, key: &StoreKey, now: UnixTime) -> Result<Option<R>, Stop> {
        self.read(key, now, true).await
    }

    /// Deletes a grant, and with it every token it issued (R43, R53).
    async fn revoke_grant(&self, grant: &StoreKey, now: UnixTime) -> Result<(), Stop> {
        Ok(self
            .store
            .delete(Kind::Grant, *grant.as_bytes(), secs(now))
            .await?)
    }
}

/// Every request: the route table. Unknown paths are 404, known ones with another method 405.
pub async fn route(app: &App, req: &Req) -> Resp {
    let (method, path) = (&req.method, req.path());
    let (as_paths, prm_paths) = &app.metadata_paths;
    let (is_as, is_prm) = (
        as_paths.iter().any(|p| p == path),
        prm_paths.iter().any(|p| p == path),
    );
    if is_as || is_prm {
        // RFC 8414 and RFC 9728 documents: public, cached by nobody, readable cross-origin.
        return match *method {
            Method::GET | Method::HEAD if is_as => {
                cors(reply(app.gate.authorization_server_metadata()))
            }
            Method::GET | Method::HEAD => cors(reply(app.gate.protected_resource_metadata())),
            Method::OPTIONS => preflight("GET, OPTIONS"),
            _ => method_not_allowed("GET, HEAD, OPTIONS"),
        };
    }
    // The back-channel endpoints a browser-based client calls with `fetch`: CORS (see
    // `http::cors`), and none of them reads a cookie.
    if [paths::REGISTER, paths::TOKEN, paths::REVOKE].contains(&path) {
        return match (method, path) {
            (&Method::POST, paths::REGISTER) => cors(answer(register(app, req).await)),
            (&Method::POST, paths::TOKEN) => cors(answer(token(app, req).await)),
            (&Method::POST, _) => cors(answer(revoke(app, req).await)),
            (&Method::OPTIONS, _) => preflight("POST, OPTIONS"),
            _ => method_not_allowed("POST, OPTIONS"),
        };
    }
    // The browser endpoints: top-level navigations that carry our cookies. No CORS.
    answer(match (method, path) {
        (&Method::GET, paths::AUTHORIZE) => authorize(app, req).await,
        (&Method::POST, paths::AUTHORIZE) => decide(app, req).await,
        (_, paths::AUTHORIZE) => Ok(method_not_allowed("GET, POST")),
        (&Method::GET, p) if p == app.callback_path => callback(app, req).await,
        (_, p) if p == app.callback_path => Ok(method_not_allowed("GET")),
        (_, p) if p == app.mcp_path => crate::mcp::handle(app, req).await,
        _ => match &app.demo {
            Some(demo) if path.starts_with("/demo-upstream/") => Ok(demo.handle(req)),
            _ => Ok(text(404, "not found")),
        },
    })
}

fn answer(result: Result<Resp, Stop>) -> Resp {
    match result {
        Ok(resp) => resp,
        Err(Stop::Refused(refusal)) => reply(refusal),
        Err(Stop::Store(error)) => {
            warn!(event = "store_failed", %error);
            text(503, "storage unavailable, try again")
        }
    }
}

/// `POST /register` (RFC 7591).
async fn register(app: &App, req: &Req) -> Result<Resp, Stop> {
    let now = now();
    let registered = app.gate.register(&req.body, now, &mut entropy)?;
    let client = &registered.record;
    let hosts: Vec<_> = client
        .redirect_uris()
        .iter()
        .map(|u| short(u.host()))
        .collect();
    info!(
        event = "client_registered",
        client_id = client.client_id(),
        redirect_hosts = hosts.join(" ")
    );
    app.put(client, now).await?;
    Ok(reply(registered.reply))
}

/// `GET /authorize`: the consent page, or an error page (never a redirect, R16).
async fn authorize(app: &App, req: &Req) -> Result<Resp, Stop> {
    let now = now();
    let request = AuthorizeRequest::parse(req.query())?;
    let client: Option<ClientRecord> = app.get(&request.client_key(), now).await?;
    let mut cookies = String::new();
    let browser = req.browser(&mut cookies);
    match app
        .gate
        .authorize(request, client.as_ref(), browser, now, &mut entropy)?
    {
        Authorization::NeedsConsent(prompt) => {
            let (pending, page) = prompt.into_parts();
            let (client_id, redirect) = (
                pending.details().client_id(),
                pending.details().redirect_uri(),
            );
            info!(event = "consent_shown", client_id = %short(client_id), redirect_host = %short(redirect.host()));
            app.put(&pending, now).await?;
            Ok(reply(page))
        }
        // Only with `--remember-consent`: a remembered approval for exactly this client,
        // redirect URI, scope and resource (R31).
        Authorization::Remembered(consent) => go_upstream(app, consent, now).await,
    }
}

/// Spends the proof of consent: stores the transaction, sends the 303 with the binding
/// cookie.
async fn go_upstream(app: &App, consent: ConsentGiven, now: UnixTime) -> Result<Resp, Stop> {
    let (txn, redirect) = app
        .gate
        .upstream_redirect(consent, now, &mut entropy)
        .into_parts();
    app.put(&txn, now).await?;
    Ok(reply(redirect))
}

/// `POST /authorize`: the consent decision.
async fn decide(app: &App, req: &Req) -> Result<Resp, Stop> {
    let now = now();
    if !req.is("application/x-www-form-urlencoded") {
        return Ok(text(415, "expected an HTML form submission"));
    }
    let form = ConsentForm::parse(&req.body)?;
    // Taken, not read: a second submission of the same page finds nothing (R36).
    let pending: Option<PendingConsent> = app.take(&form.pending_key(), now).await?;
    // Who the decision is about, for the log (the form itself names nobody).
    let details = pending.as_ref().map(|p| p.details());
    let client_id = details.map(|d| short(d.client_id()).into_owned());
    let redirect_host = details.map(|d| short(d.redirect_uri().host()).into_owned());
    let mut cookies = String::new();
    let decision = app
        .gate
        .decide(form, pending, req.browser(&mut cookies), now)?;
    let event = match decision {
        Decision::Approved(_) => "consent_approved",
        Decision::Denied(_) => "consent_denied",
    };
    info!(security = true, event, client_id, redirect_host);
    match decision {
        Decision::Approved(consent) => go_upstream(app, consent, now).await,
        Decision::Denied(to_client) => Ok(reply(to_client.response())),
    }
}

/// `GET /callback`: the upstream sends the browser back here.
async fn callback(app: &App, req: &Req) -> Result<Resp, Stop> {
    let now = now();
    let cb = Callback::parse(req.query())?;
    // Taken BEFORE the upstream call, so a replayed `state` finds nothing (A7).
    let txn: Option<TransactionRecord> = app.take(&cb.transaction_key(), now).await?;
    let mut cookies = String::new();
    let verified = app
        .gate
        .verify_callback(cb, txn, req.browser(&mut cookies), now)?;
    // Only with the A7 fault switched on (`--fault state_reusable`), which exists only in
    // builds with `--cfg consent_gate_faults`.
    #[cfg(consent_gate_faults)]
    if let Some(txn) = verified.reinsert() {
        app.put(txn, now).await?;
    }
    let Some(tokens) = send(app, verified.token_request()).await else {
        return Err(verified.upstream_unreachable().into());
    };
    let authenticated = verified.accept_token_response(tokens.as_upstream())?;
    let Some(user) = send(app, &authenticated.user_request()).await else {
        return Err(authenticated.upstream_unreachable().into());
    };
    // Looked up again: the redirect URI is checked against the live registration (R38).
    let client: Option<ClientRecord> = app.get(&authenticated.client_key(), now).await?;
    let client_id = short(authenticated.details().client_id()).into_owned();
    let redirect_host = short(authenticated.details().redirect_uri().host()).into_owned();
    let (user, client) = (user.as_upstream(), client.as_ref());
    let issued = app
        .gate
        .issue_code(authenticated, user, client, now, &mut entropy)?;
    let (code, redirect) = issued.into_parts();
    app.put(&code, now).await?;
    info!(
        security = true,
        event = "code_issued",
        client_id,
        redirect_host
    );
    Ok(reply(redirect))
}

/// A back-channel request for the core; `None` when the upstream is unreachable.
async fn send(app: &App, r: &HttpRequest) -> Option<Fetched> {
    let sent = app.upstream.send(r).await;
    sent.inspect_err(|why| warn!(event = "upstream_unreachable", url = %short(&r.url), why))
        .ok()
}

/// `POST /token`: the code and refresh grants.
async fn token(app: &App, req: &Req) -> Result<Resp, Stop> {
    let now = now();
    let request = TokenRequest::parse(&req.body, req.header("authorization"))?;
    let client: Option<ClientRecord> = app.get(&request.client_key(), now).await?;
    let result = if request.is_code_grant() {
        // Taken: two concurrent redemptions cannot both see an unredeemed code (A8).
        let code = app.take(&request.record_key(), now).await?;
        app.gate
            .redeem_code(&request, code, client.as_ref(), now, &mut entropy)
    } else {
        // Got, not taken: the core decides about rotation and says what to write.
        let refresh: Option<RefreshRecord> = app.get(&request.record_key(), now).await?;
        let grant: Option<GrantRecord> = match &refresh {
            Some(r) => app.get(&r.grant_key(), now).await?,
            None => None,
        };
        app.gate
            .redeem_refresh(&request, refresh, grant.as_ref(), client.as_ref(), now)
    };
    let issued = match result {
        Ok(issued) => issued,
        Err(e) => {
            if let Some(grant) = e.revoke_grant() {
                // Revoked BEFORE the reply: every token of that grant is dead by the time
                // the replaying party reads the error (R43, R53).
                app.revoke_grant(grant, now).await?;
                let event = match e {
                    TokenError::CodeReused { .. } => "code_replay_grant_revoked",
                    _ => "refresh_reuse_grant_revoked",
                };
                warn!(security = true, event, client_id = %short(request.client_id()));
            }
            return Err(e.into());
        }
    };
    if let Some(grant) = &issued.grant {
        app.put(grant, now).await?;
    }
    for refresh in &issued.refresh {
        app.put(refresh, now).await?;
    }
    if let Some(successor) = &issued.successor {
        // Never over a successor that was rotated since (R63, A22).
        app.write(successor, now, true).await?;
    }
    if let Some(code) = &issued.code {
        app.put(code, now).await?;
    }
    Ok(reply(issued.reply))
}

/// `POST /revoke` (RFC 7009): a client revokes one of its tokens, and with it the grant.
async fn revoke(app: &App, req: &Req) -> Result<Resp, Stop> {
    let now = now();
    let request = RevocationRequest::parse(&req.body, req.header("authorization"))?;
    let client: Option<ClientRecord> = app.get(&request.client_key(), now).await?;
    // Got, not taken: an unknown or foreign token must change nothing (RFC 7009 §2.2).
    let refresh: Option<RefreshRecord> = app.get(&request.refresh_key(), now).await?;
    let revocation = app
        .gate
        .revoke(&request, client.as_ref(), refresh.as_ref(), now)?;
    if let Some(grant) = &revocation.revoke_grant {
        // Deleted before the reply: the client may rely on "200 means gone".
        app.revoke_grant(grant, now).await?;
        let client_id = client.as_ref().map(|c| short(c.client_id()).into_owned());
        info!(security = true, event = "grant_revoked", client_id);
    }
    Ok(reply(revocation.reply))
}
