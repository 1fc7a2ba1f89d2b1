//! `/mcp`: a compact MCP server on the streamable HTTP transport, behind the bearer check.
//! One JSON-RPC message per POST, one `application/json` answer (the transport allows it
//! instead of an SSE stream); no server-initiated stream, so `GET` is 405, which the
//! official SDKs accept. `initialize` opens a session bound to the caller's grant, so
//! another user's token cannot ride on it. The one tool, `whoami`, calls the upstream's
//! user API with the upstream token that stays in the grant on the server (R41).

use std::sync::LazyLock;

use consent_gate::{GrantRecord, HttpRequest, Principal, ScopeSet};
use hyper::{Method, header::HeaderValue};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tracing::warn;

use crate::http::{self, Req, Resp, method_not_allowed, now, random_hex, reply, short, text};
use crate::routes::{App, Stop, secs, variant};

/// The revisions with the `initialize` handshake and sessions, newest first. The first is
/// offered to a client asking for one we do not know (a client of the stateless
/// 2026-07-28 revision then decides whether to continue; the official SDKs do).
const VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// Sessions are the example's own records: the grant that opened each, for a day at most,
/// under a hash of the session id (a dumped store yields no usable id).
pub const SESSIONS: consent_gate_store::Kind = consent_gate_store::Kind::Other("mcp_session");
const SESSION_LIFETIME: u64 = 24 * 3600;

fn session_key(id: &str) -> [u8; 32] {
    Sha256::new()
        .chain_update("mcp session\0")
        .chain_update(id)
        .finalize()
        .into()
}

/// Every request to `/mcp`: the origin, the bearer token, the scope, then the transport.
pub async fn handle(app: &App, req: &Req) -> Result<Resp, Stop> {
    // The transport's DNS-rebinding rule: a page of another origin gets 403 (clients
    // other than browsers send no `Origin`).
    if let Some(origin) = req.header("origin").filter(|o| *o != app.origin) {
        warn!(security = true, event = "mcp_origin_refused", origin = %short(origin));
        return Ok(text(403, "cross-origin request refused"));
    }
    let now = now();
    // The token, its grant, and the two together: a replayed code or a reused refresh
    // token deleted the grant, and with it every token it issued (R43, R53).
    let claims = app.gate.verify_bearer(req.header("authorization"), now);
    let grant: Option<GrantRecord> = match &claims {
        Ok(claims) => app.get(&claims.grant_key(), now).await?,
        Err(_) => None,
    };
    let principal = match claims.and_then(|c| c.confirm(grant.as_ref(), now)) {
        Ok(principal) => principal,
        Err(e) => {
            if e.oauth_error().is_some() {
                warn!(security = true, event = %variant(&e), reason = %e);
            }
            return Ok(reply(app.gate.unauthorized(e)));
        }
    };
    let required = ScopeSet::parse("mcp").expect("a valid scope");
    if !required.is_subset_of(principal.scope()) {
        return Ok(reply(app.gate.insufficient_scope(&required)));
    }
    let session = session(app, req, &principal).await?;
    match (&req.method, session) {
        (&Method::POST, session) => post(app, req, &principal, session).await,
        (&Method::DELETE, Ok(id)) => {
            app.store
                .delete(SESSIONS, session_key(id), secs(now))
                .await?;
            Ok(http::respond(200, "text/plain", ""))
        }
        (&Method::DELETE, Err(no_session)) => Ok(no_session),
        _ => Ok(method_not_allowed("POST, DELETE")),
    }
}

/// The caller's session id if it names a live session of the caller's grant; otherwise
/// the answer: 400 without `Mcp-Session-Id` or with an `MCP-Protocol-Version` we do not
/// speak, 404 for an unknown, expired, ended or foreign session (the client starts anew).
async fn session<'r>(
    app: &App,
    req: &'r Req,
    principal: &Principal,
) -> Result<Result<&'r str, Resp>, Stop> {
    let Some(id) = req.header("mcp-session-id") else {
        return Ok(Err(rpc_error(
            400,
            Value::Null,
            -32600,
            "missing Mcp-Session-Id",
        )));
    };
    let grant = app
        .store
        .get(SESSIONS, session_key(id), secs(now()))
        .await?;
    if grant.as_deref() != Some(principal.grant_key().as_bytes()) {
        return Ok(Err(rpc_error(
            404,
            Value::Null,
            -32001,
            "session not found",
        )));
    }
    match req.header("mcp-protocol-version") {
        Some(v) if !VERSIONS.contains(&v) => Ok(Err(rpc_error(
            400,
            Value::Null,
            -32600,
            "unsupported MCP-Protocol-Version",
        ))),
        _ => Ok(Ok(id)),
    }
}

