//! `/mcp`: a compact MCP server on the streamable HTTP transport, behind the bearer check.
//!
//! Each POST carries one JSON-RPC message and gets one `application/json` answer (the
//! transport allows that instead of an SSE stream); notifications get 202. `initialize`
//! opens a session (`Mcp-Session-Id`) bound to the caller's grant, so another user's
//! token cannot ride on it. There is no server-initiated stream: `GET` is 405, which the
//! official SDKs accept. One tool, `whoami`, calls the upstream's user API with the
//! upstream token that stays in the `GrantRecord` on the server (R41): the MCP client
//! never sees it.

use std::sync::Arc;

use consent_gate::{BearerError, GrantRecord, HttpRequest, Principal, ScopeSet};
use hyper::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::glue::{self, Req, Resp, V, json_resp, method_not_allowed, now, reply, security};
use crate::routes::App;
use crate::store::{Key, Kind, Stored};

/// Protocol revisions we speak, newest first: the ones with the `initialize` handshake and
/// sessions. The first is offered when the client asks for one we do not know; a client
/// asking for the stateless 2026-07-28 revision is thus offered 2025-11-25 and decides
/// whether it can continue (the official TypeScript and Python SDKs do).
const VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// A session lasts a day at most; the client re-initializes on 404.
const SESSION_LIFETIME: u64 = 24 * 3600;

fn session_key(id: &str) -> Key {
    Sha256::new()
        .chain_update(b"mcp session\0")
        .chain_update(id.as_bytes())
        .finalize()
        .into()
}

/// Every request to `/mcp`: origin check, bearer check, then the transport.
pub async fn handle(app: &App, req: &Req) -> Resp {
    // The streamable HTTP transport's DNS-rebinding rule: a browser page from another
    // origin gets 403 (non-browser clients send no `Origin`).
    if req.header("origin").is_some_and(|o| o != app.origin) {
        security(
            "mcp_origin_refused",
            &[("origin", V::Short(req.header("origin").unwrap_or("")))],
        );
        return glue::text(403, "cross-origin request refused");
    }
    let now = now();
    // verify_bearer → look up the grant → confirm: a replayed code or a reused refresh
    // token deleted the grant, and with it every token it issued (R43, R53).
    let claims = match app.gate.verify_bearer(req.header("authorization"), now) {
        Ok(c) => c,
        Err(e) => {
            if e.oauth_error().is_some() {
                security("bearer_refused", &[("reason", V::Str(&e.to_string()))]);
            }
            return reply(app.gate.unauthorized(e));
        }
    };
    let grant: Option<Arc<GrantRecord>> = app.store.get_record(&claims.grant_key(), now);
    let principal = match (claims.confirm(grant.as_deref(), now), grant) {
        (Ok(p), Some(_)) => p,
        (result, _) => {
            // `confirm` refuses a missing grant, so this is always its `Err`.
            let e = result.err().unwrap_or(BearerError::Revoked);
            security("bearer_refused", &[("reason", V::Str(&e.to_string()))]);
            return reply(app.gate.unauthorized(e));
        }
    };
    let required = ScopeSet::parse("mcp").expect("a valid scope");
    if !required.is_subset_of(principal.scope()) {
        return reply(app.gate.insufficient_scope(&required));
    }
    match req.method {
        Method::POST => post(app, req, &principal).await,
        Method::DELETE => match session(app, req, &principal) {
            Ok(id) => {
                app.store.delete(Kind::Session, &session_key(id));
                glue::respond(200, "text/plain", "")
            }
            Err(no) => no.response(),
        },
        _ => method_not_allowed("POST, DELETE"),
    }
}

/// Why a request has no usable session.
enum NoSession {
    /// 400: no `Mcp-Session-Id` on a request other than `initialize`.
    Missing,
    /// 404: unknown, expired, deleted or opened under another grant; the client starts a
    /// new session.
    Unknown,
    /// 400: an `MCP-Protocol-Version` we do not speak.
    BadVersion,
}

impl NoSession {
    fn response(self) -> Resp {
        match self {
            Self::Missing => rpc_error(400, Value::Null, -32600, "missing Mcp-Session-Id"),
            Self::Unknown => rpc_error(404, Value::Null, -32001, "session not found"),
            Self::BadVersion => {
                rpc_error(400, Value::Null, -32600, "unsupported MCP-Protocol-Version")
            }
        }
    }
}

/// The caller's session id, checked against the store and bound to the caller's grant.
fn session<'r>(app: &App, req: &'r Req, principal: &Principal) -> Result<&'r str, NoSession> {
    let id = req.header("mcp-session-id").ok_or(NoSession::Missing)?;
    let found = app
        .store
        .get(Kind::Session, &session_key(id), now())
        .and_then(Stored::session_grant);
    if found.is_none_or(|grant| grant != *principal.grant_key()) {
        return Err(NoSession::Unknown);
    }
    if req
        .header("mcp-protocol-version")
        .is_some_and(|v| !VERSIONS.contains(&v))
    {
        return Err(NoSession::BadVersion);
    }
    Ok(id)
}

fn rpc_error(status: u16, id: Value, code: i64, message: &str) -> Resp {
    json_resp(
        status,
        &json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } }),
    )
}

fn rpc_result(id: Value, result: Value) -> Resp {
    json_resp(
        200,
        &json!({ "jsonrpc": "2.0", "id": id, "result": result }),
    )
}

