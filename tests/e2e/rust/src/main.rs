//! End to end (docs/design.md#e2e): the official Rust MCP SDK (`rmcp`, run unmodified, with
//! its OAuth client) logs in to a consent-gate server through the consent page, then calls
//! the `whoami` tool over the streamable HTTP transport.
//!
//! The SDK does all the OAuth client work itself: the 401 challenge → RFC 9728 protected
//! resource metadata → RFC 8414 authorization server metadata → RFC 7591 registration →
//! a PKCE S256 authorization URL → the code exchange, with its own `state` (CSRF) and
//! RFC 9207 `iss` checks → bearer on /mcp → refresh. What it leaves to the application is
//! the user: here a cookie-jar HTTP client (`user_agent.rs`) loads the consent page,
//! submits Approve or Deny as a browser would, and follows the redirects until the
//! browser is sent to the client's loopback redirect URI, whose query goes to the SDK.
//!
//! Scenarios: approve (then refresh, and a replayed code that must revoke the grant the
//! SDK holds, R43), deny (`access_denied`, no token; then the SDK's authorization URL
//! with its `redirect_uri` extended must get an error page, A10), and forwarded (A2: the
//! upstream's redirect back to the gate opened in a browser without the binding cookie
//! is refused). These three attack checks are what make the driver fail on a gate built
//! with the fault switches `code_reusable`, `redirect_prefix_match` and
//! `callback_unbound`, not only on a broken happy path.
//!
//! Usage: consent-gate-e2e-rust --server http://127.0.0.1:PORT   (or E2E_SERVER=…)
//! Exit status: 0 when every scenario passed, 1 otherwise, 2 on the global timeout.

#![forbid(unsafe_code)]

mod user_agent;

use std::future::Future;
use std::net::TcpListener;
use std::time::Duration;

use oauth2::TokenResponse;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::ClientInitializeError;
use rmcp::transport::auth::{AuthorizationCallback, AuthorizationMetadataSource};
use rmcp::transport::streamable_http_client::{
    AuthRequiredError, StreamableHttpClientTransportConfig,
};
use rmcp::transport::{
    AuthClient, AuthError, AuthorizationManager, AuthorizationRequest, AuthorizationSession,
    CredentialStore, InMemoryCredentialStore, InMemoryStateStore, StateStore,
    StreamableHttpClientTransport,
};
use serde_json::Value;
use url::Url;
use user_agent::{Browser, UserRun};

const GLOBAL_TIMEOUT: Duration = Duration::from_secs(120);
const STEP_TIMEOUT: Duration = Duration::from_secs(20);
/// The user the built-in demo upstream signs in (it behaves like GitHub's `/user`).
const EXPECTED_LOGIN: &str = "octocat";

type Check = Result<(), String>;

fn ensure(cond: bool, what: impl FnOnce() -> String) -> Check {
    if cond { Ok(()) } else { Err(what()) }
}

/// Bounds one step: whatever hangs (server, SDK retry loop), the driver moves on.
async fn step<T>(what: &str, fut: impl Future<Output = T>) -> Result<T, String> {
    tokio::time::timeout(STEP_TIMEOUT, fut)
        .await
        .map_err(|_| format!("timeout after {STEP_TIMEOUT:?}: {what}"))
}

/// What the server publishes, read independently of the SDK to check what it did.
struct Published {
    mcp: Url,
    issuer: String,
    token_endpoint: String,
    resource: String,
}

async fn get_json(url: &str) -> Result<Value, String> {
    let res = step(url, reqwest::get(url))
        .await?
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = res.status();
    let body = res.bytes().await.map_err(|e| format!("GET {url}: {e}"))?;
    ensure(status.is_success(), || format!("GET {url}: HTTP {status}"))?;
    serde_json::from_slice(&body).map_err(|e| format!("GET {url}: {e}"))
}

