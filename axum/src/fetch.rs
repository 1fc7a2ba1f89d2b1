//! Fetching a JSON document from a URL someone else chose (a Client ID Metadata Document,
//! an OpenID provider's discovery document or keys) without becoming a proxy into the
//! server's own network (R58, A18).
//!
//! The policy: `https` only; the name resolved first and every address checked by
//! [`internal_range`] (loopback, private, link-local, multicast, unspecified and the other
//! special-purpose ranges, in IPv4, IPv6 and the IPv6 forms that embed an IPv4 address);
//! the connection made to an address that passed, never to one resolved again later (no
//! rebinding window); no redirect followed; the body capped in bytes and the exchange in
//! time; the answer `200` and `application/json`. A development mode
//! ([`FetchPolicy::allow_loopback`]) admits loopback addresses, over `http` too, so tests
//! and a laptop can serve documents from `127.0.0.1`; nothing else is ever admitted.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;

/// Why an address is not fetched from: the special-purpose range it is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InternalRange {
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// `10/8`, `172.16/12`, `192.168/16`, the shared `100.64/10`, IPv6 unique-local
    /// `fc00::/7` and the deprecated site-local `fec0::/10`.
    Private,
    /// `169.254/16`, `fe80::/10` (cloud metadata services live here).
    LinkLocal,
    /// `224/4`, `ff00::/8`.
    Multicast,
    /// `0.0.0.0/8`, `::`.
    Unspecified,
    /// Everything else that is not a public unicast address: reserved, documentation,
    /// benchmarking and protocol ranges, broadcast, Teredo, and IPv6 outside `2000::/3`.
    Reserved,
}

/// The special-purpose range `ip` is in, or `None` for a public unicast address. An IPv6
/// address that embeds an IPv4 one (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`,
/// NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) is judged by the IPv4 address it reaches.
pub fn internal_range(ip: IpAddr) -> Option<InternalRange> {
    match ip {
        IpAddr::V4(v4) => v4_range(v4),
        IpAddr::V6(v6) => v6_range(v6),
    }
}

fn v4_range(ip: Ipv4Addr) -> Option<InternalRange> {
    use InternalRange::*;
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, ..) => Unspecified,
        (127, ..) => Loopback,
        (10, ..) | (172, 16..=31, _) | (192, 168, _) | (100, 64..=127, _) => Private,
        (169, 254, _) => LinkLocal,
        (224..=239, ..) => Multicast,
        // 240/4 (with the broadcast address), IETF protocol assignments, the three
        // documentation networks, benchmarking, the 6to4 relay anycast.
        (240..=255, ..)
        | (192, 0, 0 | 2)
        | (198, 51, 100)
        | (203, 0, 113)
        | (198, 18..=19, _)
        | (192, 88, 99) => Reserved,
        _ => return None,
    })
}

fn v6_range(ip: Ipv6Addr) -> Option<InternalRange> {
    use InternalRange::*;
    let s = ip.segments();
    let embedded =
        |hi: u16, lo: u16| v4_range(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    match s {
        [0, 0, 0, 0, 0, 0, 0, 0] => Some(Unspecified),
        [0, 0, 0, 0, 0, 0, 0, 1] => Some(Loopback),
        // Mapped and (deprecated) compatible IPv4 addresses; NAT64's well-known prefix.
        [0, 0, 0, 0, 0, 0xffff, hi, lo] | [0, 0, 0, 0, 0, 0, hi, lo] => embedded(hi, lo),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => embedded(hi, lo),
        // NAT64 for local use (RFC 8215) translates into the operator's own network.
        [0x64, 0xff9b, 1, ..] => Some(Private),
        [0x2002, hi, lo, ..] => embedded(hi, lo),
        // Teredo hides its addresses; documentation; the discard prefix.
        [0x2001, 0, ..] | [0x2001, 0xdb8, ..] | [0x100, 0, 0, 0, ..] => Some(Reserved),
        [x, ..] if x & 0xfe00 == 0xfc00 || x & 0xffc0 == 0xfec0 => Some(Private),
        [x, ..] if x & 0xffc0 == 0xfe80 => Some(LinkLocal),
        [x, ..] if x & 0xff00 == 0xff00 => Some(Multicast),
        [x, ..] if x & 0xe000 == 0x2000 => None,
        _ => Some(Reserved),
    }
}

/// What a fetch may reach, and how much of it.
#[derive(Clone, Copy, Debug)]
pub struct FetchPolicy {
    /// Development only: admit loopback addresses (also over plain `http`).
    pub allow_loopback: bool,
    /// The most body bytes read.
    pub max_bytes: usize,
    /// The longest the whole exchange may take (resolution, connection, TLS, body).
    pub timeout: Duration,
}

impl Default for FetchPolicy {
    /// No loopback; 64 KiB; 5 seconds.
    fn default() -> Self {
        FetchPolicy {
            allow_loopback: false,
            max_bytes: 64 * 1024,
            timeout: Duration::from_secs(5),
        }
    }
}

/// Why nothing usable came back. None carries the document's content.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FetchError {
    /// Not an absolute `https` URL (or `http` to loopback in development), or it has
    /// credentials in it.
    #[error("not an https URL without credentials")]
    BadUrl,
    /// Every address of the host is in a range the policy refuses.
    #[error("the host is an internal address ({0:?})")]
    Internal(InternalRange),
    /// Name resolution, connection or TLS failed.
    #[error("the host could not be reached")]
    Unreachable,
    /// A redirect, which is not followed.
    #[error("the server redirected (not followed)")]
    Redirect,
    /// Any status but 200.
    #[error("the server answered HTTP {0}")]
    Status(u16),
    /// Not `application/json`.
    #[error("the answer is not application/json")]
    NotJson,
    /// More than [`FetchPolicy::max_bytes`].
    #[error("the document is too large")]
    TooLarge,
    /// Over [`FetchPolicy::timeout`].
    #[error("the server took too long")]
    Timeout,
}

