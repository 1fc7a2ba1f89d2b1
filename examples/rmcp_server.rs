//! An MCP server built with the official Rust SDK (`rmcp`, streamable HTTP), behind
//! consent-gate: "log in with GitHub", safely. One tool, `whoami`, calls the upstream's
//! user API with the caller's upstream token, which stays on the server (R41).
//!
//! ```text
//! cargo run --example rmcp_server                       # the built-in demo upstream
//! CONSENT_GATE_KEY=$(openssl rand -hex 32) cargo run --example rmcp_server   # kept across restarts
//! GITHUB_CLIENT_ID=… GITHUB_CLIENT_SECRET=… cargo run --example rmcp_server -- --upstream github
//! ```
//!
//! Flags and environment as the hyper example's (docs/http-contract.md#running); the
//! gate, the store and the connection limits come from `consent-gate-axum`.

#![forbid(unsafe_code)]

use axum::Router;
use consent_gate_axum::{ConsentGate, Principal, launch};
use rmcp::handler::server::tool::Extension;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, tool, tool_router};

/// The MCP server: one tool.
#[derive(Clone)]
struct Whoami {
    auth: ConsentGate,
}

#[tool_router(server_handler)]
impl Whoami {
    /// The guard put the verified caller into the request; the tool calls the upstream
    /// with that caller's token, never anyone else's.
    #[tool(
        description = "Who you are at the upstream (its user document, fetched with your sign-in)"
    )]
    async fn whoami(
        &self,
        Extension(request): Extension<axum::http::request::Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        let caller = request.extensions.get::<Principal>();
        let caller =
            caller.ok_or_else(|| ErrorData::internal_error("not behind the guard", None))?;
        let user = self.auth.upstream_user(caller).await;
        let user = user.map_err(|why| ErrorData::internal_error(why, None))?;
        Ok(CallToolResult::success(vec![ContentBlock::text(user)]))
    }
}

#[tokio::main]
async fn main() {
    let logs = tracing_subscriber::fmt().json().flatten_event(true);
    logs.with_target(false).with_writer(std::io::stderr).init();
    let started = match launch::start(std::env::args().skip(1)).await {
        Ok(started) => started,
        Err(e) => {
            eprintln!("{e}\n{}", launch::USAGE);
            std::process::exit(2);
        }
    };
    let auth = started.auth.clone();
    let resource = auth.gate().config().resource().to_owned();
    // The host the server is reached at, for the SDK's DNS-rebinding check.
    let host = resource.split('/').nth(2).unwrap_or_default().to_owned();
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_allowed_hosts([
            host.clone(),
            host.split(':').next().unwrap_or_default().into(),
        ]);
    let tool_server = Whoami { auth: auth.clone() };
    let mcp = StreamableHttpService::new(
        move || Ok(tool_server.clone()),
        LocalSessionManager::default().into(),
        config,
    );
    let app = Router::new()
        .route_service("/mcp", auth.protect(mcp))
        .merge(auth.router())
        .merge(started.demo.unwrap_or_default());
    println!("MCP server: {resource}");
    // Ctrl-C or SIGTERM: stop accepting, let requests in flight finish.
    let stop = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {} }
            }
            Err(_) => _ = tokio::signal::ctrl_c().await,
        }
    };
    launch::serve(started.listener, app, stop).await;
}
