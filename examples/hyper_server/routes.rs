//! The OAuth endpoints (docs/http-contract.md#endpoints), each the crate docs' host loop
//! with a store and a network, and the one executor of the core's `Step`s. The order
//! inside each handler is the security: single-use records are *taken* before anything
//! else happens with them, and before any call to the upstream (docs/design.md#steps).

use std::sync::Arc;

use consent_gate::{Authorization, AuthorizationDetails as Details, Callback, ClientRecord};
use consent_gate::{
    ConsentForm, Decision, Gate, HttpRequest, PendingConsent, RefreshRecord, Reply,
};
use consent_gate::{RevocationRequest, Step, TokenError, TokenRequest, UnixTime, paths};
use consent_gate_store::{Executor, Store, StoreError};
use hyper::Method;
use tracing::{info, warn};

use crate::{Fetched, Req, Resp, Upstream, browser, declared_as, demo_upstream::DemoUpstream};
use crate::{entropy, header, now, response, short};

/// The answer to send instead of going on: a refusal of the core as its `Step` (with its
/// store operations: a replayed code's grant is deleted before the error is sent, R43), or
/// `503` when the store failed.
pub struct Stop(pub Step);

impl From<StoreError> for Stop {
    /// A full store is the newcomer's problem, said plainly: 429, never a reason to push
    /// out someone already stored (R64). Any other failure is a 503.
    fn from(error: StoreError) -> Self {
        warn!(event = "store_failed", %error);
        let (status, message, retry) = match error {
            StoreError::QuotaExceeded(_) => (429, "too many sign-ins right now, try later", "60"),
            _ => (503, "storage unavailable, try again", "5"),
        };
        let reply = Reply::text(status, message).with_header("retry-after", retry);
        Stop(reply.into())
    }
}

// Every refusal of the core is a security event in the log, named after its variant.
macro_rules! refusals {
    ($($error:ident)*) => {$(
        impl From<consent_gate::$error> for Stop {
            fn from(e: consent_gate::$error) -> Self {
                warn!(security = true, event = %variant(&e), reason = %e);
                Stop(e.into())
            }
        }
    )*};
}
refusals!(AuthorizeError ConsentError CallbackError TokenError RegistrationError);

/// An error's variant in snake case (`BindingMismatch`: `binding_mismatch`). Only the
/// name: a variant's fields may carry attacker text.
pub fn variant(e: &impl std::fmt::Debug) -> String {
    let (debug, mut event) = (format!("{e:?}"), String::new());
    for (i, c) in debug
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .enumerate()
    {
        event.extend((i > 0 && c.is_uppercase()).then_some('_'));
        event.push(c.to_ascii_lowercase());
    }
    event
}

/// Everything a request handler needs; shared by all connections.
pub struct App {
    pub gate: Gate,
    pub exec: Executor,
    pub upstream: Upstream,
    demo: Option<DemoUpstream>,
    /// Our origin (`scheme://host:port`); the callback and MCP paths; the metadata paths.
    pub origin: String,
    paths: [String; 2],
    metadata: [Vec<String>; 2],
}

impl App {
    pub fn new(gate: Gate, store: Arc<dyn Store>, demo: Option<DemoUpstream>) -> Self {
        let url = |u: &str| url::Url::parse(u).expect("a URL the configuration validated");
        let (resource, callback) = (url(gate.config().resource()), gate.config().callback_uri());
        let paths = [url(callback).path().to_owned(), resource.path().to_owned()];
        let as_paths = gate.authorization_server_metadata_paths();
        let metadata = [as_paths, gate.protected_resource_metadata_paths()];
        let (origin, upstream) = (resource.origin().ascii_serialization(), Upstream::new());
        let exec = Executor::new(store);
        App {
            gate,
            exec,
            upstream,
            demo,
            origin,
            paths,
            metadata,
        }
    }
}

/// An answer that needs no store operation.
fn ok(reply: Reply) -> Result<Step, Stop> {
    Ok(reply.into())
}

fn not_allowed(allow: &'static str) -> Result<Step, Stop> {
    ok(Reply::text(405, "method not allowed").with_header("allow", allow))
}

