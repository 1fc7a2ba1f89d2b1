//! The OAuth endpoints (docs/http-contract.md#endpoints), each the crate docs' host loop
//! with the store and the network filled in. The order inside each is the security:
//! single-use records are *taken* before anything else happens with them, and before any
//! call to the upstream (docs/design.md, the store contract).

use std::sync::Arc;

use consent_gate::{
    Authorization, AuthorizeError, AuthorizeRequest, Callback, CallbackError, ClientRecord,
    ConsentError, ConsentForm, ConsentGiven, Decision, Gate, GrantRecord, HttpRequest, Op,
    PendingConsent, Record, RefreshRecord, RegistrationError, Reply, RevocationRequest, Step,
    StoreKey, TokenError, TokenRequest, TransactionRecord, UnixTime, paths,
};
use consent_gate_store::{self as store, Kind, Store, StoreError};
use hyper::Method;
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

/// The core's namespaces in the store crate's terms.
fn kind(kind: consent_gate::Kind) -> Kind {
    match kind {
        consent_gate::Kind::Client => Kind::Client,
        consent_gate::Kind::Pending => Kind::Consent,
        consent_gate::Kind::Transaction => Kind::Transaction,
        consent_gate::Kind::Code => Kind::Code,
        consent_gate::Kind::Grant => Kind::Grant,
        consent_gate::Kind::Refresh => Kind::Refresh,
        other => Kind::Other(other.name()),
    }
}

/// The core gives registrations no expiry; a store must. A client whose registration is
/// gone registers again.
const CLIENT_LIFETIME: u64 = 90 * 24 * 3600;

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

    /// The one executor: a step's store operations in one atomic batch, then its reply.
    /// A record already expired needs no storing (the store refuses one).
    async fn apply(&self, step: impl Into<Step>, now: UnixTime) -> Result<Resp, Stop> {
        let step = step.into();
        let ops = step.ops.into_iter().filter_map(|op| {
            let (k, key) = (kind(op.kind()), *op.key().as_bytes());
            let until = |at: Option<UnixTime>| secs(at.unwrap_or(now.plus(CLIENT_LIFETIME)));
            match op {
                Op::Put {
                    value, expires_at, ..
                } if until(expires_at) > secs(now) => Some(store::Op::Put {
                    kind: k,
                    key,
                    value,
                    expires_at: until(expires_at),
                }),
                Op::PutIfAbsent {
                    value, expires_at, ..
                } if until(expires_at) > secs(now) => Some(store::Op::PutIfAbsent {
                    kind: k,
                    key,
                    value,
                    expires_at: until(expires_at),
                }),
                Op::Delete { .. } => Some(store::Op::Delete { kind: k, key }),
                _ => None,
            }
        });
        let ops: Vec<_> = ops.collect();
        if !ops.is_empty() {
            self.store.apply(ops, secs(now)).await?;
        }
        Ok(reply(step.reply))
    }

    /// The live record under `key`; one that does not parse counts as absent.
    pub async fn get<R: Record>(&self, key: &StoreKey, now: UnixTime) -> Result<Option<R>, Stop> {
        let found = self
            .store
            .get(kind(R::KIND), *key.as_bytes(), secs(now))
            .await?;
        Ok(found.and_then(|bytes| R::decode(&bytes)))
    }

    /// The live record under `key`, removed in the same atomic step: single use.
    async fn take<R: Record>(&self, key: &StoreKey, now: UnixTime) -> Result<Option<R>, Stop> {
        let found = self
            .store
            .take(kind(R::KIND), *key.as_bytes(), secs(now))
            .await?;
        Ok(found.and_then(|bytes| R::decode(&bytes)))
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
    app.apply(registered, now).await
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
            let (client_id, redirect_host) = who(prompt.pending_record());
            info!(event = "consent_shown", client_id, redirect_host);
            app.apply(prompt, now).await
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
    let redirect = app.gate.upstream_redirect(consent, now, &mut entropy);
    app.apply(redirect, now).await
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
        let (key, until) = (*txn.store_key().as_bytes(), txn.expiry().unwrap_or(now));
        let k = kind(TransactionRecord::KIND);
        app.store
            .put(k, key, txn.encode(), secs(until), secs(now))
            .await?;
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
    info!(
        security = true,
        event = "code_issued",
        client_id,
        redirect_host
    );
    app.apply(issued, now).await
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
    match result {
        // The grant, the refresh records, the redeemed code; the successor of a rotated
        // refresh token only where none is (R63, A22).
        Ok(issued) => app.apply(issued, now).await,
        Err(e) => {
            if e.revoke_grant().is_some() {
                // Revoked BEFORE the reply: every token of that grant is dead by the time
                // the replaying party reads the error (R43, R53).
                app.apply(e.clone(), now).await?;
                let event = match e {
                    TokenError::CodeReused { .. } => "code_replay_grant_revoked",
                    _ => "refresh_reuse_grant_revoked",
                };
                warn!(security = true, event, client_id = %short(request.client_id()));
            }
            Err(e.into())
        }
    }
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
    if revocation.revoke_grant.is_some() {
        let client_id = client.as_ref().map(|c| short(c.client_id()).into_owned());
        info!(security = true, event = "grant_revoked", client_id);
    }
    // The grant is deleted before the reply: the client may rely on "200 means gone".
    app.apply(revocation, now).await
}
