//! `Endpoints::bearer` renews an expiring upstream token (R66) single-flight per grant:
//! many concurrent requests of one grant send one refresh to the upstream, and all of them
//! go on with the new token. The gate, the sign-in and the upstream double are the
//! simulation kit's; the store is the memory backend; the requests run on a multi-threaded
//! runtime, each answer of the double delayed so that they overlap.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use consent_gate::UnixTime;
use consent_gate::{BearerError, ClientRecord, GrantRecord, HttpRequest, Op, RefreshRecord};
use consent_gate::{Reply, Step};
use consent_gate_spec::kit::{FakeGithub, GateSetup, Host, Tokens, VICTIM};
use consent_gate_store::{Answer, Endpoints, MemoryStore};

/// A different 8-byte pattern on every call: the salts of the renewals.
fn entropy(buf: &mut [u8]) {
    static N: AtomicU64 = AtomicU64::new(1);
    let n = N.fetch_add(1, Ordering::Relaxed).to_be_bytes();
    for (i, b) in buf.iter_mut().enumerate() {
        *b = n[i % 8] ^ (i as u8);
    }
}

/// A signed-in user whose GitHub App token (one-time refresh tokens) expires in 600 s,
/// with the kit's grant copied into `Endpoints` over a memory store, and the double behind
/// a lock for the `send` closures. Returns the endpoints, the double, the access token and
/// the time the token expires.
async fn signed_in() -> (Arc<Endpoints>, Arc<Mutex<FakeGithub>>, String, UnixTime) {
    let (endpoints, github, tokens, _, expires) = signed_in_with(false).await;
    (endpoints, github, tokens.access().to_owned(), expires)
}

/// [`signed_in`] with the double in Google's shapes (`openid`), with the client's tokens
/// and the client id, its registration and refresh records copied too.
async fn signed_in_with(
    openid: bool,
) -> (
    Arc<Endpoints>,
    Arc<Mutex<FakeGithub>>,
    Tokens,
    String,
    UnixTime,
) {
    let mut host = Host::with(GateSetup {
        openid,
        ..GateSetup::default()
    });
    host.github.token_lifetime = Some(600);
    host.github.refresh_tokens = true;
    let client = host.register_public("Acme Agent", "http://127.0.0.1:9/cb");
    let mut browser = host.browser(VICTIM);
    let app = consent_gate_spec::kit::App::new(&client, "acme");
    let tokens = host.login(&mut browser, &app);
    let endpoints = Endpoints::new(host.gate.clone(), Arc::new(MemoryStore::new()), entropy);
    let grants = host.store.all::<GrantRecord>();
    assert_eq!(grants.len(), 1);
    let mut ops: Vec<Op> = grants.iter().map(Op::put).collect();
    ops.extend(host.store.all::<ClientRecord>().iter().map(Op::put));
    ops.extend(host.store.all::<RefreshRecord>().iter().map(Op::put));
    let step = Step {
        ops,
        reply: Reply::text(204, ""),
    };
    let _stored = endpoints.apply(step, host.now).await.expect("stored");
    let expires = host.now.plus(600);
    let github = Arc::new(Mutex::new(host.github.clone()));
    let client_id = client.id.clone();
    (Arc::new(endpoints), github, tokens, client_id, expires)
}

