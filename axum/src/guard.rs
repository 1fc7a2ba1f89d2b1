//! The bearer guard: a tower [`Layer`] in front of any service (an rmcp
//! `StreamableHttpService`, an axum handler). It lets a request through only with a valid
//! access token whose grant is live and whose scope covers the required one, and hands
//! the service the verified [`Principal`] in the request's extensions; the upstream token
//! for this request comes with it (R41). Everything else is answered here: 403 for a page
//! of another origin, 401 with `WWW-Authenticate` (`resource_metadata`) or 403
//! `insufficient_scope` from the core.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{HeaderMap, Request};
use axum::response::{IntoResponse, Response};
use consent_gate::{HttpRequest, Principal, ScopeSet};
use tower::{Layer, Service};
use tracing::warn;

use crate::endpoints::{Shared, send};
use crate::executor::store_failed;
use crate::io::{header, now, reply, text};
use consent_gate_store::short;

/// The [`Layer`] of [`RequireBearer`]; made by `ConsentGate::guard`.
#[derive(Clone)]
pub struct BearerLayer {
    shared: Arc<Shared>,
    required: ScopeSet,
}

impl BearerLayer {
    pub(crate) fn new(shared: Arc<Shared>, required: ScopeSet) -> Self {
        BearerLayer { shared, required }
    }

    /// Requires `scope` instead (a space-separated list, each a valid scope token); a
    /// token without it gets 403 `insufficient_scope` naming it (step-up).
    pub fn require_scope(mut self, scope: &str) -> Option<Self> {
        self.required = ScopeSet::parse(scope)?;
        Some(self)
    }
}

impl<S> Layer<S> for BearerLayer {
    type Service = RequireBearer<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireBearer {
            inner,
            shared: self.shared.clone(),
            required: self.required.clone(),
        }
    }
}

/// A service that requires a bearer token of a live grant before `S` sees the request.
#[derive(Clone)]
pub struct RequireBearer<S> {
    inner: S,
    shared: Arc<Shared>,
    required: ScopeSet,
}

impl<S> Service<Request<Body>> for RequireBearer<S>
where
    S: Service<Request<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        // The clone that was polled ready serves this request (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (shared, required) = (self.shared.clone(), self.required.clone());
        Box::pin(async move {
            match admit(&shared, &required, request.headers()).await {
                Ok(principal) => {
                    request.extensions_mut().insert(principal);
                    Ok(inner.call(request).await?.into_response())
                }
                Err(refused) => Ok(refused),
            }
        })
    }
}

/// The origin, the token, its grant, the scope; the principal or the answer.
async fn admit(
    shared: &Shared,
    required: &ScopeSet,
    headers: &HeaderMap,
) -> Result<Principal, Response> {
    // The transport's DNS-rebinding rule: a page of another origin gets 403 (clients
    // other than browsers send no `Origin`).
    if let Some(origin) = header(headers, "origin").filter(|o| *o != shared.origin) {
        warn!(security = true, event = "mcp_origin_refused", origin = %short(origin));
        return Err(text(403, "cross-origin request refused"));
    }
    // The token, its grant, and the two together: a replayed code or a reused refresh
    // token deleted the grant, and with it every token it issued (R43, R53).
    let authorization = header(headers, "authorization");
    // The upstream token is renewed on the way when it is about to expire (R66).
    let send = |r: HttpRequest| async move { send(shared, &r).await };
    let principal = match shared.endpoints.bearer(authorization, now(), send).await {
        Ok(Ok(principal)) => principal,
        Ok(Err(e)) => return Err(reply(shared.gate().unauthorized(e))),
        Err(failed) => return Err(store_failed(failed)),
    };
    if !required.is_subset_of(principal.scope()) {
        return Err(reply(shared.gate().insufficient_scope(required)));
    }
    Ok(principal)
}