async fn post(
    app: &App,
    req: &Req,
    principal: &Principal,
    session: Result<&str, Resp>,
) -> Result<Resp, Stop> {
    if !req.is("application/json") {
        return Ok(text(415, "expected application/json"));
    }
    let msg = match serde_json::from_slice(&req.body) {
        Ok(Value::Object(msg)) => msg,
        // Batches were removed from the protocol in 2025-06-18.
        Ok(_) => {
            return Ok(rpc_error(
                400,
                Value::Null,
                -32600,
                "expected one JSON-RPC message",
            ));
        }
        Err(_) => return Ok(rpc_error(400, Value::Null, -32700, "parse error")),
    };
    let (id, method) = (
        msg.get("id").cloned(),
        msg.get("method").and_then(Value::as_str),
    );
    let params = msg.get("params").unwrap_or(&Value::Null);
    if method == Some("initialize") {
        return match id {
            Some(id) => initialize(app, principal, id, params).await,
            None => Ok(rpc_error(
                400,
                Value::Null,
                -32600,
                "initialize must be a request",
            )),
        };
    }
    if let Err(no_session) = session {
        return Ok(no_session);
    }
    let tool = params.get("name").and_then(Value::as_str);
    Ok(match (id, method) {
        // A notification (`notifications/initialized`, …) or a response: accepted.
        (None, Some(_)) | (Some(_), None) => http::respond(202, "text/plain", ""),
        (None, None) => rpc_error(400, Value::Null, -32600, "not a JSON-RPC message"),
        (Some(id), Some("ping")) => rpc_result(&id, "{}"),
        (Some(id), Some("tools/list")) => rpc_result(&id, &TOOLS),
        (Some(id), Some("tools/call")) if tool == Some("whoami") => {
            rpc_result(&id, &whoami(app, principal).await.to_string())
        }
        (Some(id), Some("tools/call")) => rpc_error(200, id, -32602, "unknown tool"),
        (Some(id), Some(_)) => rpc_error(200, id, -32601, "method not found"),
    })
}

/// A JSON-RPC result, its `result` a JSON text: the tool list is serialized only once.
fn rpc_result(id: &Value, result: &str) -> Resp {
    let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#);
    http::respond(200, "application/json", body)
}

static TOOLS: LazyLock<String> = LazyLock::new(|| json!({ "tools": [whoami_tool()] }).to_string());

fn rpc_error(status: u16, id: Value, code: i64, message: &str) -> Resp {
    let error = json!({ "code": code, "message": message });
    http::json(
        status,
        &json!({ "jsonrpc": "2.0", "id": id, "error": error }),
    )
}

async fn initialize(
    app: &App,
    principal: &Principal,
    id: Value,
    params: &Value,
) -> Result<Resp, Stop> {
    let asked = params.get("protocolVersion").and_then(Value::as_str);
    let version = VERSIONS.into_iter().find(|v| Some(*v) == asked);
    let (session_id, grant, now) = (random_hex(16), principal.grant_key().as_bytes(), now());
    let expires = secs(now.plus(SESSION_LIFETIME));
    let key = session_key(&session_id);
    app.store
        .put(SESSIONS, key, grant.to_vec(), expires, secs(now))
        .await?;
    let result = json!({
        "protocolVersion": version.unwrap_or(VERSIONS[0]),
        "capabilities": { "tools": { "listChanged": false } },
        "serverInfo": { "name": "consent-gate-hyper-example", "version": env!("CARGO_PKG_VERSION") },
        "instructions": "Call `whoami` to see which upstream account this connection acts for.",
    });
    let mut resp = rpc_result(&id, &result.to_string());
    let session_id = HeaderValue::from_str(&session_id).expect("hex is a header value");
    resp.headers_mut().insert("mcp-session-id", session_id);
    Ok(resp)
}

fn whoami_tool() -> Value {
    json!({
        "name": "whoami",
        "title": "Who am I?",
        "description": "The upstream account (e.g. your GitHub login) this MCP connection acts for, \
                        as the upstream itself reports it right now.",
        "inputSchema": { "type": "object", "properties": {}, "additionalProperties": false },
        "annotations": { "readOnlyHint": true, "openWorldHint": true },
    })
}

/// Asks the upstream who owns the upstream token of this request's grant (the core opened
/// it with the secret the caller's token carries): sent to the upstream only, never to the
/// MCP client.
async fn whoami(app: &App, principal: &Principal) -> Value {
    let up = app.gate.config().upstream();
    let Some(token) = principal.upstream_token() else {
        return tool_text("no upstream token is kept for this sign-in".into(), true);
    };
    let headers = vec![
        ("authorization", format!("Bearer {}", token.secret()).into()),
        ("accept", "application/json".into()),
        ("user-agent", "consent-gate-hyper-example".into()),
    ];
    let url = up.user_endpoint.clone();
    let request = HttpRequest {
        method: "GET",
        url,
        headers,
        body: Vec::new(),
    };
    let fetched = app.upstream.send(&request).await;
    let user = match fetched.as_ref().map(http::Fetched::as_upstream) {
        Err(why) => Err(format!("could not be reached: {why}")),
        Ok(r) if r.status == 401 => Err("no longer accepts this sign-in: sign in again".into()),
        Ok(r) => match (r.status, serde_json::from_slice::<Value>(r.body)) {
            (200, Ok(user)) => Ok(user),
            (status, _) => Err(format!("answered HTTP {status}")),
        },
    };
    let provider = &up.display_name;
    let user = match user {
        Ok(user) => user,
        Err(why) => return tool_text(format!("{provider} {why}"), true),
    };
    let field = |k: &str| {
        user.get(k)
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned()
    };
    let (login, name) = (field("login"), field("name"));
    let id = user.get("id").map(Value::to_string).unwrap_or_default();
    let (subject, client) = (principal.subject(), principal.client_id());
    tool_text(
        format!(
            "You are {login} ({name}, {provider} id {id}), signed in as {subject} through MCP client {client}."
        ),
        false,
    )
}

fn tool_text(text: String, is_error: bool) -> Value {
    json!({ "content": [{ "type": "text", "text": text }], "isError": is_error })
}