/// A fetched document: its bytes and its `Cache-Control` header, for the caller's
/// caching bounds.
#[derive(Debug)]
pub struct Document {
    /// The body, at most [`FetchPolicy::max_bytes`].
    pub body: Bytes,
    /// The `Cache-Control` header, if it was one visible-ASCII value.
    pub cache_control: Option<String>,
}

/// Fetches documents under a [`FetchPolicy`]. Cheap to clone.
#[derive(Clone)]
pub struct DocumentFetcher {
    client: Client<HttpsConnector<HttpConnector<CheckedResolver>>, Empty<Bytes>>,
    policy: FetchPolicy,
}

impl std::fmt::Debug for DocumentFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocumentFetcher")
            .field("policy", &self.policy)
            .finish()
    }
}

impl DocumentFetcher {
    /// A fetcher with the webpki roots.
    pub fn new(policy: FetchPolicy) -> Self {
        let resolver = CheckedResolver(policy.allow_loopback);
        let mut http = HttpConnector::new_with_resolver(resolver);
        http.enforce_http(false);
        let tls = hyper_rustls::HttpsConnectorBuilder::new().with_webpki_roots();
        let tls = match policy.allow_loopback {
            true => tls.https_or_http(),
            false => tls.https_only(),
        };
        let tls = tls.enable_http1().wrap_connector(http);
        let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build(tls);
        DocumentFetcher { client, policy }
    }

    /// `GET url` with `Accept: application/json`, under the policy.
    pub async fn fetch_json(&self, url: &str) -> Result<Document, FetchError> {
        let uri = self.admit(url)?;
        let request = hyper::Request::get(uri).header("accept", "application/json");
        let request = request.body(Empty::new()).map_err(|_| FetchError::BadUrl)?;
        let max = self.policy.max_bytes;
        let exchange = async {
            let resp = self
                .client
                .request(request)
                .await
                .map_err(|e| refusal(&e))?;
            let status = resp.status().as_u16();
            if (300..400).contains(&status) {
                return Err(FetchError::Redirect);
            } else if status != 200 {
                return Err(FetchError::Status(status));
            }
            let header = |name| resp.headers().get(name).and_then(|v| v.to_str().ok());
            let essence = header("content-type").and_then(|t| t.split(';').next());
            if !essence.is_some_and(|e| e.trim().eq_ignore_ascii_case("application/json")) {
                return Err(FetchError::NotJson);
            }
            let declared = header("content-length").and_then(|n| n.parse::<usize>().ok());
            if declared.is_some_and(|n| n > max) {
                return Err(FetchError::TooLarge);
            }
            let cache_control = header("cache-control").map(str::to_owned);
            let body = Limited::new(resp.into_body(), max).collect().await;
            let body = body.map_err(|_| FetchError::TooLarge)?.to_bytes();
            Ok(Document {
                body,
                cache_control,
            })
        };
        let answered = tokio::time::timeout(self.policy.timeout, exchange).await;
        answered.map_err(|_| FetchError::Timeout)?
    }

