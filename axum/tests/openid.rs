//! An OpenID provider as the upstream, over real loopback HTTP (R67): its discovery
//! document fetched and checked by the crate's [`UpstreamClient::discover`], then a whole
//! sign-in through the router, the provider answering in Google's shapes (an ID token
//! carrying the trip's `nonce`, `iss` on the callback because its document says so, a
//! userinfo document); and the discovery refusals an operator meets at start.

mod common;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::Request;
use axum::routing::{get, post};
use axum::{Extension, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use consent_gate::{ClientSecret, Config, Gate, Keys, Principal, ServerKey, UpstreamConfig};
use consent_gate_axum::{ConsentGate, UpstreamClient};

const CLIENT_ID: &str = "oidc-test-client.apps.example";

/// The provider at `base` (its issuer). `document_issuer` is what its discovery document
/// claims to be (another value than `base` plays a provider speaking for another).
fn provider(base: String, document_issuer: String) -> Router {
    let document = serde_json::json!({
        "issuer": document_issuer,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "userinfo_endpoint": format!("{base}/userinfo"),
        "jwks_uri": format!("{base}/jwks"),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "authorization_response_iss_parameter_supported": true,
    });
    let issuer = base.clone();
    Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || async move { json(&document) }),
        )
        .route(
            "/authorize",
            get(move |req: Request<Body>| async move {
                let q = params(req.uri().query().unwrap_or(""));
                assert!(q["scope"].split(' ').any(|s| s == "openid"));
                assert!(!q.contains_key("resource"));
                if q["scope"] != "openid" {
                    // `UpstreamConfig::google` with a Workspace domain (R68).
                    assert_eq!(q["scope"], "openid email profile");
                    assert_eq!((&*q["access_type"], &*q["prompt"]), ("offline", "consent"));
                    assert_eq!(q["hd"], "example.com");
                }
                // A returning user: straight back, the nonce riding in the code.
                let back = format!(
                    "{ISSUER}/callback?{}",
                    encode(&[
                        ("code", &format!("code.{}", q["nonce"])),
                        ("state", &q["state"]),
                        ("iss", &issuer),
                    ])
                );
                found(back)
            }),
        )
        .route(
            "/token",
            post(move |body: String| async move {
                let form = params(&body);
                assert_eq!(form["client_id"], CLIENT_ID);
                let nonce = form["code"].strip_prefix("code.").unwrap().to_owned();
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_secs();
                let claims = serde_json::json!({
                    "iss": base, "aud": CLIENT_ID, "azp": CLIENT_ID,
                    "sub": "248289761001", "nonce": nonce,
                    "iat": now, "exp": now + 3599, "email": "jane@example.com",
                    "email_verified": true, "hd": "example.com",
                });
                let part = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
                let id_token = format!(
                    "{}.{}.{}",
                    part(br#"{"alg":"RS256","kid":"1"}"#),
                    part(claims.to_string().as_bytes()),
                    part(b"unchecked: TLS to the token endpoint")
                );
                json(&serde_json::json!({
                    "access_token": "ya29.user-token", "expires_in": 3599,
                    "token_type": "Bearer", "scope": "openid", "id_token": id_token,
                    "refresh_token": "1//0g-test-refresh",
                }))
            }),
        )
        .route(
            "/userinfo",
            get(|| async { json(&serde_json::json!({"sub": "248289761001", "name": "Jane"})) }),
        )
}

fn json(v: &serde_json::Value) -> ([(&'static str, &'static str); 1], String) {
    ([("content-type", "application/json")], v.to_string())
}

/// A provider on a loopback port; its base URL.
async fn serve_provider(document_issuer: Option<&str>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let claimed = document_issuer.map_or(base.clone(), str::to_owned);
    let app = provider(base.clone(), claimed);
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// A whole sign-in through a router for `upstream`: what `whoami` answers afterwards.
async fn sign_in_through(upstream: UpstreamConfig) -> String {
    let keys = Keys::new(ServerKey::new(&[7; 32]).unwrap());
    let config = Config::builder(ISSUER, format!("{ISSUER}/mcp"), upstream, keys)
        .dev_loopback_http(true)
        .build()
        .unwrap();
    let auth = ConsentGate::new(
        Gate::new(config),
        Arc::new(consent_gate_store::MemoryStore::new()),
    );
    let whoami = post(|Extension(p): Extension<Principal>| async move {
        let token = p.upstream_token().map(|t| t.secret().to_owned());
        format!("{} {}", p.subject(), token.unwrap_or_default())
    });
    let app = Router::new()
        .route("/mcp", whoami.layer(auth.guard()))
        .merge(auth.router());
    let client_id = register(&app).await;
    let mut browser = Browser::default();
    let (code, _) = sign_in(&app, &mut browser, &client_id).await;
    let tokens = redeem(&app, &client_id, &code).await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    let v: serde_json::Value = serde_json::from_str(&tokens.body).unwrap();
    let me = mcp(&app, v["access_token"].as_str().unwrap()).await;
    assert_eq!(me.status, 200, "{}", me.body);
    me.body
}

#[tokio::test]
async fn a_discovered_provider_signs_a_user_in_with_its_id_token_r67() {
    let base = serve_provider(None).await;
    let discovered = UpstreamClient::new().discover(&base, true).await.unwrap();
    assert!(discovered.iss_parameter_supported);
    let upstream = UpstreamConfig::openid(&discovered, CLIENT_ID, ClientSecret::new("s3cret"));
    let whoami = sign_in_through(upstream).await;
    assert_eq!(whoami, "127.0.0.1:248289761001 ya29.user-token");
}

#[tokio::test]
async fn the_google_preset_signs_a_workspace_user_in_r68() {
    // `UpstreamConfig::google` as it is, with a Workspace domain, its endpoints and issuer
    // moved to the loopback provider (nothing leaves loopback).
    let base = serve_provider(None).await;
    let mut google =
        UpstreamConfig::google(CLIENT_ID, ClientSecret::new("s3cret")).hosted_domain("example.com");
    google.authorize_endpoint = format!("{base}/authorize");
    google.token_endpoint = format!("{base}/token");
    google.user_endpoint = format!("{base}/userinfo");
    google.issuer = Some(base.clone());
    if let Some(policy) = &mut google.id_token {
        policy.issuers = vec![base.clone()];
    }
    google.revocation_endpoint = None;
    let whoami = sign_in_through(google).await;
    assert_eq!(whoami, "google:248289761001 ya29.user-token");
}

#[tokio::test]
async fn a_provider_whose_document_names_another_issuer_is_refused_at_start_r67() {
    let base = serve_provider(Some("https://accounts.example")).await;
    let refused = UpstreamClient::new().discover(&base, true).await;
    let why = refused.expect_err("another issuer's document");
    assert!(why.contains("another issuer"), "{why}");
    // Plain http is for loopback in development only: refused before any connection (the
    // first name is not loopback, and nothing is sent to it).
    let remote = UpstreamClient::new()
        .discover("http://accounts.example", true)
        .await;
    assert!(remote.expect_err("http").contains("must be https"));
    let dev_off = UpstreamClient::new().discover(&base, false).await;
    assert!(
        dev_off
            .expect_err("loopback http outside development")
            .contains("must be https")
    );
}
