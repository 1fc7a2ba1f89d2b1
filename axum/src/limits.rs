//! Per-address rate limits (R64): a token bucket per client address and endpoint class
//! (registration, consent pages, consent decisions, token requests), so that one address
//! flooding the server with registrations or self-approved pages gets `429` with
//! `Retry-After` long before the store's quotas are near, and everyone else keeps working.
//! The buckets are `governor`'s (GCRA); idle ones are forgotten, so a scan from many
//! addresses costs bounded memory.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use consent_gate::paths;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http_body_util::BodyExt as _;

use crate::io::text;

/// Requests per minute and address for each limited endpoint, with a burst of a fifth
/// of that. Generous for people and clients (a sign-in is one page, one decision and one
/// code exchange), tight for floods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimits {
    /// `POST /register`.
    pub register_per_minute: u32,
    /// `GET /authorize` (consent pages: each stores a pending consent).
    pub authorize_per_minute: u32,
    /// `POST /authorize` (decisions).
    pub decide_per_minute: u32,
    /// `POST /token`.
    pub token_per_minute: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            register_per_minute: 30,
            authorize_per_minute: 120,
            decide_per_minute: 120,
            token_per_minute: 600,
        }
    }
}

/// The most addresses remembered before idle buckets are forgotten.
const MAX_TRACKED: usize = 100_000;

/// The buckets, shared by every connection.
pub struct Limiter {
    classes: [DefaultKeyedRateLimiter<IpAddr>; 4],
    checks: AtomicU32,
}

fn bucket(per_minute: u32) -> DefaultKeyedRateLimiter<IpAddr> {
    let rate = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new((per_minute / 5).max(1)).unwrap_or(NonZeroU32::MIN);
    RateLimiter::keyed(Quota::per_minute(rate).allow_burst(burst))
}

impl Limiter {
    /// Buckets for `limits`.
    pub fn new(limits: RateLimits) -> Arc<Self> {
        Arc::new(Limiter {
            classes: [
                bucket(limits.register_per_minute),
                bucket(limits.authorize_per_minute),
                bucket(limits.decide_per_minute),
                bucket(limits.token_per_minute),
            ],
            checks: AtomicU32::new(0),
        })
    }

    /// `Ok` if `ip` may make a request of `class` now; otherwise the seconds to wait.
    fn check(&self, class: usize, ip: IpAddr) -> Result<(), u64> {
        let limiter = &self.classes[class];
        if self
            .checks
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(1024)
            && limiter.len() > MAX_TRACKED
        {
            limiter.retain_recent();
        }
        limiter.check_key(&ip).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs() + 1
        })
    }
}

/// The class of a request, if its endpoint is limited.
fn class(method: &Method, path: &str) -> Option<usize> {
    match (method, path) {
        (&Method::POST, paths::REGISTER) => Some(0),
        (&Method::GET, paths::AUTHORIZE) => Some(1),
        (&Method::POST, paths::AUTHORIZE) => Some(2),
        (&Method::POST, paths::TOKEN) => Some(3),
        _ => None,
    }
}

/// The middleware: `429` with `Retry-After` for an address over its rate. Requests
/// without a peer address (a router driven in process, as in tests) pass.
pub async fn limit(State(limiter): State<Arc<Limiter>>, request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    if let (Some(ip), Some(class)) = (peer, class(request.method(), request.uri().path()))
        && let Err(wait) = limiter.check(class, ip)
    {
        tracing::warn!(security = true, event = "rate_limited", peer = %ip, path = request.uri().path());
        // The body is read (within the usual limits) before the answer: a server that
        // answers and closes with the body unread makes the client's kernel see a reset,
        // and the client never reads its 429.
        let body = http_body_util::Limited::new(request.into_body(), crate::io::MAX_BODY);
        let _ = tokio::time::timeout(crate::io::TIMEOUT, body.collect()).await;
        let mut resp = text(429, "too many requests from this address, slow down");
        if let Ok(v) = HeaderValue::try_from(wait.to_string()) {
            resp.headers_mut().insert("retry-after", v);
        }
        return resp;
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flooding_address_is_held_back_and_another_is_not() {
        let limiter = Limiter::new(RateLimits {
            register_per_minute: 10,
            ..Default::default()
        });
        let (flood, other) = ("127.0.0.2".parse().unwrap(), "127.0.0.1".parse().unwrap());
        // The burst (a fifth of the rate) passes, then the flood waits.
        assert!(limiter.check(0, flood).is_ok());
        assert!(limiter.check(0, flood).is_ok());
        let wait = limiter.check(0, flood).unwrap_err();
        assert!((1..=7).contains(&wait), "{wait}");
        // Another address and another class are untouched.
        assert!(limiter.check(0, other).is_ok());
        assert!(limiter.check(3, flood).is_ok());
    }

    #[test]
    fn only_the_flooded_endpoints_are_limited() {
        assert_eq!(class(&Method::POST, "/register"), Some(0));
        assert_eq!(class(&Method::GET, "/authorize"), Some(1));
        assert_eq!(class(&Method::POST, "/authorize"), Some(2));
        assert_eq!(class(&Method::POST, "/token"), Some(3));
        assert_eq!(class(&Method::POST, "/revoke"), None);
        assert_eq!(class(&Method::GET, "/mcp"), None);
    }
}
