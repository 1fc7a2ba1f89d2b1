//! The OAuth endpoints (docs/http-contract.md#endpoints), each the core's host loop with
//! the store and the network filled in. The order inside each is the security: single-use
//! records are *taken* before anything else happens with them, and before any call to the
//! upstream (docs/design.md#store-contract).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::Response;
use axum::routing::{any, get};
use consent_gate::{
    Authorization, AuthorizeRequest, Callback, ClientRecord, ConsentForm, ConsentGiven, Decision,
    Gate, GrantRecord, HttpRequest, PendingConsent, RefreshRecord, RevocationRequest, TokenError,
    TokenRequest, TransactionRecord, UnixTime, paths,
};
use tracing::{info, warn};

use crate::executor::{Executor, Stop};
use crate::io::{Req, cors, entropy, method_not_allowed, now, preflight, reply, short, text};
use crate::upstream::{Fetched, UpstreamClient};

/// What every handler and the guard share: the gate, the store, the upstream client.
pub struct Shared {
    pub gate: Gate,
    pub exec: Executor,
    pub upstream: UpstreamClient,
    /// Our origin (`scheme://host[:port]`), for the MCP transport's `Origin` check.
    pub origin: String,
}

impl Shared {
    pub fn new(gate: Gate, exec: Executor, upstream: UpstreamClient) -> Self {
        let origin = split_url(gate.config().resource()).0.to_owned();
        Shared {
            gate,
            exec,
            upstream,
            origin,
        }
    }
}

type Host = State<Arc<Shared>>;

/// Every OAuth endpoint of the HTTP contract, on the paths the configuration names.
pub fn router(shared: Arc<Shared>) -> Router {
    let config = shared.gate.config();
    let callback_path = split_url(config.callback_uri()).1.to_owned();
    let mut router = Router::new()
        .route(paths::REGISTER, any(register))
        .route(paths::TOKEN, any(token))
        .route(paths::REVOKE, any(revoke))
        .route(paths::AUTHORIZE, any(authorize))
        .route(&callback_path, any(callback))
        .route("/healthz", get(|| async { text(200, "ok") }));
    for path in shared.gate.authorization_server_metadata_paths() {
        router = router.route(&path, any(as_metadata));
    }
    for path in shared.gate.protected_resource_metadata_paths() {
        router = router.route(&path, any(resource_metadata));
    }
    router.with_state(shared)
}

/// `(origin, path)` of an absolute URL the configuration validated; `/` for no path.
fn split_url(url: &str) -> (&str, &str) {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => url.split_at(after_scheme + i),
        None => (url, "/"),
    }
}

fn answer(result: Result<Response, Stop>) -> Response {
    result.unwrap_or_else(Stop::into_response)
}

/// RFC 8414 and RFC 9728 documents: public, cached by nobody, readable cross-origin.
async fn as_metadata(State(host): Host, request: Request<Body>) -> Response {
    match *request.method() {
        Method::OPTIONS => preflight("GET, OPTIONS"),
        Method::GET | Method::HEAD => cors(reply(host.gate.authorization_server_metadata())),
        _ => method_not_allowed("GET, HEAD, OPTIONS"),
    }
}

async fn resource_metadata(State(host): Host, request: Request<Body>) -> Response {
    match *request.method() {
        Method::OPTIONS => preflight("GET, OPTIONS"),
        Method::GET | Method::HEAD => cors(reply(host.gate.protected_resource_metadata())),
        _ => method_not_allowed("GET, HEAD, OPTIONS"),
    }
}

/// The back-channel endpoints a browser-based client calls with `fetch`: CORS, and none
/// of them reads a cookie.
async fn back_channel(
    request: Request<Body>,
    handler: impl AsyncFnOnce(Req) -> Result<Response, Stop>,
) -> Response {
    match *request.method() {
        Method::POST => match Req::read(request).await {
            Ok(req) => cors(answer(handler(req).await)),
            Err(refused) => cors(refused),
        },
        Method::OPTIONS => preflight("POST, OPTIONS"),
        _ => method_not_allowed("POST, OPTIONS"),
    }
}

