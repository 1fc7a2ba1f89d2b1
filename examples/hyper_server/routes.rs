//! The OAuth endpoints of docs/http-contract.md#endpoints: each handler is the run loop of the
//! crate docs with the store and the network filled in. The order inside each one is the security:
//! records are *taken* before anything else happens (single use), and before any call to
//! the upstream.

use std::sync::Arc;

use consent_gate::paths;
use consent_gate::{
    Authorization, AuthorizeError, AuthorizeRequest, Callback, CallbackError, ClientRecord,
    CodeRecord, ConsentError, ConsentForm, ConsentGiven, Decision, Gate, GrantRecord,
    PendingConsent, RefreshRecord, RegistrationError, Reply, TokenError, TokenRequest,
    TransactionRecord, UnixTime,
};
use hyper::Method;

use crate::demo_upstream::DemoUpstream;
use crate::glue::{
    self, Fetched, Req, Resp, Upstream, V, cors, entropy, method_not_allowed, not_found, now,
    preflight, reply, security,
};
use crate::store::Store;

/// Everything a request handler needs; shared by all connections.
pub struct App {
    pub gate: Gate,
    pub store: Arc<dyn Store>,
    pub upstream: Upstream,
    pub demo: Option<DemoUpstream>,
    /// Our own origin (`scheme://host:port`), for the `Origin` check on `/mcp`.
    pub origin: String,
    prm_paths: Vec<String>,
    as_paths: Vec<String>,
    callback_path: String,
    mcp_path: String,
}

/// `(origin, path)` of an absolute URL the configuration already validated.
fn split_url(url: &str) -> (&str, &str) {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => url.split_at(after_scheme + i),
        None => (url, "/"),
    }
}

impl App {
    pub fn new(gate: Gate, store: Arc<dyn Store>, demo: Option<DemoUpstream>) -> Self {
        let config = gate.config();
        Self {
            prm_paths: gate.protected_resource_metadata_paths(),
            as_paths: gate.authorization_server_metadata_paths(),
            origin: split_url(config.issuer()).0.to_owned(),
            callback_path: split_url(config.callback_uri()).1.to_owned(),
            mcp_path: split_url(config.resource()).1.to_owned(),
            upstream: Upstream::new(),
            gate,
            store,
            demo,
        }
    }
}

/// The route table. Unknown paths are 404, known paths with the wrong method 405.
pub async fn route(app: &App, req: &Req) -> Resp {
    let path = req.path();
    let one_of = |paths: &[String]| paths.iter().any(|p| p == path);
    if one_of(&app.as_paths) {
        return metadata(&req.method, || app.gate.authorization_server_metadata());
    }
    if one_of(&app.prm_paths) {
        return metadata(&req.method, || app.gate.protected_resource_metadata());
    }
    // The back-channel endpoints a browser-based client calls with `fetch`: CORS (see
    // `glue::cors`), and nothing here reads a cookie.
    let api: Option<fn(&App, &Req) -> Resp> = match path {
        p if p == paths::REGISTER => Some(register),
        p if p == paths::TOKEN => Some(token),
        p if p == paths::REVOKE => Some(crate::revoke::revoke),
        _ => None,
    };
    if let Some(handler) = api {
        return match req.method {
            Method::POST => cors(handler(app, req)),
            Method::OPTIONS => preflight("POST, OPTIONS"),
            _ => method_not_allowed("POST, OPTIONS"),
        };
    }
    // The browser endpoints: top-level navigations that carry our cookies. No CORS.
    if path == paths::AUTHORIZE {
        return match req.method {
            Method::GET => authorize(app, req),
            Method::POST => decide(app, req),
            _ => method_not_allowed("GET, POST"),
        };
    }
    if path == app.callback_path {
        return match req.method {
            Method::GET => callback(app, req).await,
            _ => method_not_allowed("GET"),
        };
    }
    if path == app.mcp_path {
        return crate::mcp::handle(app, req).await;
    }
    match &app.demo {
        Some(demo) if path.starts_with("/demo-upstream/") => demo.handle(req),
        _ => not_found(),
    }
}

/// An RFC 8414 / RFC 9728 document: public, cacheable by nobody, readable cross-origin.
fn metadata(method: &Method, document: impl FnOnce() -> Reply) -> Resp {
    match *method {
        Method::GET | Method::HEAD => cors(reply(document())),
        Method::OPTIONS => preflight("GET, OPTIONS"),
        _ => method_not_allowed("GET, HEAD, OPTIONS"),
    }
}

/// `POST /register` (RFC 7591).
fn register(app: &App, req: &Req) -> Resp {
    let now = now();
    match app.gate.register(&req.body, now, &mut entropy) {
        Ok(registered) => {
            let client = registered.record;
            let hosts: Vec<String> = client
                .redirect_uris()
                .iter()
                .map(|u| u.host().to_owned())
                .collect();
            glue::info(
                "client_registered",
                &[
                    ("client_id", V::Str(client.client_id())),
                    ("redirect_hosts", V::ShortList(&hosts)),
                ],
            );
            app.store.put_record(client, now);
            reply(registered.reply)
        }
        Err(e) => {
            if matches!(e, RegistrationError::InvalidRedirectUri(_)) {
                security(
                    "redirect_rejected",
                    &[
                        ("at", V::Str("register")),
                        ("reason", V::Str(&e.to_string())),
                    ],
                );
            }
            reply(e.response())
        }
    }
}

