//! The crate as a host uses it: the router and the guard in front of a handler, driven
//! request by request (`tower::ServiceExt::oneshot`) by a browser with a cookie jar and an
//! MCP client, against an upstream double that answers in GitHub's shapes over real HTTP
//! on loopback (the crate's own upstream client calls it). The complete flow, then the
//! attacks the host's ordering exists for: a replayed code revokes the grant before the
//! reply (R43), a replayed callback finds nothing (A7), a stolen page cannot be approved
//! from another origin (A3).

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use axum::routing::{get, post};
use axum::{Extension, Router};
use common::*;
use consent_gate::{ClientSecret, Config, Gate, Keys, Principal, ServerKey, UpstreamConfig};
use consent_gate_axum::ConsentGate;

/// The GitHub double: a returning user is waved through (no screen), the code exchange
/// and `/user` answer in GitHub's JSON shapes.
async fn upstream() -> String {
    let app = Router::new()
        .route(
            "/authorize",
            get(|req: Request<Body>| async move {
                let q = params(req.uri().query().unwrap_or(""));
                let back = format!("{ISSUER}/callback?code=gh-code&state={}", q["state"]);
                found(back)
            }),
        )
        .route(
            "/token",
            post(|| async {
                let token = r#"{"access_token":"gho_user_token","token_type":"bearer","scope":"read:user"}"#;
                ([("content-type", "application/json; charset=utf-8")], token)
            }),
        )
        .route(
            "/user",
            get(|| async {
                let user = r#"{"login":"octocat","id":1}"#;
                ([("content-type", "application/json; charset=utf-8")], user)
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// The host of the crate docs: the router, and a handler behind the guard.
async fn host() -> Router {
    let up = upstream().await;
    let github = UpstreamConfig::custom(
        "Test GitHub",
        format!("{up}/authorize"),
        format!("{up}/token"),
        format!("{up}/user"),
        "Ov23liTEST",
        ClientSecret::new("upstream-secret"),
    );
    let keys = Keys::new(ServerKey::new(&[7; 32]).unwrap());
    let config = Config::builder(ISSUER, format!("{ISSUER}/mcp"), github, keys)
        .dev_loopback_http(true)
        .build()
        .unwrap();
    let store = Arc::new(consent_gate_store::MemoryStore::new());
    let auth = ConsentGate::new(Gate::new(config), store);
    let whoami = post(|Extension(p): Extension<Principal>| async move {
        let token = p.upstream_token().map(|t| t.secret().to_owned());
        format!("{} {}", p.subject(), token.unwrap_or_default())
    });
    Router::new()
        .route("/mcp", whoami.layer(auth.guard()))
        .merge(auth.router())
}

#[tokio::test]
async fn the_whole_flow_then_a_replayed_code_revokes_the_grant() {
    let app = host().await;
    let client_id = register(&app).await;
    let mut browser = Browser::default();
    let (code, callback) = sign_in(&app, &mut browser, &client_id).await;

    let tokens = redeem(&app, &client_id, &code).await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    let tokens: serde_json::Value = serde_json::from_str(&tokens.body).unwrap();
    let access = tokens["access_token"].as_str().unwrap();

    // The guarded handler sees the principal and the user's upstream token.
    let whoami = mcp(&app, access).await;
    assert_eq!(whoami.status, 200, "{}", whoami.body);
    assert_eq!(whoami.body, "1 gho_user_token");
    // No token, a bad one: 401 with the resource metadata.
    let none = call(&app, "POST", "/mcp", String::new(), "application/json").await;
    assert_eq!(none.status, 401);

    // A7: the callback again finds no transaction (taken before the upstream call).
    let replay = browser
        .send(
            &app,
            browser
                .request("GET", &callback)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(replay.status, 400, "{}", replay.body);

    // R43: the code again is refused, and the grant is gone before the reply.
    let again = redeem(&app, &client_id, &code).await;
    assert_eq!(again.status, 400, "{}", again.body);
    assert!(again.body.contains("invalid_grant"), "{}", again.body);
    assert_eq!(mcp(&app, access).await.status, 401);
}

#[tokio::test]
async fn a_consent_post_from_another_origin_is_refused() {
    let app = host().await;
    let client_id = register(&app).await;
    let mut browser = Browser::default();
    let form = approval_form(&app, &mut browser, &client_id).await;
    let forged = browser
        .send(
            &app,
            Request::builder()
                .method("POST")
                .uri("/authorize")
                .header("origin", "https://evil.example")
                .header("sec-fetch-site", "cross-site")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(form))
                .unwrap(),
        )
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert!(forged.location.is_empty(), "never a redirect");
}

#[tokio::test]
async fn metadata_cors_and_limits() {
    let app = host().await;
    let meta = call(
        &app,
        "GET",
        "/.well-known/oauth-authorization-server",
        String::new(),
        "",
    )
    .await;
    assert_eq!(meta.status, 200);
    assert!(
        meta.body.contains(r#""issuer":"http://127.0.0.1:8080""#),
        "{}",
        meta.body
    );
    let prm = call(
        &app,
        "GET",
        "/.well-known/oauth-protected-resource/mcp",
        String::new(),
        "",
    )
    .await;
    assert_eq!(prm.status, 200, "{}", prm.body);
    let big = "x".repeat(65 * 1024);
    let refused = call(&app, "POST", "/register", big, "application/json").await;
    assert_eq!(refused.status, 413);
    let wrong = call(&app, "PUT", "/token", String::new(), "").await;
    assert_eq!(wrong.status, 405);
    assert_eq!(
        call(&app, "GET", "/healthz", String::new(), "")
            .await
            .status,
        200
    );
}

/// A Client ID Metadata Document's client (R57): no registration, its document served on
/// loopback (development mode admits that), the whole flow through to a bearer call; then
/// the operator revokes the user's installation (R59).
#[tokio::test]
async fn a_metadata_document_client_completes_the_flow_r57() {
    let up = upstream().await;
    // The document, served on loopback; counts its fetches.
    let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client_id = format!("http://{}/client.json", listener.local_addr().unwrap());
    let doc = format!(
        r#"{{"client_id":"{client_id}","client_name":"Doc Agent","redirect_uris":["{REDIRECT}"],"grant_types":["authorization_code","refresh_token"]}}"#
    );
    let counter = fetches.clone();
    let serve_doc = get(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let doc = doc.clone();
        async move {
            (
                [
                    ("content-type", "application/json"),
                    ("cache-control", "max-age=600"),
                ],
                doc,
            )
        }
    });
    let docs = Router::new().route("/client.json", serve_doc);
    tokio::spawn(async move { axum::serve(listener, docs).await });
    let github = UpstreamConfig::custom(
        "Test GitHub",
        format!("{up}/authorize"),
        format!("{up}/token"),
        format!("{up}/user"),
        "Ov23liTEST",
        ClientSecret::new("upstream-secret"),
    );
    let keys = Keys::new(ServerKey::new(&[7; 32]).unwrap());
    let config = Config::builder(ISSUER, format!("{ISSUER}/mcp"), github, keys)
        .dev_loopback_http(true)
        .client_metadata_documents(true)
        .build()
        .unwrap();
    let store = Arc::new(consent_gate_store::MemoryStore::new());
    let policy = consent_gate_axum::FetchPolicy {
        allow_loopback: true,
        ..Default::default()
    };
    let fetcher = consent_gate_axum::DocumentFetcher::new(policy);
    let upstream_client = consent_gate_axum::UpstreamClient::new();
    let auth = ConsentGate::with_clients(Gate::new(config), store, upstream_client, Some(fetcher));
    let whoami = post(|Extension(p): Extension<Principal>| async move {
        format!("{} {}", p.client_id(), p.subject())
    });
    let app = Router::new()
        .route("/mcp", whoami.layer(auth.guard()))
        .merge(auth.router());
    let meta = call(
        &app,
        "GET",
        "/.well-known/oauth-authorization-server",
        String::new(),
        "",
    )
    .await;
    assert!(
        meta.body
            .contains(r#""client_id_metadata_document_supported":true"#)
    );

    let mut browser = Browser::default();
    let page = browser
        .send(
            &app,
            browser
                .request("GET", &authorize_uri(&client_id))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("id=\"client-name\">Doc Agent<"));
    assert!(
        page.body.contains("id=\"client-domain\">127.0.0.1<"),
        "the publishing domain"
    );
    let (code, _) = sign_in(&app, &mut browser, &client_id).await;
    let body = encode(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
        ("client_id", &client_id),
    ]);
    let tokens = call(
        &app,
        "POST",
        "/token",
        body,
        "application/x-www-form-urlencoded",
    )
    .await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    let tokens: serde_json::Value = serde_json::from_str(&tokens.body).unwrap();
    let bearer = format!("Bearer {}", tokens["access_token"].as_str().unwrap());
    let req = || {
        Request::post("/mcp")
            .header("authorization", &bearer)
            .body(Body::empty())
            .unwrap()
    };
    let answer = Browser::default().send(&app, req()).await;
    let (id, subject) = answer.body.split_once(' ').expect("client and subject");
    assert_eq!((answer.status, id), (200, client_id.as_str()));
    // The document was fetched once and then served from the store for its max-age.
    assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 1);

    // The operator revokes this user's installation (R59): the guard and `/token` read
    // the mark beside the grant, so the access and the refresh token both stop working.
    let subject = subject.to_owned();
    auth.revoke_installation(&subject, &client_id, REDIRECT)
        .await
        .expect("stored");
    let answer = Browser::default().send(&app, req()).await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    let refresh = encode(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ("client_id", &client_id),
    ]);
    let form = "application/x-www-form-urlencoded";
    let refreshed = call(&app, "POST", "/token", refresh, form).await;
    assert_eq!(refreshed.status, 400, "{}", refreshed.body);
    assert!(
        refreshed.body.contains("invalid_grant"),
        "{}",
        refreshed.body
    );
}

/// Without development mode's loopback allowance the same document is refused by the
/// fetcher (R58): the client is unknown, and the page says so.
#[tokio::test]
async fn a_loopback_metadata_document_is_refused_without_the_development_allowance_r58() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client_id = format!("http://{}/client.json", listener.local_addr().unwrap());
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let keys = Keys::new(ServerKey::new(&[7; 32]).unwrap());
    let github = UpstreamConfig::github("Ov23liTEST", ClientSecret::new("s"));
    let config = Config::builder(ISSUER, format!("{ISSUER}/mcp"), github, keys)
        .dev_loopback_http(true)
        .client_metadata_documents(true)
        .build()
        .unwrap();
    let store = Arc::new(consent_gate_store::MemoryStore::new());
    let app = ConsentGate::new(Gate::new(config), store).router();
    let mut browser = Browser::default();
    let page = browser
        .send(
            &app,
            browser
                .request("GET", &authorize_uri(&client_id))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert_eq!(page.location, "", "never a redirect to an unvalidated URI");
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "never connected"
    );
}
