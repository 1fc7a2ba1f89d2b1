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

/// Why a handler stopped early: the core refused (its reply is the answer, and each
/// refusal a security event in the log), or the store failed (503).
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

/// An error's variant in snake case, as the log event (`BindingMismatch`:
/// `binding_mismatch`). Only the name: a variant's fields may carry attacker text.
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

macro_rules! records {
    ($($type:ty: $kind:ident, |$r:ident, $now:pat_param| ($key:expr, $expires:expr);)*) => {$(
        impl Record for $type {
            const KIND: Kind = Kind::$kind;
            fn key(&self) -> StoreKey {
                let $r = self;
                $key
            }
            #[allow(unused_variables)]
            fn expires(&self, $now: UnixTime) -> UnixTime {
                let $r = self;
                $expires
            }
        }
    )*};
}

/// The core gives registrations no expiry; a store must. A client whose registration is
/// gone registers again.
const CLIENT_LIFETIME: u64 = 90 * 24 * 3600;

records! {
    ClientRecord: Client, |r, now| (r.key(), now.plus(CLIENT_LIFETIME));
    PendingConsent: Consent, |r, _| (*r.key(), r.expires_at());
    TransactionRecord: Transaction, |r, _| (*r.key(), r.expires_at());
    CodeRecord: Code, |r, _| (*r.key(), r.expires_at());
    GrantRecord: Grant, |r, _| (r.key(), r.expires_at());
    RefreshRecord: Refresh, |r, _| (*r.key(), r.expires_at());
}

/// Everything a request handler needs; shared by all connections.
pub struct App {
    pub gate: Gate,
    pub store: Arc<dyn Store>,
    pub upstream: Upstream,
    pub demo: Option<DemoUpstream>,
    /// Our origin (`scheme://host:port`) and our paths, from the configuration.
    pub origin: String,
    paths: [String; 2],
    metadata_paths: [Vec<String>; 2],
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
        let (origin, mcp) = split(gate.config().resource());
        let paths = [split(gate.config().callback_uri()).1, mcp];
        let metadata_paths = [
            gate.authorization_server_metadata_paths(),
            gate.protected_resource_metadata_paths(),
        ];
        let upstream = Upstream::new();
        App {
            gate,
            store,
            upstream,
            demo,
            origin,
            paths,
            metadata_paths,
        }
    }

    async fn put<R: Record>(&self, record: &R, now: UnixTime) -> Result<(), Stop> {
        self.write(record, now, false).await
    }

    /// Stores a record until it expires (one already expired needs no storing); with
    /// `if_absent`, only where no live one is.
    async fn write<R: Record>(
        &self,
        record: &R,
        now: UnixTime,
        if_absent: bool,
    ) -> Result<(), Stop> {
        let (key, expires) = (*record.key().as_bytes(), secs(record.expires(now)));
        let (value, now) = (serde_json::to_vec(record).expect("plain data"), secs(now));
        if expires <= now {
            return Ok(());
        } else if if_absent {
            self.store
                .put_if_absent(R::KIND, key, value, expires, now)
                .await?;
        } else {
            self.store.put(R::KIND, key, value, expires, now).await?;
        }
        Ok(())
    }

    /// The live record under `key`; one that does not parse counts as absent.
    pub async fn get<R: Record>(&self, key: &StoreKey, now: UnixTime) -> Result<Option<R>, Stop> {
        let found = self.store.get(R::KIND, *key.as_bytes(), secs(now)).await?;
        Ok(found.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
    }

    /// The live record under `key`, removed in the same atomic step: single use.
    async fn take<R: Record>(&self, key: &StoreKey, now: UnixTime) -> Result<Option<R>, Stop> {
        let found = self.store.take(R::KIND, *key.as_bytes(), secs(now)).await?;
        Ok(found.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
    }

    /// Deletes a grant, and with it every token it issued (R43, R53).
    async fn revoke(&self, grant: &StoreKey, now: UnixTime) -> Result<(), Stop> {
        Ok(self
            .store
            .delete(Kind::Grant, *grant.as_bytes(), secs(now))
            .await?)
    }
}

/// The route table. Unknown paths are 404, known ones with another method 405.
pub async fn route(app: &App, req: &Req) -> Resp {
    let (method, path) = (&req.method, req.path());
    let [as_paths, prm_paths] = &app.metadata_paths;
    let [callback_path, mcp_path] = &app.paths;
    let is_as = as_paths.iter().any(|p| p == path);
    if is_as || prm_paths.iter().any(|p| p == path) {
        // RFC 8414 and RFC 9728 documents: public, cached by nobody, readable cross-origin.
        return match *method {
            Method::OPTIONS => preflight("GET, OPTIONS"),
            Method::GET | Method::HEAD if is_as => {
                cors(reply(app.gate.authorization_server_metadata()))
            }
            Method::GET | Method::HEAD => cors(reply(app.gate.protected_resource_metadata())),
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
        (&Method::GET, p) if p == callback_path => callback(app, req).await,
        (_, p) if p == callback_path => Ok(method_not_allowed("GET")),
        (_, p) if p == mcp_path => crate::mcp::handle(app, req).await,
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
    let (client_id, redirect_hosts) = (client.client_id(), hosts.join(" "));
    info!(event = "client_registered", client_id, redirect_hosts);
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
            let (client_id, redirect_host) = who(&pending);
            info!(event = "consent_shown", client_id, redirect_host);
            app.put(&pending, now).await?;
            Ok(reply(page))
        }
        // Only with `--remember-consent`: a remembered approval for exactly this client,
        // redirect URI, scope and resource (R31).
        Authorization::Remembered(consent) => go_upstream(app, consent, now).await,
    }
}

/// Who a consent is about, for the log: the client id and the redirect host.
fn who(pending: &PendingConsent) -> (String, String) {
    let details = pending.details();
    let host = details.redirect_uri().host();
    (short(details.client_id()).into(), short(host).into())
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
    let (client_id, redirect_host) = pending.as_ref().map(who).unzip();
    let mut cookies = String::new();
    match app
        .gate
        .decide(form, pending, req.browser(&mut cookies), now)?
    {
        Decision::Approved(consent) => {
            info!(
                security = true,
                event = "consent_approved",
                client_id,
                redirect_host
            );
            go_upstream(app, consent, now).await
        }
        Decision::Denied(to_client) => {
            info!(
                security = true,
                event = "consent_denied",
                client_id,
                redirect_host
            );
            Ok(reply(to_client.response()))
        }
    }
}

/// `GET /callback`: the upstream sends the browser back here.
async fn callback(app: &App, req: &Req) -> Result<Resp, Stop> {
    let now = now();
    let callback = Callback::parse(req.query())?;
    // Taken BEFORE the upstream call, so a replayed `state` finds nothing (A7).
    let txn: Option<TransactionRecord> = app.take(&callback.transaction_key(), now).await?;
    let mut cookies = String::new();
    let verified = app
        .gate
        .verify_callback(callback, txn, req.browser(&mut cookies), now)?;
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
    let details = authenticated.details();
    let client_id = short(details.client_id()).into_owned();
    let redirect_host = short(details.redirect_uri().host()).into_owned();
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
            Some(refresh) => app.get(&refresh.grant_key(), now).await?,
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
                app.revoke(grant, now).await?;
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
        app.revoke(grant, now).await?;
        let client_id = client.as_ref().map(|c| short(c.client_id()).into_owned());
        info!(security = true, event = "grant_revoked", client_id);
    }
    Ok(reply(revocation.reply))
}