async fn published(server: &str) -> Result<Published, String> {
    let asm = get_json(&format!("{server}/.well-known/oauth-authorization-server")).await?;
    let prm = get_json(&format!(
        "{server}/.well-known/oauth-protected-resource/mcp"
    ))
    .await?;
    let text = |v: &Value, k: &str| v[k].as_str().map(str::to_owned).ok_or(format!("no {k}"));
    Ok(Published {
        mcp: Url::parse(&format!("{server}/mcp")).map_err(|e| e.to_string())?,
        issuer: text(&asm, "issuer")?,
        token_endpoint: text(&asm, "token_endpoint")?,
        resource: text(&prm, "resource")?,
    })
}

/// The client's side of one login, up to the code (or error) at its redirect URI.
struct Login {
    session: AuthorizationSession,
    store: InMemoryCredentialStore,
    /// The SDK's pending authorizations (its PKCE verifiers), read for the replay check.
    pending: InMemoryStateStore,
    auth_url: Url,
    user: UserRun,
    _redirect_port: TcpListener,
}

impl Login {
    fn auth_param(&self, name: &str) -> Option<String> {
        self.auth_url
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// Connects without a token, as an application does first, and returns the server's
/// `WWW-Authenticate` challenge, which the SDK surfaces as `AuthRequiredError`.
async fn challenge(p: &Published) -> Result<String, String> {
    // `AuthorizationManager::new` (not `new_allowing_private_addresses`): rmcp 3.11 lets
    // discovered metadata name a loopback host exactly when the MCP URL itself is
    // loopback, which it is here, so the SDK's default address policy stays on.
    let manager = AuthorizationManager::new(p.mcp.as_str())
        .await
        .map_err(|e| e.to_string())?;
    let client = AuthClient::new(reqwest::Client::new(), manager);
    let config = StreamableHttpClientTransportConfig::with_uri(p.mcp.as_str());
    let transport = StreamableHttpClientTransport::with_client(client, config);
    let error = match step("connect without a token", ().serve(transport)).await? {
        Ok(service) => {
            let _ = service.cancel().await;
            return Err("the MCP endpoint served a client without a token".into());
        }
        Err(e) => e,
    };
    let ClientInitializeError::TransportError { error: dynamic, .. } = &error else {
        return Err(format!(
            "expected a transport error carrying the 401, got {error}"
        ));
    };
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(dynamic.error.as_ref());
    while let Some(e) = cause {
        if let Some(required) = e.downcast_ref::<AuthRequiredError>() {
            return Ok(required.www_authenticate_header.clone());
        }
        cause = e.source();
    }
    Err(format!("no AuthRequiredError in {error}"))
}

/// The SDK discovers, registers and builds the authorization URL; the user clicks
/// `decision` on the consent page.
/// With `stop_at_callback`, the user's browser stops where the upstream sends it back to
/// the gate's `/callback`, so that URL can be handed to another browser.
async fn login(
    p: &Published,
    decision: &str,
    client_name: &str,
    stop_at_callback: bool,
) -> Result<Login, String> {
    let www_authenticate = challenge(p).await?;
    ensure(www_authenticate.contains("resource_metadata="), || {
        format!("the 401 names no resource metadata (RFC 9728): {www_authenticate}")
    })?;
    let mut manager = AuthorizationManager::new(p.mcp.as_str())
        .await
        .map_err(|e| e.to_string())?;
    // Kept here too, to read and edit what the SDK stores (a shared handle, not a copy).
    let store = InMemoryCredentialStore::new();
    manager.set_credential_store(store.clone());
    let pending = InMemoryStateStore::new();
    manager.set_state_store(pending.clone());
    let resolved = step(
        "discovery",
        manager.resolve_metadata_from_challenge(Some(&www_authenticate)),
    )
    .await?
    .map_err(|e| format!("discovery: {e}"))?;
    ensure(
        resolved.source == AuthorizationMetadataSource::ProtectedResourceMetadata,
        || {
            format!(
                "SDK found the metadata via {:?}, not RFC 9728",
                resolved.source
            )
        },
    )?;
    let issuer = resolved.metadata.issuer.clone();
    ensure(issuer.as_deref() == Some(p.issuer.as_str()), || {
        format!("issuer {issuer:?}")
    })?;
    manager.set_metadata(resolved.metadata);

    // The redirect URI is a loopback port this process holds (RFC 8252 §7.3) for the
    // whole scenario, so nothing else can be listening there; the browser's last hop is
    // read, not sent.
    let redirect_port = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = redirect_port
        .local_addr()
        .map_err(|e| e.to_string())?
        .port();
    let redirect_uri = format!("http://127.0.0.1:{port}/callback");
    let request = AuthorizationRequest::new(&redirect_uri).with_client_name(client_name);
    let session = step("registration", AuthorizationSession::new(manager, request))
        .await?
        .map_err(|(_, e)| format!("registration or authorization URL: {e}"))?;
    let auth_url = Url::parse(session.get_authorization_url()).map_err(|e| e.to_string())?;
    let redirect_uri = Url::parse(&redirect_uri).map_err(|e| e.to_string())?;
    let callback = p.mcp.join("/callback").map_err(|e| e.to_string())?;
    let stop_at = stop_at_callback.then_some(&callback);
    let mut browser = Browser::new()?;
    let user = step("the user at the consent page", async {
        browser
            .act_as_user(&auth_url, decision, &redirect_uri, stop_at, client_name)
            .await
    })
    .await??;
    Ok(Login {
        session,
        store,
        pending,
        auth_url,
        user,
        _redirect_port: redirect_port,
    })
}

/// The authorization request the SDK built, and the redirect it got back.
fn check_round_trip(login: &Login, p: &Published) -> Check {
    let method = login.auth_param("code_challenge_method");
    ensure(method.as_deref() == Some("S256"), || {
        format!("code_challenge_method {method:?}")
    })?;
    let resource = login.auth_param("resource");
    ensure(resource.as_deref() == Some(p.resource.as_str()), || {
        format!(
            "SDK sent resource {resource:?}, PRM says {} (R4)",
            p.resource
        )
    })?;
    let client_id = login.auth_param("client_id");
    ensure(client_id.is_some_and(|c| !c.is_empty()), || {
        "no client_id: no registration".into()
    })?;
    // R24: 303 after the consent POST.
    let first = login.user.chain.first().map(|h| h.status);
    ensure(first == Some(303), || {
        format!("consent POST answered {first:?}")
    })?;
    // R47 / RFC 9207: every authorization response names the issuer, and echoes `state`.
    let state = login.user.param("state");
    ensure(
        state.is_some() && state == login.auth_param("state"),
        || format!("state {state:?}"),
    )?;
    let iss = login.user.param("iss");
    ensure(iss.as_deref() == Some(p.issuer.as_str()), || {
        format!("iss {iss:?}")
    })
}

fn via_upstream(run: &UserRun) -> bool {
    run.chain
        .iter()
        .any(|h| h.url.path().starts_with("/demo-upstream/"))
}

/// Whether `text` names `login` as a whole word (not `octocat2`, not `not-octocat`).
fn names_user(text: &str, login: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    text.match_indices(login).any(|(i, m)| {
        let before = text[..i].chars().next_back();
        let after = text[i + m.len()..].chars().next();
        !before.is_some_and(word) && !after.is_some_and(word)
    })
}

/// A fresh MCP connection authorized by the SDK's stored token: `tools/list`, then
/// `whoami`, which must come back as the upstream user.
async fn call_whoami(client: &AuthClient<reqwest::Client>, p: &Published, when: &str) -> Check {
    let config = StreamableHttpClientTransportConfig::with_uri(p.mcp.as_str());
    let transport = StreamableHttpClientTransport::with_client(client.clone(), config);
    let service = step(&format!("connect {when}"), ().serve(transport))
        .await?
        .map_err(|e| format!("connect {when}: {e}"))?;
    let outcome = async {
        let tools = step("tools/list", service.list_all_tools()).await?;
        let tools = tools.map_err(|e| format!("tools/list {when}: {e}"))?;
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        ensure(names.contains(&"whoami"), || {
            format!("tools/list: {names:?}")
        })?;
        let call = service.call_tool(CallToolRequestParams::new("whoami"));
        let result = step("tools/call whoami", call).await?;
        let result = result.map_err(|e| format!("whoami {when}: {e}"))?;
        let json = serde_json::to_value(&result).map_err(|e| e.to_string())?;
        ensure(json["isError"] != Value::Bool(true), || {
            format!("whoami isError: {json}")
        })?;
        let texts = json["content"].as_array().into_iter().flatten();
        let text: Vec<&str> = texts.filter_map(|c| c["text"].as_str()).collect();
        let text = text.join("\n");
        ensure(names_user(&text, EXPECTED_LOGIN), || {
            format!("whoami {when} does not name {EXPECTED_LOGIN}: {text}")
        })
    }
    .await;
    let _ = service.cancel().await;
    outcome
}

fn refresh_secret(token: &rmcp::transport::auth::OAuthTokenResponse) -> Option<String> {
    token.refresh_token().map(|t| t.secret().clone())
}

async fn stored_token(
    store: &InMemoryCredentialStore,
) -> Result<rmcp::transport::auth::OAuthTokenResponse, String> {
    let stored = store.load().await.map_err(|e| e.to_string())?;
    stored
        .and_then(|s| s.token_response)
        .ok_or_else(|| "the SDK stored no token".into())
}

async fn scenario_approve(p: &Published) -> Check {
    let login = login(p, "approve", "E2E Rust SDK client", false).await?;
    check_round_trip(&login, p)?;
    ensure(via_upstream(&login.user), || {
        "approval did not go through the upstream".into()
    })?;
    let callback = AuthorizationCallback::from_redirect_url(login.user.landed.as_str())
        .map_err(|e| format!("redirect without a code: {e}: {}", login.user.landed))?;

    // The SDK's own checks are live, so its acceptance below means something: a foreign
    // `iss` (mix-up, RFC 9207) and an unknown `state` (CSRF) are refused before any token
    // request, and neither consumes the PKCE verifier the genuine callback needs.
    let session = &login.session;
    let code = callback.code.as_str();
    let forged =
        session.handle_callback_with_issuer(code, &callback.csrf_token, Some("http://127.0.0.1:1"));
    let forged = step("forged iss", forged).await?;
    ensure(
        matches!(forged, Err(AuthError::AuthorizationServerMismatch { .. })),
        // Never the token itself in the report: only whether there was one.
        || {
            format!(
                "SDK accepted a foreign iss: {:?}",
                forged.as_ref().map(|_| "a token")
            )
        },
    )?;
    let csrf = step(
        "forged state",
        session.handle_callback_with_issuer(code, "forged", None),
    )
    .await?;
    ensure(csrf.is_err(), || "SDK accepted an unknown state".into())?;

    // What an attacker holding a leaked code and verifier would send, kept for the replay
    // check at the end (the SDK forgets the verifier once it has used it).
    let replay = Redemption {
        code: callback.code.clone(),
        verifier: login
            .pending
            .load(&callback.csrf_token)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the SDK keeps no pending authorization for this state")?
            .pkce_verifier,
        client_id: login.auth_param("client_id").unwrap_or_default(),
        redirect_uri: login.auth_param("redirect_uri").unwrap_or_default(),
    };

    let url = login.user.landed.as_str();
    let token = step("code exchange", session.handle_callback_url(url)).await?;
    let token = token.map_err(|e| format!("code exchange: {e}"))?;
    let bearer = token.token_type().as_ref().eq_ignore_ascii_case("bearer");
    ensure(bearer, || format!("token_type {:?}", token.token_type()))?;
    let first_refresh = refresh_secret(&token).ok_or("token response without a refresh token")?;

    let Login { session, store, .. } = login;
    let client = AuthClient::new(reqwest::Client::new(), session.auth_manager);
    call_whoami(&client, p, "after the code exchange").await?;

    // R53: a refresh rotates the refresh token, and the new access token works.
    let refreshed = step("refresh", async {
        client.auth_manager.lock().await.refresh_token().await
    })
    .await?
    .map_err(|e| format!("refresh: {e}"))?;
    let second_refresh = refresh_secret(&refreshed).ok_or("refresh answered no refresh token")?;
    ensure(second_refresh != first_refresh, || {
        "the refresh token did not rotate".into()
    })?;
    let saved = refresh_secret(&stored_token(&store).await?);
    ensure(saved.as_ref() == Some(&second_refresh), || {
        "SDK kept the old refresh token".into()
    })?;
    call_whoami(&client, p, "after an explicit refresh").await?;

    // A token the server rejects (401) makes the SDK refresh by itself and retry once.
    let mut broken = stored_token(&store).await?;
    let bad = format!("{}x-invalid", broken.access_token().secret());
    broken.set_access_token(oauth2::AccessToken::new(bad));
    let mut record = store
        .load()
        .await
        .map_err(|e| e.to_string())?
        .ok_or("no record")?;
    record.token_response = Some(broken);
    store.save(record).await.map_err(|e| e.to_string())?;
    call_whoami(&client, p, "after a 401 made the SDK refresh").await?;
    let third = refresh_secret(&stored_token(&store).await?);
    ensure(
        third.is_some() && third.as_ref() != Some(&second_refresh),
        || "the SDK did not refresh after the 401".into(),
    )?;

    // R43 (A8): the code, presented again with the verifier, is refused, and that revokes
    // what its first redemption issued: the SDK's next call finds its access token and
    // its refresh token dead, and reports that a new authorization is needed.
    let (status, error) = replay.send(p).await?;
    ensure(status == 400 && error == "invalid_grant", || {
        format!("a replayed code answered HTTP {status} {error:?}")
    })?;
    let after = call_whoami(&client, p, "after the code replay").await;
    ensure(after.is_err(), || {
        "the grant survived a replayed code (R43)".into()
    })
}

/// An authorization code redemption at `/token`, sent by hand.
struct Redemption {
    code: String,
    verifier: String,
    client_id: String,
    redirect_uri: String,
}

impl Redemption {
    /// The status and the OAuth `error` of the answer (never the token: not printed).
    async fn send(&self, p: &Published) -> Result<(u16, String), String> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", &self.code)
            .append_pair("code_verifier", &self.verifier)
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("resource", &p.resource)
            .finish();
        let req = reqwest::Client::new()
            .post(&p.token_endpoint)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        let res = step("code replay", req.send()).await?;
        let res = res.map_err(|e| format!("code replay: {e}"))?;
        let status = res.status().as_u16();
        let body = res.bytes().await.map_err(|e| format!("code replay: {e}"))?;
        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Ok((
            status,
            json["error"].as_str().unwrap_or_default().to_owned(),
        ))
    }
}

/// A2 (R35): the upstream's redirect back to the gate, forwarded to and opened in another
/// browser, which never saw the consent page and holds no binding cookie, is refused, and
/// no code goes to the client.
async fn scenario_forwarded(p: &Published) -> Check {
    let login = login(p, "approve", "E2E Rust SDK client (forwarded)", true).await?;
    let landed = &login.user.landed;
    ensure(
        via_upstream(&login.user) && landed.path() == "/callback",
        || format!("the approval did not come back from the upstream to /callback: {landed}"),
    )?;
    let (status, location) = Browser::new()?.open(landed).await?;
    ensure(status == 403 && location.is_none(), || {
        let sent = location
            .as_deref()
            .map(|l| l.split('?').next().unwrap_or(l));
        format!("another browser at the callback got HTTP {status}, redirected to {sent:?}")
    })?;
    let token = login.session.auth_manager.get_access_token().await;
    ensure(
        matches!(token, Err(AuthError::AuthorizationRequired)),
        || "the SDK holds a token".into(),
    )
}

async fn scenario_deny(p: &Published) -> Check {
    let login = login(p, "deny", "E2E Rust SDK client (deny)", false).await?;
    check_round_trip(&login, p)?;
    // docs/design.md#errors-and-redirects: a deny goes straight to the client, never upstream.
    ensure(!via_upstream(&login.user), || {
        "deny reached the upstream".into()
    })?;
    let error = login.user.param("error");
    ensure(error.as_deref() == Some("access_denied"), || {
        format!("error {error:?}")
    })?;
    ensure(login.user.param("code").is_none(), || {
        "a code after deny".into()
    })?;
    // What the SDK makes of that redirect: nothing to exchange, and no token held.
    let parsed = AuthorizationCallback::from_redirect_url(login.user.landed.as_str());
    ensure(parsed.is_err(), || {
        "SDK parsed a code out of a denial".into()
    })?;
    let token = login.session.auth_manager.get_access_token().await;
    ensure(
        matches!(token, Err(AuthError::AuthorizationRequired)),
        || format!("the SDK holds a token after deny: {token:?}"),
    )?;
    let stored = login.store.load().await.map_err(|e| e.to_string())?;
    ensure(stored.is_none(), || "credentials stored after deny".into())?;

    // A10 (R16, R17): the SDK's own authorization URL with a `redirect_uri` that merely
    // extends the registered one names another place: an error page, never a consent
    // page, never a redirect.
    let registered = login.auth_param("redirect_uri").unwrap_or_default();
    for tampered in [format!("{registered}x"), format!("{registered}/../steal")] {
        let mut url = login.auth_url.clone();
        let pairs: Vec<(String, String)> = login.auth_url.query_pairs().into_owned().collect();
        let mut query = url.query_pairs_mut();
        query.clear();
        for (k, v) in &pairs {
            query.append_pair(k, if k == "redirect_uri" { &tampered } else { v });
        }
        drop(query);
        let (status, location) = Browser::new()?.open(&url).await?;
        ensure(status >= 400 && location.is_none(), || {
            format!("redirect_uri {tampered}: HTTP {status}, Location {location:?}")
        })?;
    }
    Ok(())
}

fn server_arg() -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let flag = args
        .iter()
        .position(|a| a == "--server")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let url = flag.or_else(|| std::env::var("E2E_SERVER").ok())?;
    Some(url.trim_end_matches('/').to_owned())
}