/// `POST /register` (RFC 7591).
async fn register(State(host): Host, request: Request<Body>) -> Response {
    back_channel(request, async |req| {
        let now = now();
        let registered = host.gate.register(&req.body, now, &mut entropy)?;
        let client = &registered.record;
        let hosts: Vec<_> = client
            .redirect_uris()
            .iter()
            .map(|u| short(u.host()).into_owned())
            .collect();
        let (client_id, redirect_hosts) = (client.client_id(), hosts.join(" "));
        info!(event = "client_registered", client_id, redirect_hosts);
        host.exec.apply(registered, now).await
    })
    .await
}

/// `GET /authorize`: the consent page, or an error page (never a redirect, R16);
/// `POST /authorize`: the decision.
async fn authorize(State(host): Host, request: Request<Body>) -> Response {
    let method = request.method().clone();
    let req = match Req::read(request).await {
        Ok(req) => req,
        Err(refused) => return refused,
    };
    answer(match method {
        Method::GET => show_consent(&host, &req).await,
        Method::POST => decide(&host, &req).await,
        _ => Ok(method_not_allowed("GET, POST")),
    })
}

async fn show_consent(host: &Shared, req: &Req) -> Result<Response, Stop> {
    let now = now();
    let request = AuthorizeRequest::parse(req.query())?;
    let client = host.exec.client(&request.client_key(), now).await?;
    let mut cookies = String::new();
    let browser = req.browser(&mut cookies);
    match host
        .gate
        .authorize(request, client.as_deref(), browser, now, &mut entropy)?
    {
        Authorization::NeedsConsent(prompt) => {
            let (client_id, redirect_host) = who(prompt.pending_record());
            info!(event = "consent_shown", client_id, redirect_host);
            host.exec.apply(prompt, now).await
        }
        // Only with a remembering consent policy: an approval for exactly this client,
        // redirect URI, scope and resource (R31).
        Authorization::Remembered(consent) => go_upstream(host, consent, now).await,
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
async fn go_upstream(
    host: &Shared,
    consent: ConsentGiven,
    now: UnixTime,
) -> Result<Response, Stop> {
    let redirect = host.gate.upstream_redirect(consent, now, &mut entropy);
    host.exec.apply(redirect, now).await
}

async fn decide(host: &Shared, req: &Req) -> Result<Response, Stop> {
    let now = now();
    if !req.is("application/x-www-form-urlencoded") {
        return Ok(text(415, "expected an HTML form submission"));
    }
    let form = ConsentForm::parse(&req.body)?;
    // Taken, not read: a second submission of the same page finds nothing (R36).
    let pending: Option<PendingConsent> = host.exec.take(&form.pending_key(), now).await?;
    let (client_id, redirect_host) = pending.as_ref().map(who).unzip();
    let mut cookies = String::new();
    match host
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
            go_upstream(host, consent, now).await
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

/// The upstream sends the browser back here.
async fn callback(State(host): Host, request: Request<Body>) -> Response {
    if request.method() != Method::GET {
        return method_not_allowed("GET");
    }
    match Req::read(request).await {
        Ok(req) => answer(finish_sign_in(&host, &req).await),
        Err(refused) => refused,
    }
}

async fn finish_sign_in(host: &Shared, req: &Req) -> Result<Response, Stop> {
    let now = now();
    let callback = Callback::parse(req.query())?;
    // Taken BEFORE the upstream call, so a replayed `state` finds nothing (A7).
    let txn: Option<TransactionRecord> = host.exec.take(&callback.transaction_key(), now).await?;
    let mut cookies = String::new();
    let verified = host
        .gate
        .verify_callback(callback, txn, req.browser(&mut cookies), now)?;
    let Some(tokens) = send(host, verified.token_request()).await else {
        return Err(verified.upstream_unreachable().into());
    };
    let authenticated = verified.accept_token_response(tokens.as_upstream())?;
    let Some(user) = send(host, &authenticated.user_request()).await else {
        return Err(authenticated.upstream_unreachable().into());
    };
    // Looked up again: the redirect URI is checked against the live registration (R38).
    let client: Option<ClientRecord> = host.exec.get(&authenticated.client_key(), now).await?;
    let details = authenticated.details();
    let client_id = short(details.client_id()).into_owned();
    let redirect_host = short(details.redirect_uri().host()).into_owned();
    let issued = host.gate.issue_code(
        authenticated,
        user.as_upstream(),
        client.as_ref(),
        now,
        &mut entropy,
    )?;
    info!(
        security = true,
        event = "code_issued",
        client_id,
        redirect_host
    );
    host.exec.apply(issued, now).await
}

/// A back-channel request for the core; `None` when the upstream is unreachable.
async fn send(host: &Shared, r: &HttpRequest) -> Option<Fetched> {
    let sent = host.upstream.send(r).await;
    sent.inspect_err(|why| {
        let url = short(r.url.split('?').next().unwrap_or(""));
        warn!(event = "upstream_unreachable", url = %url, why);
    })
    .ok()
}

/// `POST /token`: the code and refresh grants.
async fn token(State(host): Host, request: Request<Body>) -> Response {
    back_channel(request, async |req| {
        let now = now();
        let request = TokenRequest::parse(&req.body, req.header("authorization"))?;
        let client = host.exec.client(&request.client_key(), now).await?;
        let result = if request.is_code_grant() {
            // Taken: two concurrent redemptions cannot both see an unredeemed code (A8).
            let code = host.exec.take(&request.record_key(), now).await?;
            host.gate
                .redeem_code(&request, code, client.as_deref(), now, &mut entropy)
        } else {
            // Got, not taken: the core decides about rotation and says what to write.
            let refresh: Option<RefreshRecord> = host.exec.get(&request.record_key(), now).await?;
            let grant: Option<GrantRecord> = match &refresh {
                Some(refresh) => host.exec.get(&refresh.grant_key(), now).await?,
                None => None,
            };
            host.gate
                .redeem_refresh(&request, refresh, grant.as_ref(), client.as_deref(), now)
        };
        match result {
            // The grant, the refresh records, the redeemed code; the successor of a
            // rotated refresh token only where none is (R63, A22).
            Ok(issued) => host.exec.apply(issued, now).await,
            Err(e) => {
                if e.revoke_grant().is_some() {
                    // Revoked BEFORE the reply: every token of that grant is dead by the
                    // time the replaying party reads the error (R43, R53).
                    host.exec.apply(e.clone(), now).await?;
                    let event = match e {
                        TokenError::CodeReused { .. } => "code_replay_grant_revoked",
                        _ => "refresh_reuse_grant_revoked",
                    };
                    warn!(security = true, event, client_id = %short(request.client_id()));
                }
                Err(e.into())
            }
        }
    })
    .await
}

/// `POST /revoke` (RFC 7009): a client revokes one of its tokens, and with it the grant.
async fn revoke(State(host): Host, request: Request<Body>) -> Response {
    back_channel(request, async |req| {
        let now = now();
        let request = RevocationRequest::parse(&req.body, req.header("authorization"))?;
        let client = host.exec.client(&request.client_key(), now).await?;
        // Got, not taken: an unknown or foreign token must change nothing (RFC 7009 §2.2).
        let refresh: Option<RefreshRecord> = host.exec.get(&request.refresh_key(), now).await?;
        let revocation = host
            .gate
            .revoke(&request, client.as_deref(), refresh.as_ref(), now)?;
        if revocation.revoke_grant.is_some() {
            let client_id = client.as_ref().map(|c| short(c.client_id()).into_owned());
            info!(security = true, event = "grant_revoked", client_id);
        }
        // The grant is deleted before the reply: the client may rely on "200 means gone".
        host.exec.apply(revocation, now).await
    })
    .await
}