/// `GET /authorize`: the consent page, or an error page (never a redirect, R16).
fn authorize(app: &App, req: &Req) -> Resp {
    let now = now();
    let request = match AuthorizeRequest::parse(req.query().as_bytes()) {
        Ok(r) => r,
        Err(e) => return reply(e.response()),
    };
    let client_id = glue::short(request.client_id());
    let client: Option<Arc<ClientRecord>> = app.store.get_record(&request.client_key(), now);
    let mut cookies = String::new();
    let browser = req.browser(&mut cookies);
    match app
        .gate
        .authorize(request, client.as_deref(), browser, now, &mut entropy)
    {
        Ok(Authorization::NeedsConsent(prompt)) => {
            let (pending, page) = prompt.into_parts();
            glue::info(
                "consent_shown",
                &[
                    ("client_id", V::Short(&client_id)),
                    (
                        "redirect_host",
                        V::Short(pending.details().redirect_uri().host()),
                    ),
                ],
            );
            app.store.put_record(pending, now);
            reply(page)
        }
        // Only with `ConsentPolicy::Remember` (off here): a remembered approval for exactly
        // this client, redirect URI, scope and resource.
        Ok(Authorization::Remembered(consent)) => go_upstream(app, consent, now),
        Err(e) => {
            match e {
                AuthorizeError::RedirectUriMismatch => security(
                    "redirect_rejected",
                    &[
                        ("at", V::Str("authorize")),
                        ("client_id", V::Short(&client_id)),
                    ],
                ),
                AuthorizeError::TamperedRecord => {
                    security("tampered_record", &[("kind", V::Str("client"))])
                }
                _ => {}
            }
            reply(e.response())
        }
    }
}

/// Spends the proof of consent: store the transaction, send the 303 with the binding
/// cookie.
fn go_upstream(app: &App, consent: ConsentGiven, now: UnixTime) -> Resp {
    let (txn, redirect) = app
        .gate
        .upstream_redirect(consent, now, &mut entropy)
        .into_parts();
    app.store.put_record(txn, now);
    reply(redirect)
}

/// `POST /authorize`: the consent decision.
fn decide(app: &App, req: &Req) -> Resp {
    let now = now();
    if !req.content_type_is("application/x-www-form-urlencoded") {
        return glue::text(415, "expected an HTML form submission");
    }
    let form = match ConsentForm::parse(&req.body) {
        Ok(f) => f,
        Err(e) => return reply(e.response()),
    };
    // Taken, not read: a second submission of the same page finds nothing.
    let pending: Option<PendingConsent> = app.store.take_record(&form.pending_key(), now);
    // Who the decision is about, for the log (the form itself names nobody).
    let who = pending.as_ref().map(|p| {
        (
            p.details().client_id().to_owned(),
            p.details().redirect_uri().host().to_owned(),
        )
    });
    let log = |event: &'static str, reason: Option<&str>| {
        let mut fields = Vec::with_capacity(3);
        if let Some((client_id, host)) = &who {
            fields.push(("client_id", V::Short(client_id)));
            fields.push(("redirect_host", V::Short(host)));
        }
        if let Some(reason) = reason {
            fields.push(("reason", V::Str(reason)));
        }
        security(event, &fields);
    };
    let mut cookies = String::new();
    let browser = req.browser(&mut cookies);
    match app.gate.decide(form, pending, browser, now) {
        Ok(Decision::Approved(consent)) => {
            log("consent_approved", None);
            go_upstream(app, consent, now)
        }
        Ok(Decision::Denied(to_client)) => {
            log("consent_denied", None);
            reply(to_client.response())
        }
        Err(e) => {
            let event = match e {
                ConsentError::TamperedRecord => "tampered_record",
                ConsentError::CsrfMismatch | ConsentError::CrossSite => "consent_forgery_refused",
                _ => "consent_refused",
            };
            log(event, Some(&e.to_string()));
            reply(e.response())
        }
    }
}

fn log_callback_error(e: &CallbackError) {
    let event = match e {
        CallbackError::BindingMismatch => "binding_mismatch",
        CallbackError::UnknownTransaction => "callback_replay_or_unknown",
        CallbackError::TamperedRecord => "tampered_record",
        CallbackError::IssuerMismatch => "issuer_mismatch",
        CallbackError::ClientChanged => "client_changed",
        CallbackError::Upstream { .. } => "upstream_failed",
        _ => "callback_refused",
    };
    security(event, &[("reason", V::Str(&e.to_string()))]);
}

