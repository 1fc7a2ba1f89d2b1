//! `/mcp`: a compact MCP server on the streamable HTTP transport, behind the bearer check.
//!
//! Each POST carries one JSON-RPC message and gets one `application/json` answer (the
//! transport allows that instead of an SSE stream); notifications get 202. `initialize`
//! opens a session (`Mcp-Session-Id`) bound to the caller's grant, so another user's
//! token cannot ride on it. There is no server-initiated stream: `GET` is 405, which the
//! official SDKs accept. One tool, `whoami`, calls the upstream's user API with the
//! upstream token that stays in the `GrantRecord` on the server (R41): the MCP client
//! never sees it.

use std::sync::LazyLock;

use consent_gate::{BearerError, GrantRecord, HttpRequest, Principal, ScopeSet};
use consent_gate_store::Kind;
use hyper::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tracing::warn;

use crate::http::{
    Req, Resp, json, method_not_allowed, now, random_hex, reply, respond, short, text,
};
use crate::oauth::{App, Stop, secs, variant};

/// Protocol revisions we speak, newest first: the ones with the `initialize` handshake and
/// sessions. The first is offered when the client asks for one we do not know; a client
/// asking for the stateless 2026-07-28 revision is thus offered 2025-11-25 and decides
/// whether it can continue (the official TypeScript and Python SDKs do).
const VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// A session lasts a day at most; the client re-initializes on 404.
const SESSION_LIFETIME: u64 = 24 * 3600;
/// Sessions are the example's own records: the key of the grant that opened each, stored
/// under a hash of the session id, so a dumped store yields no usable id.
pub const SESSIONS: Kind = Kind::Other("mcp_session");

fn session_key(id: &str) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"mcp session\0")
        .chain_update(id)
        .finalize()
        .into()
}

/// Every request to `/mcp`: origin check, bearer check, then the transport.
pub async fn handle(app: &App, req: &Req) -> Result<Resp, Stop> {
    // The streamable HTTP transport's DNS-rebinding rule: a browser page from another
    // origin gets 403 (non-browser clients send no `Origin`).
    if let Some(origin) = req.header("origin").filter(|o| *o != app.origin) {
        warn!(security = true, event = "mcp_origin_refused", origin = %short(origin));
        return Ok(text(403, "cross-origin request refused"));
    }
    let now = now();
    // verify_bearer → look up the grant → confirm: a replayed code or a reused refresh
    // token deleted the grant, and with it every token it issued (R43, R53).
    let claims = match app.gate.verify_bearer(req.header("authorization"), now) {
        Ok(c) => c,
        Err(e) => {
            if e.oauth_error().is_some() {
                warn!(security = true, event = %variant(&e), reason = %e);
            }
            return Ok(reply(app.gate.unauthorized(e)));
        }
    };
    let grant: Option<GrantRecord> = app.get(&claims.grant_key(), now).await?;
    let (principal, grant) = match (claims.confirm(grant.as_ref(), now), grant) {
        (Ok(p), Some(g)) => (p, g),
        (result, _) => {
            // `confirm` refuses a missing grant, so this is always its `Err`.
            let e = result.err().unwrap_or(BearerError::Revoked);
            warn!(security = true, event = %variant(&e), reason = %e);
            return Ok(reply(app.gate.unauthorized(e)));
        }
    };
    let required = ScopeSet::parse("mcp").expect("a valid scope");
    if !required.is_subset_of(principal.scope()) {
        return Ok(reply(app.gate.insufficient_scope(&required)));
    }
    match req.method {
        Method::POST => post(app, req, &principal, &grant).await,
        Method::DELETE => Ok(match session(app, req, &principal).await? {
            Ok(id) => {
                app.store
                    .delete(SESSIONS, session_key(id), secs(now))
                    .await?;
                respond(200, "text/plain", "")
            }
            Err(no_session) => no_session,
        }),
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
    if grant.as_deref() != Some(&principal.grant_key().as_bytes()[..]) {
        return Ok(Err(rpc_error(
            404,
            Value::Null,
            -32001,
            "session not found",
        )));
    }
    if req
        .header("mcp-protocol-version")
        .is_some_and(|v| !VERSIONS.contains(&v))
    {
        let message = "unsupported MCP-Protocol-Version";
        return Ok(Err(rpc_error(400, Value::Null, -32600, message)));
    }
    Ok(Ok(id))
}

fn rpc_error(status: u16, id: Value, code: i64, message: &str) -> Resp {
    let error =
        json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } });
    json(status, &error)
}

/// A JSON-RPC result around `result`, a JSON text (`tools/list` is serialized once).
fn rpc_result(id: &Value, result: &str) -> Resp {
    let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#);
    respond(200, "application/json", body)
}

