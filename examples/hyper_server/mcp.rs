//! `/mcp`: a compact MCP server on the streamable HTTP transport, behind the bearer check.
//! One JSON-RPC message per POST, one `application/json` answer (the transport allows it
//! instead of an SSE stream); no server-initiated stream, so `GET` is 405, which the
//! official SDKs accept. `initialize` opens a session bound to the caller's grant, so
//! another user's token cannot ride on it. The one tool, `whoami`, calls the upstream's
//! user API with the upstream token that stays in the grant on the server (R41).

use std::sync::LazyLock;

use consent_gate::{HttpRequest, Principal, Reply, ScopeSet, UnixTime};
use consent_gate_store::Kind;
use hyper::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tracing::warn;

use crate::routes::{App, Stop, secs, variant};
use crate::{
    Fetched, Req, declared_as, header, json, method_not_allowed, random, respond, short, text,
};

/// The revisions with the `initialize` handshake and sessions, newest first. The first is
/// offered to a client asking for one we do not know (a client of the stateless
/// 2026-07-28 revision then decides whether to continue; the official SDKs do).
const VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// Sessions are the example's own records: the grant that opened each, for a day at most,
/// under a hash of the session id (a dumped store yields no usable id).
pub const SESSIONS: Kind = Kind::Other("mcp_session");
const SESSION_LIFETIME: u64 = 24 * 3600;
/// The id of a JSON-RPC error about no request in particular.
const NO_ID: &Value = &Value::Null;

static SCOPE: LazyLock<ScopeSet> = LazyLock::new(|| ScopeSet::parse("mcp").expect("a scope"));
static TOOLS: LazyLock<String> = LazyLock::new(|| {
    let whoami = json!({
        "name": "whoami",
        "title": "Who am I?",
        "description": "The upstream account (e.g. your GitHub login) this MCP connection \
                        acts for, as the upstream itself reports it right now.",
        "inputSchema": { "type": "object", "properties": {}, "additionalProperties": false },
        "annotations": { "readOnlyHint": true, "openWorldHint": true },
    });
    json!({ "tools": [whoami] }).to_string()
});

/// Every request to `/mcp`: the origin, the bearer token, the scope, then the transport.
pub async fn handle(app: &App, req: &Req, now: UnixTime) -> Result<Reply, Stop> {
    // The transport's DNS-rebinding rule: a page of another origin gets 403 (clients
    // other than browsers send no `Origin`).
    if let Some(origin) = header(req, "origin").filter(|o| *o != app.origin) {
        warn!(security = true, event = "mcp_origin_refused", origin = %short(origin));
        return Ok(text(403, "cross-origin request refused"));
    }
    // The token, its grant, and the two together: a replayed code or a reused refresh
    // token deleted the grant, and with it every token it issued (R43, R53).
    let claims = app.gate.verify_bearer(header(req, "authorization"), now);
    let grant = match &claims {
        Ok(claims) => app.get(&claims.grant_key(), now, false).await?,
        Err(_) => None,
    };
    let principal = match claims.and_then(|c| c.confirm(grant.as_ref(), now)) {
        Ok(principal) => principal,
        Err(e) => {
            if e.oauth_error().is_some() {
                warn!(security = true, event = %variant(&e), reason = %e);
            }
            return Ok(app.gate.unauthorized(e));
        }
    };
    if !SCOPE.is_subset_of(principal.scope()) {
        return Ok(app.gate.insufficient_scope(&SCOPE));
    }
    match *req.method() {
        Method::POST => post(app, req, &principal, now).await,
        Method::DELETE => {
            let id = session(app, req, &principal, now).await?;
            app.store.delete(SESSIONS, key(id), secs(now)).await?;
            Ok(respond(200, "text/plain", ""))
        }
        _ => Ok(method_not_allowed("POST, DELETE")),
    }
}

fn key(session_id: &str) -> [u8; 32] {
    Sha256::new()
        .chain_update("mcp session\0")
        .chain_update(session_id)
        .finalize()
        .into()
}

/// The caller's session id if it names a live session of the caller's grant; otherwise
/// the answer: 400 without `Mcp-Session-Id` or with an `MCP-Protocol-Version` we do not
/// speak, 404 for an unknown, expired, ended or foreign session (the client starts anew).
async fn session<'r>(
    app: &App,
    req: &'r Req,
    who: &Principal,
    now: UnixTime,
) -> Result<&'r str, Stop> {
    let refuse = |status, code, message| Err(Stop(error(status, NO_ID, code, message).into()));
    let Some(id) = header(req, "mcp-session-id") else {
        return refuse(400, -32600, "missing Mcp-Session-Id");
    };
    let grant = app.store.get(SESSIONS, key(id), secs(now)).await?;
    if grant.as_deref() != Some(who.grant_key().as_bytes()) {
        return refuse(404, -32001, "session not found");
    }
    match header(req, "mcp-protocol-version") {
        Some(v) if !VERSIONS.contains(&v) => {
            refuse(400, -32600, "unsupported MCP-Protocol-Version")
        }
        _ => Ok(id),
    }
}