/// `GET /callback`: the upstream sends the browser back here.
async fn callback(app: &App, req: &Req) -> Resp {
    let now = now();
    let cb = match Callback::parse(req.query().as_bytes()) {
        Ok(cb) => cb,
        Err(e) => {
            log_callback_error(&e);
            return reply(e.response());
        }
    };
    // Taken BEFORE the upstream call, so a replayed `state` finds nothing (A7).
    let txn: Option<TransactionRecord> = app.store.take_record(&cb.transaction_key(), now);
    let mut cookies = String::new();
    let browser = req.browser(&mut cookies);
    let verified = match app.gate.verify_callback(cb, txn, browser, now) {
        Ok(v) => v,
        Err(e) => {
            log_callback_error(&e);
            return reply(e.response());
        }
    };
    // Only ever with the A7 fault switched on (`--fault state_reusable`), which exists only
    // in builds with `--cfg consent_gate_faults`.
    #[cfg(consent_gate_faults)]
    if let Some(txn) = verified.reinsert() {
        app.store.put_record(txn.clone(), now);
    }
    let Some(tokens) = send(app, verified.token_request()).await else {
        return callback_failed(verified.upstream_unreachable());
    };
    let authenticated = match verified.accept_token_response(tokens.as_upstream()) {
        Ok(a) => a,
        Err(e) => {
            log_callback_error(&e);
            return reply(e.response());
        }
    };
    let Some(user) = send(app, &authenticated.user_request()).await else {
        return callback_failed(authenticated.upstream_unreachable());
    };
    // Looked up again: the redirect URI is re-validated against the live registration (R38).
    let client: Option<Arc<ClientRecord>> = app.store.get_record(&authenticated.client_key(), now);
    let client_id = authenticated.details().client_id().to_owned();
    let redirect_host = authenticated.details().redirect_uri().host().to_owned();
    match app.gate.issue_code(
        authenticated,
        user.as_upstream(),
        client.as_deref(),
        now,
        &mut entropy,
    ) {
        Ok(issued) => {
            let (code, redirect) = issued.into_parts();
            app.store.put_record(code, now);
            security(
                "code_issued",
                &[
                    ("client_id", V::Short(&client_id)),
                    ("redirect_host", V::Short(&redirect_host)),
                ],
            );
            reply(redirect)
        }
        Err(e) => {
            log_callback_error(&e);
            reply(e.response())
        }
    }
}

/// Sends a back-channel request for the core; `None` when the upstream is unreachable.
async fn send(app: &App, r: &consent_gate::HttpRequest) -> Option<Fetched> {
    match app.upstream.send(r).await {
        Ok(f) => Some(f),
        Err(why) => {
            glue::info(
                "upstream_unreachable",
                &[("url", V::Short(&r.url)), ("why", V::Str(why))],
            );
            None
        }
    }
}

/// A failed callback: logged, then the core's page or `server_error` redirect.
fn callback_failed(e: CallbackError) -> Resp {
    log_callback_error(&e);
    reply(e.response())
}

/// `POST /token`: the code and refresh grants.
fn token(app: &App, req: &Req) -> Resp {
    let now = now();
    let request = match TokenRequest::parse(&req.body, req.header("authorization")) {
        Ok(r) => r,
        Err(e) => return reply(e.response()),
    };
    let client: Option<Arc<ClientRecord>> = app.store.get_record(&request.client_key(), now);
    let result = if request.is_code_grant() {
        // Taken: two concurrent redemptions cannot both see an unredeemed code (A8).
        let code: Option<CodeRecord> = app.store.take_record(&request.record_key(), now);
        app.gate
            .redeem_code(&request, code, client.as_deref(), now, &mut entropy)
    } else {
        let refresh: Option<Arc<RefreshRecord>> = app.store.get_record(&request.record_key(), now);
        let grant: Option<Arc<GrantRecord>> = refresh
            .as_ref()
            .and_then(|r| app.store.get_record(&r.grant_key(), now));
        // Got, not taken (the core decides about rotation): the core gets its own copy.
        let refresh = refresh.map(|r| RefreshRecord::clone(&r));
        app.gate
            .redeem_refresh(&request, refresh, grant.as_deref(), client.as_deref(), now)
    };
    match result {
        Ok(issued) => {
            if let Some(grant) = issued.grant {
                app.store.put_record(grant, now);
            }
            for r in issued.refresh {
                app.store.put_record(r, now);
            }
            if let Some(successor) = issued.successor {
                // Never over a successor that was rotated since (A22).
                app.store.put_record_if_absent(successor, now);
            }
            if let Some(code) = issued.code {
                app.store.put_record(code, now);
            }
            reply(issued.reply)
        }
        Err(e) => {
            if let Some(grant) = e.revoke_grant() {
                // Revoked BEFORE the reply: every token of that grant is dead by the
                // time the replaying party reads the error (R43, R53).
                app.store
                    .delete(crate::store::Kind::Grant, grant.as_bytes());
                let event = match e {
                    TokenError::CodeReused { .. } => "code_replay_grant_revoked",
                    _ => "refresh_reuse_grant_revoked",
                };
                security(event, &[("client_id", V::Short(request.client_id()))]);
            } else if matches!(e, TokenError::InvalidGrant(_) | TokenError::InvalidClient) {
                security(
                    "token_refused",
                    &[
                        ("client_id", V::Short(request.client_id())),
                        ("reason", V::Str(&e.to_string())),
                    ],
                );
            }
            reply(e.response())
        }
    }
}
