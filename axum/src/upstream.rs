//! The back channel to the upstream provider: HTTPS with rustls and the webpki roots (no
//! OpenSSL), plain HTTP only where the core's configuration allowed it (a loopback
//! upstream in development). Every exchange is bounded in time ([`TIMEOUT`]) and in size
//! (the core's [`MAX_UPSTREAM_BODY`](consent_gate::MAX_UPSTREAM_BODY)).

use axum::body::Bytes;
use consent_gate::{HttpRequest, ProviderMetadata, UpstreamResponse};
use consent_gate_store::Answer;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{Client, connect::HttpConnector};

use crate::io::TIMEOUT;

/// The HTTP client that carries the core's upstream requests.
#[derive(Clone)]
pub struct UpstreamClient(Client<HttpsConnector<HttpConnector>, Full<Bytes>>);

impl std::fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UpstreamClient")
    }
}

impl Default for UpstreamClient {
    fn default() -> Self {
        Self::new()
    }
}

impl UpstreamClient {
    /// A client with the webpki roots, HTTP/1.1.
    pub fn new() -> Self {
        let tls = hyper_rustls::HttpsConnectorBuilder::new().with_webpki_roots();
        let client = Client::builder(hyper_util::rt::TokioExecutor::new());
        UpstreamClient(client.build(tls.https_or_http().enable_http1().build()))
    }

    /// Sends a request the core built; `Err` says why nothing usable came back (for the
    /// log: never the URL's query or a header).
    pub async fn send(&self, r: &HttpRequest) -> Result<Answer, &'static str> {
        let mut request = Request::builder().method(r.method).uri(r.url.as_str());
        for (name, value) in &r.headers {
            request = request.header(*name, &**value);
        }
        let request = request
            .body(Full::from(r.body.clone()))
            .map_err(|_| "bad request")?;
        let exchange = async {
            let resp = self.0.request(request).await.map_err(|_| "unreachable")?;
            let content_type = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let status = resp.status().as_u16();
            let body = Limited::new(resp.into_body(), consent_gate::MAX_UPSTREAM_BODY)
                .collect()
                .await
                .map_err(|_| "body too large or broken")?
                .to_bytes()
                .to_vec();
            Ok(Answer {
                status,
                content_type,
                body,
            })
        };
        tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| "timed out")?
    }

    /// Fetches and checks an OpenID provider's discovery document (R67) for
    /// [`UpstreamConfig::openid`](consent_gate::UpstreamConfig::openid). The issuer is
    /// the operator's setting, not a client's: https, or plain http to a loopback address
    /// when `allow_loopback_http` (development, tests).
    pub async fn discover(
        &self,
        issuer: &str,
        allow_loopback_http: bool,
    ) -> Result<ProviderMetadata, String> {
        let url = url::Url::parse(issuer).map_err(|_| format!("issuer {issuer} is not a URL"))?;
        let loopback = match url.host() {
            Some(url::Host::Ipv4(a)) => a.is_loopback(),
            Some(url::Host::Ipv6(a)) => a.is_loopback(),
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            None => false,
        };
        match url.scheme() {
            "https" => {}
            "http" if allow_loopback_http && loopback => {}
            _ => return Err(format!("issuer {issuer} must be https")),
        }
        let answer = self
            .send(&ProviderMetadata::discovery_request(issuer))
            .await
            .map_err(|why| format!("discovery document of {issuer}: {why}"))?;
        let response = UpstreamResponse {
            status: answer.status,
            content_type: answer.content_type.as_deref(),
            body: &answer.body,
        };
        ProviderMetadata::parse(issuer, response).map_err(|e| format!("{issuer}: {e}"))
    }
}