async fn post(app: &App, req: &Req, who: &Principal, now: UnixTime) -> Result<Reply, Stop> {
    if !declared_as(req, "application/json") {
        return Ok(text(415, "expected application/json"));
    }
    let msg = match serde_json::from_slice(req.body()) {
        Ok(Value::Object(msg)) => msg,
        // Batches were removed from the protocol in 2025-06-18.
        Ok(_) => return Ok(error(400, NO_ID, -32600, "expected one JSON-RPC message")),
        Err(_) => return Ok(error(400, NO_ID, -32700, "parse error")),
    };
    let (id, method) = (msg.get("id"), msg.get("method").and_then(Value::as_str));
    let params = msg.get("params").unwrap_or(&Value::Null);
    if method == Some("initialize") {
        let Some(id) = id else {
            return Ok(error(400, NO_ID, -32600, "initialize must be a request"));
        };
        let asked = params.get("protocolVersion").and_then(Value::as_str);
        let version = VERSIONS.into_iter().find(|v| Some(*v) == asked);
        let (session_id, grant) = (hex::encode(random(16)), who.grant_key().as_bytes());
        let until = secs(now.plus(SESSION_LIFETIME));
        app.store
            .put(SESSIONS, key(&session_id), grant.to_vec(), until, secs(now))
            .await?;
        let result = json!({
            "protocolVersion": version.unwrap_or(VERSIONS[0]),
            "capabilities": { "tools": { "listChanged": false } },
            "serverInfo": { "name": "consent-gate-hyper-example", "version": env!("CARGO_PKG_VERSION") },
            "instructions": "Call `whoami` to see which upstream account this connection acts for.",
        });
        let mut reply = result_of(id, &result.to_string());
        reply.headers.push(("mcp-session-id", session_id.into()));
        return Ok(reply);
    }
    session(app, req, who, now).await?;
    let tool = params.get("name").and_then(Value::as_str);
    Ok(match (id, method) {
        // A notification (`notifications/initialized`, …) or a response: accepted.
        (None, Some(_)) | (Some(_), None) => respond(202, "text/plain", ""),
        (None, None) => error(400, NO_ID, -32600, "not a JSON-RPC message"),
        (Some(id), Some("ping")) => result_of(id, "{}"),
        (Some(id), Some("tools/list")) => result_of(id, &TOOLS),
        (Some(id), Some("tools/call")) if tool == Some("whoami") => {
            result_of(id, &whoami(app, who).await.to_string())
        }
        (Some(id), Some("tools/call")) => error(200, id, -32602, "unknown tool"),
        (Some(id), Some(_)) => error(200, id, -32601, "method not found"),
    })
}

/// A JSON-RPC result, its `result` a JSON text: the tool list is serialized only once.
fn result_of(id: &Value, result: &str) -> Reply {
    let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#);
    respond(200, "application/json", body)
}

fn error(status: u16, id: &Value, code: i64, message: &str) -> Reply {
    let error = json!({ "code": code, "message": message });
    json(
        status,
        &json!({ "jsonrpc": "2.0", "id": id, "error": error }),
    )
}

/// Asks the upstream who owns the upstream token of this request's grant (the core opened
/// it with the secret the caller's token carries): sent to the upstream only, never to the
/// MCP client.
async fn whoami(app: &App, who: &Principal) -> Value {
    let upstream = app.gate.config().upstream();
    let Some(token) = who.upstream_token() else {
        return tool_text("No upstream token is kept for this sign-in.".into(), true);
    };
    let headers = vec![
        ("authorization", format!("Bearer {}", token.secret()).into()),
        ("accept", "application/json".into()),
        ("user-agent", "consent-gate-hyper-example".into()),
    ];
    let (url, body) = (upstream.user_endpoint.clone(), Vec::new());
    let request = HttpRequest {
        method: "GET",
        url,
        headers,
        body,
    };
    let user = match app.upstream.send(&request).await {
        Ok(Fetched(200, _, body)) => serde_json::from_slice::<Value>(&body).unwrap_or_default(),
        Ok(Fetched(401, ..)) => Value::from("no longer accepts this sign-in: sign in again"),
        Ok(Fetched(status, ..)) => Value::from(format!("answered HTTP {status}")),
        Err(why) => Value::from(format!("could not be reached: {why}")),
    };
    let provider = &upstream.display_name;
    let Some(login) = user.get("login").and_then(Value::as_str) else {
        return tool_text(
            format!("{provider} {}", user.as_str().unwrap_or("sent no login")),
            true,
        );
    };
    let (subject, client) = (who.subject(), who.client_id());
    let you = format!("You are {login} on {provider}, signed in as {subject}");
    tool_text(format!("{you} through MCP client {client}."), false)
}

fn tool_text(text: String, is_error: bool) -> Value {
    json!({ "content": [{ "type": "text", "text": text }], "isError": is_error })
}