    /// The URL as a request target, if the policy admits it before any resolution: the
    /// scheme, no credentials, and an address literal judged here (the connector does not
    /// resolve those, so the resolver's check would not see them).
    fn admit(&self, url: &str) -> Result<hyper::Uri, FetchError> {
        let parsed = url::Url::parse(url).map_err(|_| FetchError::BadUrl)?;
        let loopback_ok = self.policy.allow_loopback;
        let literal = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => None,
            None => return Err(FetchError::BadUrl),
        };
        let loopback_host = match literal {
            Some(ip) => internal_range(ip) == Some(InternalRange::Loopback),
            None => parsed.host_str() == Some("localhost"),
        };
        let scheme_ok = match parsed.scheme() {
            "https" => true,
            "http" => loopback_ok && loopback_host,
            _ => false,
        };
        if !scheme_ok || !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(FetchError::BadUrl);
        }
        if let Some(range) = literal.and_then(|ip| refused(ip, loopback_ok)) {
            return Err(FetchError::Internal(range));
        }
        parsed.as_str().parse().map_err(|_| FetchError::BadUrl)
    }
}

impl consent_gate_store::DocumentSource for DocumentFetcher {
    /// A Client ID Metadata Document for the store crate's `Endpoints` (R57, R58).
    fn fetch<'a>(&'a self, url: &'a str) -> consent_gate_store::Fetching<'a> {
        Box::pin(async move {
            let document = self.fetch_json(url).await.map_err(|e| e.to_string())?;
            Ok(consent_gate_store::FetchedDocument {
                body: document.body.to_vec(),
                cache_control: document.cache_control,
            })
        })
    }
}

/// The range that makes the policy refuse `ip`, if any.
fn refused(ip: IpAddr, allow_loopback: bool) -> Option<InternalRange> {
    internal_range(ip).filter(|r| !(allow_loopback && *r == InternalRange::Loopback))
}

/// The resolver's refusal, found in the client error's chain of sources.
fn refusal(e: &(dyn std::error::Error + 'static)) -> FetchError {
    let mut source = Some(e);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<Refused>() {
            return FetchError::Internal(refused.0);
        }
        source = e.source();
    }
    FetchError::Unreachable
}

/// The system resolver, keeping only addresses the policy admits; the connector then
/// connects to one of exactly those.
#[derive(Clone)]
struct CheckedResolver(bool);

/// Every address of the name was refused; the first one's range.
#[derive(Debug, thiserror::Error)]
#[error("every address of the host is internal ({0:?})")]
struct Refused(InternalRange);

type Resolving =
    Pin<Box<dyn Future<Output = Result<std::vec::IntoIter<SocketAddr>, BoxError>> + Send>>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower::Service<Name> for CheckedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = Resolving;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Resolving {
        let allow_loopback = self.0;
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let first_refusal = all.iter().find_map(|a| refused(a.ip(), allow_loopback));
            let admitted: Vec<SocketAddr> = all
                .into_iter()
                .filter(|a| refused(a.ip(), allow_loopback).is_none())
                .collect();
            match (admitted.is_empty(), first_refusal) {
                (true, Some(range)) => Err(Box::new(Refused(range)) as BoxError),
                _ => Ok(admitted.into_iter()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The URL check alone, without any network: in development mode only loopback is
    /// admitted, and plain `http` only to loopback.
    #[test]
    fn development_mode_admits_loopback_and_nothing_else_internal() {
        let dev = FetchPolicy {
            allow_loopback: true,
            ..Default::default()
        };
        let (dev, strict) = (
            DocumentFetcher::new(dev),
            DocumentFetcher::new(Default::default()),
        );
        for ok in [
            "http://127.0.0.1:9/doc",
            "https://[::1]/doc",
            "http://localhost:1/x",
        ] {
            assert!(dev.admit(ok).is_ok(), "{ok}");
            assert!(strict.admit(ok).is_err(), "{ok}");
        }
        for internal in [
            "https://10.0.0.1/doc",
            "https://169.254.169.254/latest/meta-data",
            "https://[fe80::1]/doc",
            "https://[::ffff:192.168.0.1]/doc",
            "https://0.0.0.0/doc",
            "https://[64:ff9b::a9fe:a9fe]/doc",
        ] {
            for fetcher in [&dev, &strict] {
                let refused = fetcher.admit(internal);
                assert!(
                    matches!(refused, Err(FetchError::Internal(_))),
                    "{internal}"
                );
            }
        }
        for plain in [
            "http://10.0.0.1/doc",
            "http://example.com/doc",
            "http://8.8.8.8/",
        ] {
            assert_eq!(dev.admit(plain).unwrap_err(), FetchError::BadUrl, "{plain}");
        }
        // A public https URL passes the URL check (the resolver judges its addresses).
        assert!(strict.admit("https://client.example/oauth.json").is_ok());
        assert!(strict.admit("https://8.8.8.8/doc").is_ok());
    }
}
