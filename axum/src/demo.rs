//! A demo upstream: a stand-in for github.com under `/demo-upstream/`, for a user who
//! authorized the server's OAuth app before (docs/upstreams.md#github-returning-user).
//!
//! Like GitHub for a returning user, its `/authorize` shows no screen and redirects
//! straight back with a code; that is what makes the confused deputy real on a laptop,
//! and the gate's own consent page what stops it. `/token` and `/user` answer in GitHub's
//! shapes (docs/upstreams.md#fixtures: F5, F7, F14, F15, F16), so the code path that
//! serves the demo is the one that serves GitHub. Its codes and tokens live in the
//! host's store and its client secret is derived from the server key, so replicas that
//! share a store and a key share the demo upstream too.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::Response;
use axum::routing::any;
use base64::Engine as _;
use consent_gate::{ClientSecret, UpstreamConfig};
use consent_gate_store::{Kind, Store};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::executor::secs;
use crate::io::{Req, entropy, method_not_allowed, now, respond, text};

/// GitHub's documented code lifetime.
const CODE_LIFETIME: u64 = 600;
/// How long the demo remembers a token it issued.
const TOKEN_LIFETIME: u64 = 8 * 3600;
const CODES: Kind = Kind::Other("demo_upstream_code");
const TOKENS: Kind = Kind::Other("demo_upstream_token");

/// The one user this upstream knows: F14.
const USER: &str = r#"{"login":"octocat","id":1,"node_id":"MDQ6VXNlcjE=","avatar_url":"https://github.com/images/error/octocat_happy.gif","html_url":"https://github.com/octocat","type":"User","site_admin":false,"name":"monalisa octocat","email":null,"created_at":"2008-01-14T04:33:35Z","updated_at":"2008-01-14T04:33:35Z"}"#;

/// The demo upstream served under `{base}/demo-upstream`.
pub struct DemoUpstream {
    base: String,
    client_id: &'static str,
    client_secret: String,
    callback: String,
    store: Arc<dyn Store>,
}

impl DemoUpstream {
    /// The demo upstream for a server at `base` whose callback is `callback`, with its
    /// state in `store`, and the gate's configuration for it. `seed` (the server key's
    /// bytes) derives the OAuth app's secret, the same on every replica.
    pub fn routes(
        base: &str,
        callback: &str,
        seed: &[u8],
        store: Arc<dyn Store>,
    ) -> (Router, UpstreamConfig) {
        let secret = hex(&Sha256::new()
            .chain_update("demo upstream client secret\0")
            .chain_update(seed)
            .finalize()[..20]);
        let demo = DemoUpstream {
            base: format!("{base}/demo-upstream"),
            client_id: "Ov23liDEMO",
            client_secret: secret,
            callback: callback.to_owned(),
            store,
        };
        let mut up = UpstreamConfig::custom(
            "Demo GitHub",
            format!("{}/authorize", demo.base),
            format!("{}/token", demo.base),
            format!("{}/user", demo.base),
            demo.client_id,
            ClientSecret::new(demo.client_secret.clone()),
        );
        up.issuer = Some(demo.base.clone());
        up.scopes = vec!["read:user".into()];
        up.subject_prefix = "demo-github:".into();
        let router = Router::new()
            .route("/demo-upstream/authorize", any(authorize))
            .route("/demo-upstream/token", any(token))
            .route("/demo-upstream/user", any(user))
            .with_state(Arc::new(demo));
        (router, up)
    }
}

type Demo = State<Arc<DemoUpstream>>;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    entropy(&mut bytes);
    hex(&bytes)
}

fn key(kind: &str, handle: &str) -> [u8; 32] {
    Sha256::new()
        .chain_update(kind)
        .chain_update([0])
        .chain_update(handle)
        .finalize()
        .into()
}

/// A parameter's value; the last one wins (the demo is not the strict party here).
fn last(raw: &[u8], name: &str) -> Option<String> {
    let found = url::form_urlencoded::parse(raw)
        .filter(|(k, _)| k == name)
        .last();
    found.map(|(_, v)| v.into_owned())
}