async fn run(server: &str) -> usize {
    let p = match published(server).await {
        Ok(p) => p,
        Err(e) => {
            println!("not ok - rust sdk: server metadata: {e}");
            return 1;
        }
    };
    let approve = "approve: SDK discovers, registers, user approves, token, tools/list + whoami, \
                   refresh rotation (explicit and after a 401), a replayed code revokes the grant";
    let deny = "deny: user denies, client gets access_denied and no token; \
                a prefix-extended redirect_uri gets an error page (A10)";
    let forwarded = "forwarded: the upstream's redirect opened in another browser is refused (A2)";
    let mut failed = 0;
    let outcomes = [
        (approve, scenario_approve(&p).await),
        (deny, scenario_deny(&p).await),
        (forwarded, scenario_forwarded(&p).await),
    ];
    let total = outcomes.len();
    for (name, outcome) in outcomes {
        match outcome {
            Ok(()) => println!("ok - rust sdk {name}"),
            Err(e) => {
                failed += 1;
                println!("not ok - rust sdk {name}\n  {}", e.replace('\n', "\n  "));
            }
        }
    }
    println!("rust summary: {} ok, {failed} not ok", total - failed);
    failed
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let Some(server) = server_arg() else {
        eprintln!("usage: consent-gate-e2e-rust --server http://127.0.0.1:PORT");
        std::process::exit(1);
    };
    match tokio::time::timeout(GLOBAL_TIMEOUT, run(&server)).await {
        Ok(0) => {}
        Ok(_) => std::process::exit(1),
        Err(_) => {
            println!("not ok - rust sdk: global timeout after {GLOBAL_TIMEOUT:?}");
            std::process::exit(2);
        }
    }
}