/// The back channel to the double, slow enough that concurrent requests overlap;
/// `None` (unreachable) when `reachable` is false.
async fn send(github: Arc<Mutex<FakeGithub>>, r: HttpRequest, reachable: bool) -> Option<Answer> {
    tokio::time::sleep(Duration::from_millis(20)).await;
    if !reachable {
        return None;
    }
    let mut github = github.lock().unwrap();
    let revocation = [&github.revocation_endpoint, &github.token_deletion_endpoint];
    let answer = if revocation.contains(&&r.url) {
        github.revoke(&r)
    } else {
        github.token(&r)
    };
    Some(Answer {
        status: answer.status,
        content_type: Some(answer.content_type.to_owned()),
        body: answer.body,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_bearer_requests_renew_the_upstream_token_once_r66() {
    let (endpoints, github, access, expires) = signed_in().await;
    let header = format!("Bearer {access}");
    let now = expires.plus(5);
    let mut requests = Vec::new();
    for _ in 0..16 {
        let (endpoints, github, header) = (endpoints.clone(), github.clone(), header.clone());
        requests.push(tokio::spawn(async move {
            let send = |r: HttpRequest| send(github.clone(), r, true);
            endpoints.bearer(Some(&header), now, send).await
        }));
    }
    let mut upstream_tokens = Vec::new();
    for request in requests {
        let principal = request
            .await
            .unwrap()
            .expect("the store")
            .expect("admitted");
        upstream_tokens.push(
            principal
                .upstream_token()
                .expect("renewed")
                .secret()
                .to_owned(),
        );
    }
    // One refresh reached the upstream: its refresh token is one-time, so a second would
    // have been refused and ended the grant.
    assert_eq!(github.lock().unwrap().refresh_hits, 1);
    upstream_tokens.dedup();
    assert_eq!(
        upstream_tokens.len(),
        1,
        "every request has the one new token"
    );
    // Later requests read the renewed grant and send nothing.
    let send = |r: HttpRequest| send(github.clone(), r, true);
    let p = endpoints
        .bearer(Some(&header), now.plus(60), send)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.upstream_token().unwrap().secret(), upstream_tokens[0]);
    assert_eq!(github.lock().unwrap().refresh_hits, 1);
}

#[tokio::test]
async fn an_unreachable_upstream_serves_until_expiry_then_401_and_a_refusal_ends_the_grant_r66() {
    let (endpoints, github, access, expires) = signed_in().await;
    let header = format!("Bearer {access}");
    let unreachable = |r: HttpRequest| send(github.clone(), r, false);
    // Due, not yet expired: the request goes on with the token it has.
    let due = UnixTime(expires.0 - 30);
    let p = endpoints.bearer(Some(&header), due, unreachable).await;
    let p = p.unwrap().expect("served while valid");
    assert!(p.upstream_token().is_some());
    // Expired: a 401, and the grant stays for a later try.
    let expired = endpoints
        .bearer(Some(&header), expires, unreachable)
        .await
        .unwrap();
    assert_eq!(expired.err(), Some(BearerError::UpstreamExpired));
    // The upstream refuses (the user revoked the app there): the grant is deleted.
    github.lock().unwrap().fail_next_refresh = Some("invalid_grant");
    let reachable = |r: HttpRequest| send(github.clone(), r, true);
    let refused = endpoints
        .bearer(Some(&header), expires, reachable)
        .await
        .unwrap();
    assert_eq!(refused.err(), Some(BearerError::Revoked));
    let grant = endpoints
        .executor()
        .get::<GrantRecord>(p.grant_key(), expires)
        .await;
    assert_eq!(grant.unwrap(), None, "the grant is gone");
    let again = endpoints
        .bearer(Some(&header), expires, reachable)
        .await
        .unwrap();
    assert_eq!(again.err(), Some(BearerError::Revoked));
    assert_eq!(
        github.lock().unwrap().refresh_hits,
        1,
        "unreachable twice, refused once"
    );
}

#[tokio::test]
async fn revoking_our_grant_revokes_the_upstream_grant_after_deleting_ours_r66() {
    let (endpoints, github, tokens, client_id, expires) = signed_in_with(true).await;
    let header = format!("Bearer {}", tokens.access());
    let now = UnixTime(expires.0 - 500);
    let send = |r: HttpRequest| send(github.clone(), r, true);
    let p = endpoints
        .bearer(Some(&header), now, send)
        .await
        .unwrap()
        .unwrap();
    let upstream = p.upstream_token().unwrap().secret().to_owned();
    assert!(github.lock().unwrap().is_live(&upstream));
    let body = format!("token={}&client_id={client_id}", tokens.refresh().unwrap());
    let step = endpoints
        .revoke(body.as_bytes(), None, now, send)
        .await
        .unwrap();
    // Applied already: the step left only replies.
    assert!(step.ops.is_empty());
    assert_eq!(step.reply.status, 200);
    assert_eq!(github.lock().unwrap().revocation_hits, 1);
    assert!(
        !github.lock().unwrap().is_live(&upstream),
        "revoked upstream"
    );
    let gone = endpoints.bearer(Some(&header), now, send).await.unwrap();
    assert_eq!(gone.err(), Some(BearerError::Revoked));
}
