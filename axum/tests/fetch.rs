//! The document fetcher's SSRF policy (docs/requirements.md#r58, #a18). Every test here
//! talks to loopback only: the ranges that must never be reached are checked as pure
//! unit tests of the address classifier, and the fetches aim at `127.0.0.1`, `[::1]` and
//! `localhost`, which the policy refuses unless development mode admits them.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use consent_gate_axum::{DocumentFetcher, FetchError, FetchPolicy, InternalRange, internal_range};

fn range(ip: &str) -> Option<InternalRange> {
    internal_range(ip.parse::<IpAddr>().unwrap())
}

#[test]
fn every_internal_range_is_recognised_in_every_form() {
    use InternalRange::*;
    let table = [
        ("0.0.0.0", Some(Unspecified)),
        ("0.1.2.3", Some(Unspecified)),
        ("127.0.0.1", Some(Loopback)),
        ("127.255.255.254", Some(Loopback)),
        ("10.0.0.1", Some(Private)),
        ("172.16.0.1", Some(Private)),
        ("172.31.255.255", Some(Private)),
        ("192.168.1.1", Some(Private)),
        ("100.64.0.1", Some(Private)),
        ("100.127.255.255", Some(Private)),
        ("169.254.169.254", Some(LinkLocal)),
        ("224.0.0.1", Some(Multicast)),
        ("239.255.255.250", Some(Multicast)),
        ("255.255.255.255", Some(Reserved)),
        ("240.0.0.1", Some(Reserved)),
        ("192.0.0.8", Some(Reserved)),
        ("192.0.2.1", Some(Reserved)),
        ("198.51.100.7", Some(Reserved)),
        ("203.0.113.9", Some(Reserved)),
        ("198.18.0.1", Some(Reserved)),
        ("192.88.99.1", Some(Reserved)),
        ("::", Some(Unspecified)),
        ("::1", Some(Loopback)),
        ("::ffff:127.0.0.1", Some(Loopback)),
        ("::ffff:10.1.2.3", Some(Private)),
        ("::ffff:169.254.169.254", Some(LinkLocal)),
        ("::127.0.0.1", Some(Loopback)),
        ("::ffff:0.0.0.0", Some(Unspecified)),
        ("64:ff9b::a9fe:a9fe", Some(LinkLocal)),
        ("64:ff9b::7f00:1", Some(Loopback)),
        ("64:ff9b:1::1", Some(Private)),
        ("2002:7f00:1::", Some(Loopback)),
        ("2002:a00:1::1", Some(Private)),
        ("2001::1", Some(Reserved)),
        ("2001:db8::1", Some(Reserved)),
        ("100::1", Some(Reserved)),
        ("fc00::1", Some(Private)),
        ("fd12:3456::1", Some(Private)),
        ("fec0::1", Some(Private)),
        ("fe80::1", Some(LinkLocal)),
        ("febf::1", Some(LinkLocal)),
        ("ff02::1", Some(Multicast)),
        ("4000::1", Some(Reserved)),
        ("::2", Some(Unspecified)),
        // Public unicast addresses pass.
        ("8.8.8.8", None),
        ("1.1.1.1", None),
        ("172.32.0.1", None),
        ("100.128.0.1", None),
        ("192.169.0.1", None),
        ("::ffff:8.8.8.8", None),
        ("64:ff9b::808:808", None),
        ("2002:808:808::1", None),
        ("2606:4700::1111", None),
        ("2a00:1450::1", None),
    ];
    for (ip, want) in table {
        assert_eq!(range(ip), want, "{ip}");
    }
}

/// A loopback document server; counts the connections it accepts, so a test can prove
/// that a refused fetch never connected.
struct Served {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

async fn serve(on: &str) -> Served {
    let doc = || async {
        let json = [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "max-age=300"),
        ];
        (json, r#"{"client_id":"x"}"#).into_response()
    };
    let html = || async { ([(header::CONTENT_TYPE, "text/html")], "<p>hi</p>").into_response() };
    let redirect =
        || async { (axum::http::StatusCode::FOUND, [(header::LOCATION, "/doc")]).into_response() };
    let big = || async {
        (
            [(header::CONTENT_TYPE, "application/json")],
            vec![b' '; 200_000],
        )
            .into_response()
    };
    let slow = || async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        ([(header::CONTENT_TYPE, "application/json")], "{}").into_response()
    };
    let missing = || async { axum::http::StatusCode::NOT_FOUND.into_response() };
    let app = Router::new()
        .route("/doc", get(doc))
        .route("/html", get(html))
        .route("/redirect", get(redirect))
        .route("/big", get(big))
        .route("/slow", get(slow))
        .route("/missing", get(missing));
    let listener = tokio::net::TcpListener::bind(on).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            let service = hyper_util::service::TowerToHyperService::new(app.clone());
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(tcp);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    Served { addr, accepted }
}