/// The route table. Unknown paths are 404, known ones with another method 405.
pub async fn route(app: &App, req: &Req) -> Resp {
    let (method, path, now) = (req.method(), req.uri().path(), now());
    let [as_paths, resource_paths] = &app.metadata;
    let as_doc = as_paths.iter().any(|p| p == path);
    let metadata = as_doc || resource_paths.iter().any(|p| p == path);
    // CORS on what a browser-based client calls with `fetch` (`cors`), never on the
    // browser endpoints `/authorize` and `/callback` (R22).
    let back_channel = metadata || [paths::REGISTER, paths::TOKEN, paths::REVOKE].contains(&path);
    let ([callback_path, mcp_path], gate) = (&app.paths, &app.gate);
    let step = match (method, path) {
        (&Method::GET | &Method::HEAD, _) if as_doc => ok(gate.authorization_server_metadata()),
        (&Method::GET | &Method::HEAD, _) if metadata => ok(gate.protected_resource_metadata()),
        (&Method::OPTIONS, _) if metadata => ok(preflight("GET, OPTIONS")),
        _ if metadata => not_allowed("GET, HEAD, OPTIONS"),
        (&Method::POST, paths::REGISTER) => register(app, req, now).await,
        (&Method::POST, paths::TOKEN) => token(app, req, now).await,
        (&Method::POST, paths::REVOKE) => revoke(app, req, now).await,
        (&Method::OPTIONS, _) if back_channel => ok(preflight("POST, OPTIONS")),
        _ if back_channel => not_allowed("POST, OPTIONS"),
        (&Method::GET, paths::AUTHORIZE) => authorize(app, req, now).await,
        (&Method::POST, paths::AUTHORIZE) => decide(app, req, now).await,
        (_, paths::AUTHORIZE) => not_allowed("GET, POST"),
        (&Method::GET, p) if p == callback_path => callback(app, req, now).await,
        (_, p) if p == callback_path => not_allowed("GET"),
        (_, p) if p == mcp_path => crate::mcp::handle(app, req, now).await.map(Step::from),
        (_, p) => match &app.demo {
            Some(demo) if p.starts_with("/demo-upstream/") => ok(demo.handle(req)),
            _ => ok(Reply::text(404, "not found")),
        },
    };
    let step = step.unwrap_or_else(|Stop(refusal)| refusal);
    let reply = app.exec.apply(step, now).await;
    let reply = reply.unwrap_or_else(|error| Stop::from(error).0.reply);
    response(if back_channel { cors(reply) } else { reply })
}

/// `Access-Control-Allow-Origin: *`: none of these endpoints reads a cookie and `*` never
/// lets a browser attach credentials, so a foreign page gains nothing it could not get
/// with curl.
fn cors(reply: Reply) -> Reply {
    let reply = reply.with_header("access-control-allow-origin", "*");
    reply.with_header("access-control-expose-headers", "www-authenticate")
}

/// The answer to a CORS preflight on those endpoints.
fn preflight(methods: &'static str) -> Reply {
    let allow_headers = "authorization, content-type, mcp-protocol-version";
    let reply = Reply::text(204, "").with_header("access-control-allow-methods", methods);
    let reply = reply.with_header("access-control-allow-headers", allow_headers);
    reply.with_header("access-control-max-age", "600")
}

/// `POST /register` (RFC 7591).
async fn register(app: &App, req: &Req, now: UnixTime) -> Result<Step, Stop> {
    let registered = app.gate.register(req.body(), now, &mut entropy)?;
    let client = &registered.record;
    let hosts: Vec<_> = client.redirect_uris().iter().map(|u| u.host()).collect();
    let (client_id, redirect_hosts) = (client.client_id(), short(&hosts.join(" ")).into_owned());
    info!(event = "client_registered", client_id, redirect_hosts);
    Ok(registered.into())
}

/// `GET /authorize`: the consent page, or an error page (never a redirect, R16).
async fn authorize(app: &App, req: &Req, now: UnixTime) -> Result<Step, Stop> {
    let (gate, mut cookies) = (&app.gate, String::new());
    let request = consent_gate::AuthorizeRequest::parse(query(req))?;
    let client = app.exec.client(&request.client_key(), now).await?;
    let (client, browser) = (client.as_deref(), browser(req, &mut cookies));
    match gate.authorize(request, client, browser, now, &mut entropy)? {
        Authorization::NeedsConsent(prompt) => {
            log(
                "consent_shown",
                Some(who(prompt.pending_record().details())),
            );
            Ok(prompt.into())
        }
        // Only with `--remember-consent`: a remembered approval for exactly this client,
        // redirect URI, scope and resource (R31), spent on the 303 upstream.
        Authorization::Remembered(yes) => Ok(gate.upstream_redirect(yes, now, &mut entropy).into()),
    }
}

/// Who an authorization is about, for the log: its client id and redirect host.
fn who(d: &Details) -> [String; 2] {
    [
        short(d.client_id()).into(),
        short(d.redirect_uri().host()).into(),
    ]
}

/// An event about one authorization; every one but the page shown is a security event.
fn log(event: &'static str, who: Option<[String; 2]>) {
    let [client_id, redirect_host] = who.unwrap_or_default();
    info!(
        security = event != "consent_shown",
        event, client_id, redirect_host
    );
}

/// `POST /authorize`: the consent decision.
async fn decide(app: &App, req: &Req, now: UnixTime) -> Result<Step, Stop> {
    if !declared_as(req, "application/x-www-form-urlencoded") {
        return ok(Reply::text(415, "expected an HTML form submission"));
    }
    let (gate, mut cookies) = (&app.gate, String::new());
    let form = ConsentForm::parse(req.body())?;
    // Taken, not read: a second submission of the same page finds nothing (R36).
    let pending: Option<PendingConsent> = app.exec.take(&form.pending_key(), now).await?;
    let about = pending.as_ref().map(|p| who(p.details()));
    match gate.decide(form, pending, browser(req, &mut cookies), now)? {
        Decision::Approved(yes) => {
            log("consent_approved", about);
            Ok(gate.upstream_redirect(yes, now, &mut entropy).into())
        }
        Decision::Denied(to_client) => {
            log("consent_denied", about);
            Ok(to_client.into())
        }
    }
}

