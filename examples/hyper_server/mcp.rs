//! `/mcp`: a compact MCP server on the streamable HTTP transport, behind the bearer check,
//! stateless as the 2026-07-28 revision has it: no session, every POST answered on its own
//! (`server/discover` for that revision's clients, `initialize` for earlier ones, with no
//! `Mcp-Session-Id`, which the transport makes optional). One JSON-RPC message per POST,
//! one `application/json` answer; no server-initiated stream, so `GET` is 405. The one
//! tool, `whoami`, calls the upstream's user API with the upstream token that stays in the
//! grant on the server (R41).

use std::sync::LazyLock;

use consent_gate::{HttpRequest, Principal, Reply, ScopeSet, UnixTime};
use hyper::Method;
use serde_json::{Value, json};
use tracing::warn;

use consent_gate_store::{Answer, StoreError, short};

use crate::routes::App;
use crate::{Req, declared_as, header};

/// The revisions we speak, newest first; the first is offered to an `initialize` asking
/// for one we do not know.
const VERSIONS: [&str; 5] = [
    "2026-07-28",
    "2025-11-25",
    "2025-06-18",
    "2025-03-26",
    "2024-11-05",
];
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
pub async fn handle(app: &App, req: &Req, now: UnixTime) -> Result<Reply, StoreError> {
    // The transport's DNS-rebinding rule: a page of another origin gets 403 (clients
    // other than browsers send no `Origin`).
    if let Some(origin) = header(req, "origin").filter(|o| *o != app.origin) {
        warn!(security = true, event = "mcp_origin_refused", origin = %short(origin));
        return Ok(Reply::text(403, "cross-origin request refused"));
    }
    // The token, its grant, and the two together: a replayed code or a reused refresh
    // token deleted the grant, and with it every token it issued (R43, R53).
    // The upstream token is renewed on the way when it is about to expire (R66).
    let send = |r: HttpRequest| async move { crate::routes::send(app, &r).await };
    let principal = match app
        .endpoints
        .bearer(header(req, "authorization"), now, send)
        .await?
    {
        Ok(principal) => principal,
        Err(e) => return Ok(app.gate().unauthorized(e)),
    };
    if !SCOPE.is_subset_of(principal.scope()) {
        return Ok(app.gate().insufficient_scope(&SCOPE));
    } else if *req.method() != Method::POST {
        return Ok(Reply::text(405, "method not allowed").with_header("allow", "POST"));
    } else if !declared_as(req, "application/json") {
        return Ok(Reply::text(415, "expected application/json"));
    }
    let version = header(req, "mcp-protocol-version");
    if version.is_some_and(|v| !VERSIONS.contains(&v)) {
        return Ok(error(
            400,
            NO_ID,
            -32600,
            "unsupported MCP-Protocol-Version",
        ));
    }
    let msg = match serde_json::from_slice(req.body()) {
        Ok(Value::Object(msg)) => msg,
        // Batches were removed from the protocol in 2025-06-18.
        Ok(_) => return Ok(error(400, NO_ID, -32600, "expected one JSON-RPC message")),
        Err(_) => return Ok(error(400, NO_ID, -32700, "parse error")),
    };
    let (id, method) = (msg.get("id"), msg.get("method").and_then(Value::as_str));
    let params = msg.get("params").unwrap_or(&Value::Null);
    let tool = params.get("name").and_then(Value::as_str);
    let server =
        json!({ "name": "consent-gate-hyper-example", "version": env!("CARGO_PKG_VERSION") });
    let capabilities = json!({ "tools": { "listChanged": false } });
    let instructions = "Call `whoami` to see which upstream account this connection acts for.";
    Ok(match (id, method) {
        // A notification (`notifications/initialized`, …) or a response: accepted.
        (None, Some(_)) | (Some(_), None) => Reply::text(202, ""),
        (None, None) => error(400, NO_ID, -32600, "not a JSON-RPC message"),
        (Some(id), Some("server/discover")) => {
            let result = json!({ "resultType": "complete", "supportedVersions": VERSIONS,
                "capabilities": capabilities, "serverInfo": server, "instructions": instructions });
            result_of(id, &result.to_string())
        }
        (Some(id), Some("initialize")) => {
            let asked = params.get("protocolVersion").and_then(Value::as_str);
            let version = VERSIONS[1..].iter().find(|v| Some(**v) == asked);
            let result = json!({ "protocolVersion": version.unwrap_or(&VERSIONS[1]),
                "capabilities": capabilities, "serverInfo": server, "instructions": instructions });
            result_of(id, &result.to_string())
        }
        (Some(id), Some("ping")) => result_of(id, "{}"),
        (Some(id), Some("tools/list")) => result_of(id, &TOOLS),
        (Some(id), Some("tools/call")) if tool == Some("whoami") => {
            result_of(id, &whoami(app, &principal).await.to_string())
        }
        (Some(id), Some("tools/call")) => error(200, id, -32602, "unknown tool"),
        (Some(id), Some(_)) => error(200, id, -32601, "method not found"),
    })
}

/// A JSON-RPC result, its `result` a JSON text: the tool list is serialized only once.
fn result_of(id: &Value, result: &str) -> Reply {
    let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#);
    Reply::json_bytes(200, body.into_bytes())
}

fn error(status: u16, id: &Value, code: i64, message: &str) -> Reply {
    let error = json!({ "code": code, "message": message });
    Reply::json(
        status,
        &json!({ "jsonrpc": "2.0", "id": id, "error": error }),
    )
}

/// Asks the upstream who owns the upstream token of this request's grant (the core opened
/// it with the secret the caller's token carries): sent to the upstream only, never to the
/// MCP client.
async fn whoami(app: &App, who: &Principal) -> Value {
    let provider = &app.gate().config().upstream().display_name;
    let user = match app.gate().upstream_user_request(who) {
        None => Value::from("keeps no token for this sign-in"),
        Some(request) => match app.upstream.send(&request).await {
            Ok(Answer {
                status: 200, body, ..
            }) => serde_json::from_slice(&body).unwrap_or_default(),
            Ok(Answer { status: 401, .. }) => {
                Value::from("no longer accepts this sign-in: sign in again")
            }
            Ok(Answer { status, .. }) => Value::from(format!("answered HTTP {status}")),
            Err(why) => Value::from(format!("could not be reached: {why}")),
        },
    };
    let (text, is_error) = match user.get("login").and_then(Value::as_str) {
        Some(login) => {
            let (subject, client) = (who.subject(), who.client_id());
            let you = format!("You are {login} on {provider}, signed in as {subject}");
            (format!("{you} through MCP client {client}."), false)
        }
        None => (
            format!("{provider} {}", user.as_str().unwrap_or("sent no login")),
            true,
        ),
    };
    json!({ "content": [{ "type": "text", "text": text }], "isError": is_error })
}