fn dev() -> DocumentFetcher {
    let policy = FetchPolicy {
        allow_loopback: true,
        timeout: Duration::from_secs(1),
        ..Default::default()
    };
    DocumentFetcher::new(policy)
}

#[tokio::test]
async fn loopback_is_refused_without_development_mode_and_never_connected_to() {
    let served = serve("127.0.0.1:0").await;
    let port = served.addr.port();
    let strict = DocumentFetcher::new(FetchPolicy::default());
    // An address literal is judged before any connection; a name is judged by the
    // resolver, whose answer is the only thing the connector may connect to.
    let literal = strict
        .fetch_json(&format!("https://127.0.0.1:{port}/doc"))
        .await;
    assert_eq!(
        literal.unwrap_err(),
        FetchError::Internal(InternalRange::Loopback)
    );
    let mapped = strict
        .fetch_json(&format!("https://[::ffff:127.0.0.1]:{port}/doc"))
        .await;
    assert_eq!(
        mapped.unwrap_err(),
        FetchError::Internal(InternalRange::Loopback)
    );
    let name = strict
        .fetch_json(&format!("https://localhost:{port}/doc"))
        .await;
    assert_eq!(
        name.unwrap_err(),
        FetchError::Internal(InternalRange::Loopback)
    );
    let v6 = strict
        .fetch_json(&format!("https://[::1]:{port}/doc"))
        .await;
    assert_eq!(
        v6.unwrap_err(),
        FetchError::Internal(InternalRange::Loopback)
    );
    // Plain http is refused outright, before anything else.
    let http = strict
        .fetch_json(&format!("http://127.0.0.1:{port}/doc"))
        .await;
    assert_eq!(http.unwrap_err(), FetchError::BadUrl);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        served.accepted.load(Ordering::SeqCst),
        0,
        "a refused fetch connected"
    );
}

#[tokio::test]
async fn development_mode_admits_loopback_and_only_loopback() {
    let served = serve("127.0.0.1:0").await;
    let port = served.addr.port();
    let fetched = dev()
        .fetch_json(&format!("http://127.0.0.1:{port}/doc"))
        .await
        .unwrap();
    assert_eq!(&fetched.body[..], br#"{"client_id":"x"}"#);
    assert_eq!(fetched.cache_control.as_deref(), Some("max-age=300"));
    let by_name = dev()
        .fetch_json(&format!("http://localhost:{port}/doc"))
        .await;
    assert_eq!(&by_name.unwrap().body[..], br#"{"client_id":"x"}"#);
    // Other internal ranges stay refused in development mode: a unit test of the URL
    // check in src/fetch.rs (so that no mutant of it could send a packet anywhere).
    assert_eq!(served.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn redirects_wrong_types_sizes_and_slow_servers_are_refused() {
    let served = serve("127.0.0.1:0").await;
    let base = format!("http://127.0.0.1:{}", served.addr.port());
    let fetch = |path: &str| {
        let url = format!("{base}{path}");
        async move { dev().fetch_json(&url).await.unwrap_err() }
    };
    assert_eq!(fetch("/redirect").await, FetchError::Redirect);
    assert_eq!(fetch("/html").await, FetchError::NotJson);
    assert_eq!(fetch("/big").await, FetchError::TooLarge);
    assert_eq!(fetch("/slow").await, FetchError::Timeout);
    assert_eq!(fetch("/missing").await, FetchError::Status(404));
}

#[tokio::test]
async fn urls_with_credentials_or_other_schemes_are_refused() {
    let strict = DocumentFetcher::new(FetchPolicy::default());
    for url in [
        "ftp://127.0.0.1/doc",
        "https://user:pass@127.0.0.1/doc",
        "https://user@localhost/doc",
        "file:///etc/passwd",
        "not a url",
        "data:application/json,{}",
    ] {
        assert_eq!(
            strict.fetch_json(url).await.unwrap_err(),
            FetchError::BadUrl,
            "{url}"
        );
    }
}