/// `GET /callback`: the upstream sends the browser back here.
async fn callback(app: &App, req: &Req, now: UnixTime) -> Result<Step, Stop> {
    let (gate, mut cookies) = (&app.gate, String::new());
    let callback = Callback::parse(query(req))?;
    // Taken BEFORE the upstream call, so a replayed `state` finds nothing (A7).
    let txn = app.exec.take(&callback.transaction_key(), now).await?;
    let verified = gate.verify_callback(callback, txn, browser(req, &mut cookies), now)?;
    // Only with the A7 fault on (`--fault state_reusable`, builds with
    // `--cfg consent_gate_faults`): the transaction goes back into the store.
    #[cfg(consent_gate_faults)]
    if let Some(txn) = verified.reinsert() {
        let again = Step {
            ops: vec![consent_gate::Op::put(txn)],
            reply: Reply::text(200, ""),
        };
        let _placeholder_reply = app.exec.apply(again, now).await?;
    }
    let Some(tokens) = send(app, verified.token_request()).await else {
        return Err(verified.upstream_unreachable().into());
    };
    let authenticated = verified.accept_token_response(tokens.as_upstream())?;
    let Some(user) = send(app, &authenticated.user_request()).await else {
        return Err(authenticated.upstream_unreachable().into());
    };
    // From the store, not the cache: the redirect URI is checked against the live
    // registration (R38).
    let client: Option<ClientRecord> = app.exec.get(&authenticated.client_key(), now).await?;
    let (about, user) = (who(authenticated.details()), user.as_upstream());
    let issued = gate.issue_code(authenticated, user, client.as_ref(), now, &mut entropy)?;
    log("code_issued", Some(about));
    Ok(issued.into())
}

/// A back-channel request for the core; `None` when the upstream is unreachable.
async fn send(app: &App, r: &HttpRequest) -> Option<Fetched> {
    let sent = app.upstream.send(r).await;
    let url = short(&r.url);
    sent.inspect_err(|why| warn!(event = "upstream_unreachable", %url, why))
        .ok()
}

/// `POST /token`: the code and refresh grants.
async fn token(app: &App, req: &Req, now: UnixTime) -> Result<Step, Stop> {
    let request = TokenRequest::parse(req.body(), header(req, "authorization"))?;
    let (gate, key) = (&app.gate, request.record_key());
    let client = app.exec.client(&request.client_key(), now).await?;
    let client = client.as_deref();
    let issued = if request.is_code_grant() {
        // Taken: two concurrent redemptions cannot both see an unredeemed code (A8).
        let code = app.exec.take(&key, now).await?;
        gate.redeem_code(&request, code, client, now, &mut entropy)
    } else {
        // Got, not taken: the core decides about rotation and says what to write.
        let refresh: Option<RefreshRecord> = app.exec.get(&key, now).await?;
        let grant = match &refresh {
            Some(refresh) => app.exec.get(&refresh.grant_key(), now).await?,
            None => None,
        };
        gate.redeem_refresh(&request, refresh, grant.as_ref(), client, now)
    };
    // A replayed code or a reused refresh token: the refusal's step deletes the grant
    // before the error is sent, so every token of it is dead by then (R43, R53).
    let event = match &issued {
        Err(TokenError::CodeReused { .. }) => "code_replay_grant_revoked",
        Err(TokenError::RefreshReused { .. }) => "refresh_reuse_grant_revoked",
        _ => "",
    };
    if !event.is_empty() {
        warn!(security = true, event, client_id = %short(request.client_id()));
    }
    // The grant, the refresh records, the redeemed code; the successor of a rotated
    // refresh token only where none is (R63, A22).
    Ok(issued?.into())
}

/// `POST /revoke` (RFC 7009): a client revokes one of its tokens, and with it the grant.
async fn revoke(app: &App, req: &Req, now: UnixTime) -> Result<Step, Stop> {
    let request = RevocationRequest::parse(req.body(), header(req, "authorization"))?;
    let client = app.exec.client(&request.client_key(), now).await?;
    // Got, not taken: an unknown or foreign token must change nothing (RFC 7009 §2.2).
    let refresh: Option<RefreshRecord> = app.exec.get(&request.refresh_key(), now).await?;
    let (client, refresh) = (client.as_deref(), refresh.as_ref());
    let revocation = app.gate.revoke(&request, client, refresh, now)?;
    if revocation.revoke_grant.is_some() {
        let client_id = client.map(|c| short(c.client_id()).into_owned());
        info!(security = true, event = "grant_revoked", client_id);
    }
    // The grant is deleted before the reply: the client may rely on "200 means gone".
    Ok(revocation.into())
}

fn query(req: &Req) -> &[u8] {
    req.uri().query().unwrap_or("").as_bytes()
}
