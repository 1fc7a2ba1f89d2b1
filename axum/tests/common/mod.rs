//! What the crate's tests share: a browser with a cookie jar driving the router request by
//! request (`tower::ServiceExt::oneshot`), an MCP client without one, and the steps of a
//! sign-in (register, consent page, approval, the upstream over real loopback HTTP, the
//! callback, the code's redemption, a call to the guarded `/mcp`).

// Each test crate uses a different subset.
#![allow(dead_code)]

use std::collections::BTreeMap;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Request, Response};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use tower::ServiceExt as _;

/// Our issuer in every test host.
pub const ISSUER: &str = "http://127.0.0.1:8080";
/// The test client's redirect URI.
pub const REDIRECT: &str = "http://127.0.0.1:9999/cb";
/// The test client's PKCE verifier.
pub const VERIFIER: &str = "dBjftJeZ4CVP-mJ0kZ0GqGJVWEbvJmwOzEo2h4J5Ztmp7Q";

pub fn params(s: &str) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(s.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub fn encode(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    s.extend_pairs(pairs);
    s.finish()
}

/// One browser: its cookies, sent with every request to us.
#[derive(Default)]
pub struct Browser(pub BTreeMap<String, String>);

pub struct Got {
    pub status: u16,
    pub location: String,
    pub body: String,
}

impl Browser {
    pub async fn send(&mut self, app: &Router, req: Request<Body>) -> Got {
        let resp = app.clone().oneshot(req).await.unwrap();
        for cookie in resp.headers().get_all("set-cookie") {
            let pair = cookie.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let gone = cookie.to_str().unwrap().contains("Max-Age=0");
            if gone {
                self.0.remove(name);
            } else {
                self.0.insert(name.into(), value.into());
            }
        }
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .map_or(String::new(), |l| l.to_str().unwrap().to_owned());
        let body = to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        Got {
            status,
            location,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    pub fn request(&self, method: &str, uri: &str) -> axum::http::request::Builder {
        let cookies: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        Request::builder()
            .method(method)
            .uri(uri)
            .header("cookie", cookies.join("; "))
            .header("sec-fetch-site", "same-origin")
    }
}

/// A client without a browser.
pub async fn call(app: &Router, method: &str, uri: &str, body: String, ct: &str) -> Got {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", ct)
        .body(Body::from(body))
        .unwrap();
    Browser::default().send(app, req).await
}

pub async fn register(app: &Router) -> String {
    let json = format!(
        r#"{{"redirect_uris":["{REDIRECT}"],"client_name":"Test","token_endpoint_auth_method":"none"}}"#
    );
    let got = call(app, "POST", "/register", json, "application/json").await;
    assert_eq!(got.status, 201, "{}", got.body);
    let v: serde_json::Value = serde_json::from_str(&got.body).unwrap();
    v["client_id"].as_str().unwrap().to_owned()
}

pub fn authorize_uri(client_id: &str) -> String {
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(VERIFIER.as_bytes()));
    let query = encode(&[
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
        ("state", "client-state"),
        ("scope", "mcp"),
        ("resource", &format!("{ISSUER}/mcp")),
    ]);
    format!("/authorize?{query}")
}

pub fn field(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let rest = page.split_once(&marker).expect("the form field").1;
    rest.split('"').next().unwrap().to_owned()
}

/// The consent page in `browser`, and the form body that approves it.
pub async fn approval_form(app: &Router, browser: &mut Browser, client_id: &str) -> String {
    let get = browser.request("GET", &authorize_uri(client_id));
    let page = browser.send(app, get.body(Body::empty()).unwrap()).await;
    assert_eq!(page.status, 200, "{}", page.body);
    encode(&[
        ("tx", &field(&page.body, "tx")),
        ("csrf", &field(&page.body, "csrf")),
        ("decision", "approve"),
    ])
}

/// The browser part: consent page, approval, upstream, callback; the client's code.
pub async fn sign_in(app: &Router, browser: &mut Browser, client_id: &str) -> (String, String) {
    let form = approval_form(app, browser, client_id).await;
    let approved = browser
        .send(
            app,
            browser
                .request("POST", "/authorize")
                .header("origin", ISSUER)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(form))
                .unwrap(),
        )
        .await;
    assert_eq!(approved.status, 303, "{}", approved.body);
    // The upstream, over real HTTP: it waves the returning user through.
    let client = upstream_get(&approved.location).await;
    let callback = client.strip_prefix(ISSUER).unwrap().to_owned();
    let back = browser
        .send(
            app,
            browser
                .request("GET", &callback)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(back.status, 303, "{}", back.body);
    let at_client = params(back.location.split_once('?').unwrap().1);
    assert_eq!(at_client["state"], "client-state");
    (at_client["code"].clone(), callback)
}

/// `GET url` on the loopback upstream; its `Location`.
pub async fn upstream_get(url: &str) -> String {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<axum::body::Bytes>>();
    let resp = client.get(url.parse().unwrap()).await.unwrap();
    resp.headers()["location"].to_str().unwrap().to_owned()
}

pub async fn redeem(app: &Router, client_id: &str, code: &str) -> Got {
    let body = encode(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("client_id", client_id),
        ("code_verifier", VERIFIER),
        ("resource", &format!("{ISSUER}/mcp")),
    ]);
    call(
        app,
        "POST",
        "/token",
        body,
        "application/x-www-form-urlencoded",
    )
    .await
}

pub async fn mcp(app: &Router, access: &str) -> Got {
    let req = Request::builder()
        .method("POST")
        .uri("/mcp")
        .header("authorization", format!("Bearer {access}"))
        .body(Body::empty())
        .unwrap();
    Browser::default().send(app, req).await
}

/// A `302` to `location` (an upstream sending the browser back).
pub fn found(location: String) -> Response<Body> {
    Response::builder()
        .status(302)
        .header("location", location)
        .body(Body::empty())
        .unwrap()
}
