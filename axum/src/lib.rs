//! consent-gate for axum and tower: "log in with GitHub", safely, for an MCP server.
//!
//! [`ConsentGate`] gives a host every OAuth endpoint of the HTTP contract as an axum
//! [`Router`] and a tower [`Layer`](tower::Layer) that guards any service (an rmcp
//! `StreamableHttpService`, a plain handler) with bearer verification and grant
//! confirmation. The guarded service finds the caller's [`Principal`] in the request's
//! extensions, with the user's upstream token for calls on their behalf.
//!
//! ```no_run
//! use std::sync::Arc;
//! use axum::{Router, routing::post};
//! use consent_gate::{ClientSecret, Config, Gate, Keys, Principal, ServerKey, UpstreamConfig};
//! use consent_gate_axum::ConsentGate;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let key = ServerKey::new(&std::fs::read("server.key")?).ok_or("key too short")?;
//! let github = UpstreamConfig::github("Ov23li…", ClientSecret::new("…"));
//! let config = Config::builder("https://mcp.example", "https://mcp.example/mcp", github, Keys::new(key))
//!     .build()?;
//! let store = consent_gate_store::SqliteStore::open("consent-gate.db", Default::default()).await?;
//! let auth = ConsentGate::new(Gate::new(config), Arc::new(store));
//! let mcp = post(|p: axum::Extension<Principal>| async move { format!("hello {}", p.subject()) });
//! let app = Router::new().route("/mcp", mcp.layer(auth.guard())).merge(auth.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! What the crate does for the host, in the order that is the security
//! (docs/design.md#store-contract): single-use records are taken from the store before
//! anything else happens with them and before any call to the upstream; a replayed code
//! or a reused refresh token deletes the grant before the reply; every refusal is a
//! `tracing` event with `security = true`, never with a secret in it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod io;
mod upstream;
mod fetch;
mod executor;
mod endpoints;
mod demo;
mod guard;
mod limits;
#[cfg(feature = "launch")]
pub mod launch;

use std::sync::Arc;

use axum::Router;
use consent_gate::{Gate, ScopeSet};
use consent_gate_store::Store;

pub use consent_gate::Principal;
pub use consent_gate_store::CLIENT_LIFETIME;
pub use demo::DemoUpstream;
pub use fetch::{
    Document, DocumentFetcher, FetchError, FetchPolicy, InternalRange, internal_range,
};
pub use guard::{BearerLayer, RequireBearer};
pub use limits::{Limiter, RateLimits, limit};
pub use upstream::UpstreamClient;

/// The gate with its store and upstream client: the OAuth endpoints and the bearer guard.
/// Cheap to clone.
#[derive(Clone)]
pub struct ConsentGate {
    shared: Arc<endpoints::Shared>,
}

impl std::fmt::Debug for ConsentGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsentGate")
            .field("issuer", &self.shared.gate().config().issuer())
            .field("store", &self.shared.endpoints.executor().store().backend())
            .finish_non_exhaustive()
    }
}

impl ConsentGate {
    /// The gate over `store`, calling the upstream with the default HTTPS client.
    pub fn new(gate: Gate, store: Arc<dyn Store>) -> Self {
        Self::with_upstream_client(gate, store, UpstreamClient::new())
    }

    /// The same with a client of the host's choosing.
    pub fn with_upstream_client(
        gate: Gate,
        store: Arc<dyn Store>,
        upstream: UpstreamClient,
    ) -> Self {
        Self::with_clients(gate, store, upstream, None)
    }

    /// The same with the fetcher of Client ID Metadata Documents of the host's choosing
    /// (a [`FetchPolicy`] that admits loopback, for development); used only when the
    /// configuration accepts documents (`ConfigBuilder::client_metadata_documents`).
    pub fn with_clients(
        gate: Gate,
        store: Arc<dyn Store>,
        upstream: UpstreamClient,
        documents: Option<DocumentFetcher>,
    ) -> Self {
        let shared = endpoints::Shared::new(gate, store, upstream, documents);
        ConsentGate {
            shared: Arc::new(shared),
        }
    }

    /// Every OAuth endpoint: both metadata documents (root and path-inserted forms),
    /// `/register`, `/authorize` (page and decision), the callback, `/token`, `/revoke`
    /// and `/healthz`. Merge it into the application's router.
    pub fn router(&self) -> Router {
        endpoints::router(self.shared.clone())
    }

    /// The guard for the protected resource, requiring the scope `mcp`
    /// ([`BearerLayer::require_scope`] changes it).
    pub fn guard(&self) -> BearerLayer {
        let mcp = ScopeSet::parse("mcp").expect("`mcp` is a valid scope");
        BearerLayer::new(self.shared.clone(), mcp)
    }

    /// `service` behind [`guard`](Self::guard): `auth.protect(mcp)` is
    /// `auth.guard().layer(mcp)` without importing `tower::Layer`.
    pub fn protect<S>(&self, service: S) -> RequireBearer<S> {
        tower::Layer::layer(&self.guard(), service)
    }

    /// The user's document from the upstream's user API (GitHub `GET /user`), fetched
    /// with the caller's upstream token: what a tool does on the user's behalf. `Err`
    /// says why not, fit for a tool's error text (never the token).
    pub async fn upstream_user(&self, principal: &Principal) -> Result<String, &'static str> {
        let request = self.shared.gate().upstream_user_request(principal);
        let request = request.ok_or("this grant carries no upstream token")?;
        let fetched = self.shared.upstream.send(&request).await?;
        let answer = fetched.as_upstream();
        if answer.status != 200 {
            return Err("the upstream refused the token");
        }
        String::from_utf8(answer.body.to_vec()).map_err(|_| "the upstream answered non-UTF-8")
    }

    /// Revokes one user's installation of a metadata-document client (R59): every grant
    /// of the upstream user `subject` ([`Principal::subject`]) for `client_id` through
    /// the registered `redirect_uri` approved until now stops working, at the guard and
    /// at `/token`; the user's other installations and other users keep theirs. An
    /// operator's action (a command line, an admin page): no OAuth endpoint offers it.
    pub async fn revoke_installation(
        &self,
        subject: &str,
        client_id: &str,
        redirect_uri: &str,
    ) -> Result<(), consent_gate_store::StoreError> {
        self.shared
            .endpoints
            .revoke_installation(subject, client_id, redirect_uri, io::now())
            .await
    }

    /// The gate.
    pub fn gate(&self) -> &Gate {
        self.shared.gate()
    }
}