/// A result that is the same every time, serialized once (`tools/list`, `ping`).
fn rpc_result_json(id: &Value, result_json: &str) -> Resp {
    let mut body = Vec::with_capacity(48 + result_json.len());
    body.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    // A JSON value we parsed ourselves serializes.
    serde_json::to_writer(&mut body, id).expect("a JSON value serializes");
    body.extend_from_slice(br#","result":"#);
    body.extend_from_slice(result_json.as_bytes());
    body.push(b'}');
    glue::respond(200, "application/json", body)
}

/// The `tools/list` result, serialized once.
fn tools_list() -> &'static str {
    static TOOLS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TOOLS.get_or_init(|| json!({ "tools": [whoami_tool()] }).to_string())
}

async fn post(app: &App, req: &Req, principal: &Principal) -> Resp {
    if !req.content_type_is("application/json") {
        return glue::text(415, "expected application/json");
    }
    let Ok(msg) = serde_json::from_slice::<Value>(&req.body) else {
        return rpc_error(400, Value::Null, -32700, "parse error");
    };
    let Some(obj) = msg.as_object() else {
        // Batches were removed from the protocol in 2025-06-18.
        return rpc_error(400, Value::Null, -32600, "expected one JSON-RPC message");
    };
    let id = obj.get("id").cloned();
    let method = obj.get("method").and_then(Value::as_str);
    let params = obj.get("params").cloned().unwrap_or(Value::Null);
    if method == Some("initialize") {
        let Some(id) = id else {
            return rpc_error(400, Value::Null, -32600, "initialize must be a request");
        };
        return initialize(app, principal, id, &params);
    }
    if let Err(no) = session(app, req, principal) {
        return no.response();
    }
    match (id, method) {
        // A notification (`notifications/initialized`, …) or a response: accepted.
        (None, Some(_)) | (Some(_), None) => glue::respond(202, "text/plain", ""),
        (None, None) => rpc_error(400, Value::Null, -32600, "not a JSON-RPC message"),
        (Some(id), Some("ping")) => rpc_result_json(&id, "{}"),
        (Some(id), Some("tools/list")) => rpc_result_json(&id, tools_list()),
        (Some(id), Some("tools/call")) => match params.get("name").and_then(Value::as_str) {
            Some("whoami") => rpc_result(id, whoami(app, principal).await),
            _ => rpc_error(200, id, -32602, "unknown tool"),
        },
        (Some(id), Some(_)) => rpc_error(200, id, -32601, "method not found"),
    }
}

fn initialize(app: &App, principal: &Principal, id: Value, params: &Value) -> Resp {
    let asked = params.get("protocolVersion").and_then(Value::as_str);
    let version = VERSIONS
        .iter()
        .find(|v| Some(**v) == asked)
        .unwrap_or(&VERSIONS[0]);
    let session_id = glue::random_hex(16);
    let now = now();
    app.store.put(
        Kind::Session,
        session_key(&session_id),
        Stored::Session(*principal.grant_key()),
        now.plus(SESSION_LIFETIME),
        now,
    );
    let result = json!({
        "protocolVersion": version,
        "capabilities": { "tools": { "listChanged": false } },
        "serverInfo": { "name": "consent-gate-hyper-example", "version": env!("CARGO_PKG_VERSION") },
        "instructions": "Call `whoami` to see which upstream account this connection acts for.",
    });
    glue::with_header(rpc_result(id, result), "mcp-session-id", &session_id)
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

fn tool_text(text: String, is_error: bool) -> Value {
    json!({ "content": [{ "type": "text", "text": text }], "isError": is_error })
}

/// Asks the upstream who owns the upstream token kept in the grant. The token is sent to
/// the upstream only, never to the MCP client.
async fn whoami(app: &App, principal: &Principal) -> Value {
    let Some(token) = principal.upstream_token() else {
        return tool_text("no upstream token is kept for this sign-in".into(), true);
    };
    let up = app.gate.config().upstream();
    let request = HttpRequest {
        method: "GET",
        url: up.user_endpoint.clone(),
        headers: vec![
            ("authorization", format!("Bearer {}", token.secret()).into()),
            ("accept", "application/json".into()),
            ("user-agent", "consent-gate-hyper-example".into()),
        ],
        body: Vec::new(),
    };
    let fetched = match app.upstream.send(&request).await {
        Ok(f) => f,
        Err(why) => {
            return tool_text(
                format!("{} could not be reached: {why}", up.display_name),
                true,
            );
        }
    };
    if fetched.status == 401 {
        return tool_text(
            format!(
                "{} no longer accepts this sign-in (revoked or expired): sign in again",
                up.display_name
            ),
            true,
        );
    }
    let user: Value = match (fetched.status, serde_json::from_slice(&fetched.body)) {
        (200, Ok(v)) => v,
        (status, _) => {
            return tool_text(format!("{} answered HTTP {status}", up.display_name), true);
        }
    };
    let login = user.get("login").and_then(Value::as_str).unwrap_or("?");
    let name = user.get("name").and_then(Value::as_str).unwrap_or("");
    let id = user.get("id").map(Value::to_string).unwrap_or_default();
    tool_text(
        format!(
            "You are {login} ({name}, {provider} id {id}), signed in as {subject} through MCP client {client}.",
            provider = up.display_name,
            subject = principal.subject(),
            client = principal.client_id(),
        ),
        false,
    )
}