/// Silent approval: straight back to the callback with `code`, `state` and `iss`. An
/// unknown app is a 404 page; a foreign `redirect_uri` an error page, never a redirect.
async fn authorize(State(demo): Demo, request: Request<Body>) -> Response {
    if request.method() != Method::GET {
        return method_not_allowed("GET");
    }
    let query = request.uri().query().unwrap_or("").as_bytes().to_vec();
    let get = |k: &str| last(&query, k);
    if get("client_id").as_deref() != Some(demo.client_id) {
        return text(404, "Not Found");
    }
    let redirect_uri = get("redirect_uri");
    if redirect_uri.as_deref().is_some_and(|r| r != demo.callback) {
        return text(
            400,
            "Be careful! The redirect_uri is not associated with this application.",
        );
    }
    let challenge = match (
        get("code_challenge"),
        get("code_challenge_method").as_deref(),
    ) {
        (None, None) => String::new(),
        (Some(c), Some("S256")) if c.len() == 43 => c,
        _ => return text(400, "Only the S256 code challenge method is accepted."),
    };
    let code = random_hex(10);
    let record = serde_json::json!({
        "redirect_uri": redirect_uri,
        "challenge": challenge,
        "scope": get("scope").unwrap_or_default().split(' ').filter(|s| !s.is_empty()).collect::<Vec<_>>().join(","),
    });
    let now = now();
    let stored = demo
        .store
        .put(
            CODES,
            key("code", &code),
            record.to_string().into_bytes(),
            secs(now.plus(CODE_LIFETIME)),
            secs(now),
        )
        .await;
    if stored.is_err() {
        return text(503, "demo upstream storage unavailable");
    }
    let mut back = url::form_urlencoded::Serializer::new(String::new());
    back.append_pair("code", &code);
    if let Some(state) = get("state") {
        back.append_pair("state", &state);
    }
    back.append_pair("iss", &demo.base);
    let mut resp = respond(302, "text/html; charset=utf-8", "");
    if let Ok(location) = format!("{}?{}", demo.callback, back.finish()).parse() {
        resp.headers_mut().insert("location", location);
    }
    resp
}

/// The token exchange, answered like GitHub with `Accept: application/json`: HTTP 200
/// for errors too (F7).
async fn token(State(demo): Demo, request: Request<Body>) -> Response {
    if request.method() != Method::POST {
        return method_not_allowed("POST");
    }
    let Ok(req) = Req::read(request).await else {
        return text(400, "bad request");
    };
    let json =
        |v: serde_json::Value| respond(200, "application/json; charset=utf-8", v.to_string());
    let error = |code: &str, description: &str| {
        json(
            serde_json::json!({ "error": code, "error_description": description,
            "error_uri": "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/" }),
        )
    };
    let get = |k: &str| last(&req.body, k);
    let id_ok = get("client_id").as_deref() == Some(demo.client_id);
    let secret_ok = get("client_secret")
        .is_some_and(|s| bool::from(s.as_bytes().ct_eq(demo.client_secret.as_bytes())));
    if !(id_ok && secret_ok) {
        return error(
            "incorrect_client_credentials",
            "The client_id and/or client_secret passed are incorrect.",
        );
    }
    let now = now();
    // Single use: the code is gone whatever happens next (a second exchange is F7).
    let taken = match get("code") {
        Some(code) => demo.store.take(CODES, key("code", &code), secs(now)).await,
        None => Ok(None),
    };
    let Some(grant) = taken
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
    else {
        return error(
            "bad_verification_code",
            "The code passed is incorrect or expired.",
        );
    };
    if let Some(uri) = grant["redirect_uri"].as_str()
        && get("redirect_uri").as_deref() != Some(uri)
    {
        return error(
            "redirect_uri_mismatch",
            "The redirect_uri MUST match the registered callback URL for this application.",
        );
    }
    let challenge = grant["challenge"].as_str().unwrap_or("");
    if !challenge.is_empty() {
        let computed = get("code_verifier").map(|v| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes()))
        });
        if computed.as_deref() != Some(challenge) {
            return error(
                "bad_verification_code",
                "The code passed is incorrect or expired.",
            );
        }
    }
    let token = format!("gho_{}", random_hex(18));
    let until = secs(now.plus(TOKEN_LIFETIME));
    if demo
        .store
        .put(TOKENS, key("token", &token), vec![1], until, secs(now))
        .await
        .is_err()
    {
        return text(503, "demo upstream storage unavailable");
    }
    json(
        serde_json::json!({ "access_token": token, "token_type": "bearer", "scope": grant["scope"] }),
    )
}

/// `GET /user`: F14 for a token it issued, F15 otherwise, F16 without `User-Agent`.
async fn user(State(demo): Demo, request: Request<Body>) -> Response {
    if request.method() != Method::GET {
        return method_not_allowed("GET");
    }
    let headers = request.headers();
    if headers.get("user-agent").is_none() {
        return respond(
            403,
            "text/html",
            "Request forbidden by administrative rules. Please make sure your request has a User-Agent header.",
        );
    }
    let token = crate::io::header(headers, "authorization").and_then(|h| {
        let (scheme, t) = h.split_once(' ')?;
        (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token"))
            .then(|| t.trim().to_owned())
    });
    let known = match token {
        Some(t) => matches!(
            demo.store.get(TOKENS, key("token", &t), secs(now())).await,
            Ok(Some(_))
        ),
        None => false,
    };
    if !known {
        let body = r#"{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest","status":"401"}"#;
        return respond(401, "application/json; charset=utf-8", body);
    }
    respond(200, "application/json; charset=utf-8", USER)
}