static TOOLS: LazyLock<String> = LazyLock::new(|| json!({ "tools": [whoami_tool()] }).to_string());

async fn post(
    app: &App,
    req: &Req,
    principal: &Principal,
    grant: &GrantRecord,
) -> Result<Resp, Stop> {
    if !req.is("application/json") {
        return Ok(text(415, "expected application/json"));
    }
    let Ok(msg) = serde_json::from_slice::<Value>(&req.body) else {
        return Ok(rpc_error(400, Value::Null, -32700, "parse error"));
    };
    let Some(msg) = msg.as_object() else {
        // Batches were removed from the protocol in 2025-06-18.
        return Ok(rpc_error(
            400,
            Value::Null,
            -32600,
            "expected one JSON-RPC message",
        ));
    };
    let (id, method) = (
        msg.get("id").cloned(),
        msg.get("method").and_then(Value::as_str),
    );
    let params = msg.get("params").unwrap_or(&Value::Null);
    if method == Some("initialize") {
        let Some(id) = id else {
            return Ok(rpc_error(
                400,
                Value::Null,
                -32600,
                "initialize must be a request",
            ));
        };
        return initialize(app, principal, &id, params).await;
    }
    if let Err(no_session) = session(app, req, principal).await? {
        return Ok(no_session);
    }
    Ok(match (id, method) {
        // A notification (`notifications/initialized`, …) or a response: accepted.
        (None, Some(_)) | (Some(_), None) => respond(202, "text/plain", ""),
        (None, None) => rpc_error(400, Value::Null, -32600, "not a JSON-RPC message"),
        (Some(id), Some("ping")) => rpc_result(&id, "{}"),
        (Some(id), Some("tools/list")) => rpc_result(&id, &TOOLS),
        (Some(id), Some("tools/call")) => match params.get("name").and_then(Value::as_str) {
            Some("whoami") => rpc_result(&id, &whoami(app, principal, grant).await.to_string()),
            _ => rpc_error(200, id, -32602, "unknown tool"),
        },
        (Some(id), Some(_)) => rpc_error(200, id, -32601, "method not found"),
    })
}

async fn initialize(
    app: &App,
    principal: &Principal,
    id: &Value,
    params: &Value,
) -> Result<Resp, Stop> {
    let asked = params.get("protocolVersion").and_then(Value::as_str);
    let version = VERSIONS
        .into_iter()
        .find(|v| Some(*v) == asked)
        .unwrap_or(VERSIONS[0]);
    let (session_id, now) = (random_hex(16), now());
    let grant = principal.grant_key().as_bytes().to_vec();
    let expires = secs(now.plus(SESSION_LIFETIME));
    app.store
        .put(
            SESSIONS,
            session_key(&session_id),
            grant,
            expires,
            secs(now),
        )
        .await?;
    let result = json!({
        "protocolVersion": version,
        "capabilities": { "tools": { "listChanged": false } },
        "serverInfo": { "name": "consent-gate-hyper-example", "version": env!("CARGO_PKG_VERSION") },
        "instructions": "Call `whoami` to see which upstream account this connection acts for.",
    });
    let mut resp = rpc_result(id, &result.to_string());
    let session_id = hyper::header::HeaderValue::from_str(&session_id).expect("hex");
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

fn tool_text(text: String, is_error: bool) -> Value {
    json!({ "content": [{ "type": "text", "text": text }], "isError": is_error })
}

/// Asks the upstream who owns the upstream token kept in the grant. The token is sent to
/// the upstream only, never to the MCP client (R41).
async fn whoami(app: &App, principal: &Principal, grant: &GrantRecord) -> Value {
    let up = app.gate.config().upstream();
    let Some(token) = grant.upstream_token() else {
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
    let user = match fetched.as_ref().map(|f| f.as_upstream()) {
        Err(why) => Err(format!("could not be reached: {why}")),
        Ok(f) if f.status == 401 => {
            Err("no longer accepts this sign-in (revoked or expired): sign in again".into())
        }
        Ok(f) => match (f.status, serde_json::from_slice::<Value>(f.body)) {
            (200, Ok(user)) => Ok(user),
            (status, _) => Err(format!("answered HTTP {status}")),
        },
    };
    let provider = &up.display_name;
    let user = match user {
        Ok(user) => user,
        Err(why) => return tool_text(format!("{provider} {why}"), true),
    };
    let field = |k: &str| user.get(k).and_then(Value::as_str).unwrap_or("?");
    let id = user.get("id").map(Value::to_string).unwrap_or_default();
    let (login, name) = (field("login"), field("name"));
    let (subject, client) = (principal.subject(), principal.client_id());
    let text = format!(
        "You are {login} ({name}, {provider} id {id}), signed in as {subject} through MCP client {client}."
    );
    tool_text(text, false)
}
