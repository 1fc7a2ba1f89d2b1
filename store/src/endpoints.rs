//! The store side of every OAuth endpoint, written once for every host: each method reads
//! and takes what its step needs in the order that is the security, calls the gate, logs
//! the security events, and returns the [`Step`] to apply. A host parses HTTP, calls one
//! method, applies the step and sends its reply (docs/design.md#hosts).
//!
//! The order inside each method is the security (docs/design.md#store-contract):
//! single-use records are *taken* before anything else happens with them and before any
//! call to the upstream; a replayed code or a reused refresh token gets a refusal whose
//! step deletes the grant, so that the grant is gone before the error is sent.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use consent_gate::InstallationRevocation;
use consent_gate::RefreshRecord;
use consent_gate::{Authorization, AuthorizationDetails, AuthorizeRequest, BearerError};
use consent_gate::{BrowserContext, Callback, ClientRecord, ConsentForm, Decision, Gate};
use consent_gate::{GrantLookup, GrantRecord, HttpRequest, Language, PendingConsent, Principal};
use consent_gate::{Op, UnixTime, UpstreamResponse, is_metadata_document_url};
use consent_gate::{RevocationRequest, Step, TokenError, TokenRequest, TransactionRecord};
use consent_gate::{StoreKey, UpstreamError, UpstreamRefreshError};
use tracing::{info, warn};

use crate::contract::{Store, StoreError};
use crate::host::Executor;

/// What came back from the upstream for a request of the core, owned.
#[derive(Clone, Debug, Default)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type` header, if it was visible ASCII.
    pub content_type: Option<String>,
    /// The body, at most the core's `MAX_UPSTREAM_BODY`.
    pub body: Vec<u8>,
}

impl Answer {
    /// The answer as the core reads it.
    pub fn as_upstream(&self) -> UpstreamResponse<'_> {
        UpstreamResponse {
            status: self.status,
            content_type: self.content_type.as_deref(),
            body: &self.body,
        }
    }
}

/// A Client ID Metadata Document as the host fetched it.
#[derive(Clone, Debug, Default)]
pub struct FetchedDocument {
    /// The body.
    pub body: Vec<u8>,
    /// The `Cache-Control` header, for how long the document stands (R57).
    pub cache_control: Option<String>,
}

/// The future a [`DocumentSource`] returns: the document, or why there is none (for the
/// log).
pub type Fetching<'a> =
    std::pin::Pin<Box<dyn Future<Output = Result<FetchedDocument, String>> + Send + 'a>>;

/// Where [`Endpoints`] gets Client ID Metadata Documents: the host's fetcher, under its
/// SSRF policy (R58). `consent-gate-axum`'s `DocumentFetcher` is one.
pub trait DocumentSource: Send + Sync {
    /// Fetches the document at `url` (a client id that is a document URL).
    fn fetch<'a>(&'a self, url: &'a str) -> Fetching<'a>;
}

/// A step, or the store failure that stopped it (the host answers `503`, or `429` for a
/// full store, R64).
pub type Stepped = Result<Step, StoreError>;

/// The gate, the store and the randomness every endpoint needs. Cheap to share behind an
/// `Arc`.
pub struct Endpoints {
    gate: Arc<Gate>,
    exec: Executor,
    entropy: fn(&mut [u8]),
    documents: Option<Arc<dyn DocumentSource>>,
    renewals: Renewals,
}

/// One lock per grant whose upstream token is being renewed (R66): a provider that rotates
/// refresh tokens (a GitHub App) refuses a second use of one with `invalid_grant`, which
/// would end the grant, so two requests of one grant must not both send the refresh. The
/// map holds only grants with a renewal in flight or waiting (an entry dies with its last
/// holder), so it is bounded by the requests in flight. In-process: replicas sharing a
/// store may each renew once, which the core tolerates (a refusal of a refresh token the
/// grant no longer holds does not end the grant, and every sealing has its own key).
#[derive(Default)]
struct Renewals(Mutex<HashMap<StoreKey, Weak<tokio::sync::Mutex<()>>>>);

impl Renewals {
    /// The lock of `grant`, shared with every request renewing it now.
    fn of(&self, grant: &StoreKey) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, lock| lock.strong_count() > 0);
        if let Some(lock) = map.get(grant).and_then(Weak::upgrade) {
            return lock;
        }
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        map.insert(*grant, Arc::downgrade(&lock));
        lock
    }
}

impl Endpoints {
    /// Endpoints for `gate` over `store`, with `entropy` as the source of every handle
    /// (the OS generator in a server).
    pub fn new(gate: Gate, store: Arc<dyn Store>, entropy: fn(&mut [u8])) -> Self {
        let exec = Executor::new(store);
        Endpoints {
            gate: Arc::new(gate),
            exec,
            entropy,
            documents: None,
            renewals: Renewals::default(),
        }
    }

    /// Fetches Client ID Metadata Documents from `source` when the gate accepts them
    /// (`ConfigBuilder::client_metadata_documents`, R57).
    pub fn with_documents(mut self, source: Arc<dyn DocumentSource>) -> Self {
        self.documents = Some(source);
        self
    }

    /// The client `client_id` names: its registration, or its metadata document, stored
    /// until then or fetched now and validated (its `put` joins `ops`). A document that
    /// cannot be fetched or is refused makes the client unknown, and is a security event.
    async fn client(
        &self,
        client_id: &str,
        key: &consent_gate::StoreKey,
        now: UnixTime,
        ops: &mut Vec<Op>,
    ) -> Result<Option<Arc<ClientRecord>>, StoreError> {
        if let Some(client) = self.exec.client(key, now).await? {
            return Ok(Some(client));
        }
        let source = self.documents.as_ref().filter(|_| {
            self.gate.config().metadata_documents() && is_metadata_document_url(client_id)
        });
        let Some(source) = source else {
            return Ok(None);
        };
        let fetched = source.fetch(client_id).await;
        let accepted = fetched.and_then(|doc| {
            let cache = doc.cache_control.as_deref();
            let accepted = self
                .gate
                .accept_metadata_document(client_id, &doc.body, cache, now);
            accepted.map_err(|e| e.to_string())
        });
        match accepted {
            Ok(record) => {
                info!(event = "metadata_document_accepted", client_id = %short(client_id));
                ops.push(Op::put(&record));
                Ok(Some(Arc::new(record)))
            }
            Err(reason) => {
                let client_id = short(client_id);
                warn!(security = true, event = "metadata_document_refused", %client_id, reason);
                Ok(None)
            }
        }
    }

    /// The gate.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// The executor (and through it the store).
    pub fn executor(&self) -> &Executor {
        &self.exec
    }

    /// Applies a step's operations, then hands back its reply.
    pub async fn apply(
        &self,
        step: Step,
        now: UnixTime,
    ) -> Result<consent_gate::Reply, StoreError> {
        self.exec.apply(step, now).await
    }

    /// `POST /register` (RFC 7591).
    pub async fn register(&self, body: &[u8], now: UnixTime) -> Stepped {
        let registered = match self.gate.register(body, now, &mut self.entropy.clone()) {
            Ok(registered) => registered,
            Err(e) => return Ok(refused(e)),
        };
        let client = &registered.record;
        let hosts: Vec<_> = client.redirect_uris().iter().map(|u| u.host()).collect();
        let redirect_hosts = short(&hosts.join(" ")).into_owned();
        info!(event = "client_registered", client_id = %short(client.client_id()), %redirect_hosts);
        Ok(registered.into())
    }

    /// `GET /authorize`: the consent page in the language `Accept-Language` prefers
    /// (R69), or an error page (never a redirect, R16).
    pub async fn authorize(
        &self,
        query: &[u8],
        browser: BrowserContext<'_>,
        accept_language: Option<&str>,
        now: UnixTime,
    ) -> Stepped {
        let request = match AuthorizeRequest::parse(query) {
            Ok(request) => request,
            Err(e) => return Ok(refused(e)),
        };
        let (key, mut ops) = (request.client_key(), Vec::new());
        let client = self
            .client(request.client_id(), &key, now, &mut ops)
            .await?;
        let entropy = &mut self.entropy.clone();
        let client = client.as_deref();
        let step = match self.gate.authorize(request, client, browser, now, entropy) {
            Ok(Authorization::NeedsConsent(prompt)) => {
                log("consent_shown", Some(prompt.pending_record().details()));
                Ok(prompt
                    .in_language(Language::negotiate(accept_language))
                    .into())
            }
            // Only with a remembering consent policy: an approval for exactly this
            // client, redirect URI, scope and resource (R31), spent on the 303 upstream.
            Ok(Authorization::Remembered(yes)) => {
                Ok(self.gate.upstream_redirect(yes, now, entropy).into())
            }
            Err(e) => Ok(refused(e)),
        };
        step.map(|step| after(ops, step))
    }

    /// `POST /authorize`: the consent decision (the host checks the form's content type).
    pub async fn decide(&self, form: &[u8], browser: BrowserContext<'_>, now: UnixTime) -> Stepped {
        let form = match ConsentForm::parse(form) {
            Ok(form) => form,
            Err(e) => return Ok(refused(e)),
        };
        let form_key = form.pending_key();
        // Taken, not read: a second submission of the same page finds nothing (R36). The
        // approved transaction is written with the take, in one commit where the store
        // can: the step's ops are applied here, and the step returned only replies.
        let (gate, mut entropy) = (self.gate.clone(), self.entropy);
        let cookies = browser.cookies.to_owned();
        let origin = browser.origin.map(str::to_owned);
        let sec_fetch_site = browser.sec_fetch_site.map(str::to_owned);
        let decided = move |pending: Option<PendingConsent>| {
            let browser = BrowserContext {
                cookies: &cookies,
                origin: origin.as_deref(),
                sec_fetch_site: sec_fetch_site.as_deref(),
            };
            let about = pending.as_ref().map(|p| who(p.details()));
            let step = match gate.decide(form, pending, browser, now) {
                Ok(Decision::Approved(yes)) => {
                    log_about("consent_approved", about);
                    gate.upstream_redirect(yes, now, &mut entropy).into()
                }
                Ok(Decision::Denied(to_client)) => {
                    log_about("consent_denied", about);
                    to_client.into()
                }
                Err(e) => refused(e),
            };
            (step, ())
        };
        let (reply, ()) = self.exec.take_then(&form_key, now, decided).await?;
        Ok(Step {
            ops: Vec::new(),
            reply,
        })
    }

    /// `GET` on the callback: the upstream sends the browser back; `send` carries the
    /// core's two back-channel requests (`None`: the upstream could not be reached).
    pub async fn callback<F, Sent>(
        &self,
        query: &[u8],
        browser: BrowserContext<'_>,
        now: UnixTime,
        send: F,
    ) -> Stepped
    where
        F: Fn(HttpRequest) -> Sent,
        Sent: Future<Output = Option<Answer>>,
    {
        let callback = match Callback::parse(query) {
            Ok(callback) => callback,
            Err(e) => return Ok(refused(e)),
        };
        // Taken BEFORE the upstream call, so a replayed `state` finds nothing (A7).
        let txn: Option<TransactionRecord> =
            self.exec.take(&callback.transaction_key(), now).await?;
        let verified = match self.gate.verify_callback(callback, txn, browser, now) {
            Ok(verified) => verified,
            Err(e) => return Ok(refused(e)),
        };
        // Only with the A7 fault on (builds with `--cfg consent_gate_faults`): the
        // transaction goes back into the store, so that the checkers see the replay work.
        #[cfg(consent_gate_faults)]
        if let Some(txn) = verified.reinsert() {
            let ops = vec![consent_gate::Op::put(txn)];
            let reply = consent_gate::Reply::text(204, "");
            let _nothing_to_send = self.exec.apply(Step { ops, reply }, now).await?;
        }
        let Some(tokens) = send(verified.token_request().clone()).await else {
            return Ok(verified.upstream_unreachable().into());
        };
        let authenticated = match verified.accept_token_response(tokens.as_upstream()) {
            Ok(authenticated) => authenticated,
            Err(e) => return Ok(refused(e)),
        };
        let Some(user) = send(authenticated.user_request()).await else {
            return Ok(authenticated.upstream_unreachable().into());
        };
        // From the store, not the registration cache: the redirect URI is checked against
        // the live registration (R38).
        let client: Option<ClientRecord> = self.exec.get(&authenticated.client_key(), now).await?;
        let about = who(authenticated.details());
        let entropy = &mut self.entropy.clone();
        let user = user.as_upstream();
        match self
            .gate
            .issue_code(authenticated, user, client.as_ref(), now, entropy)
        {
            Ok(issued) => {
                log_about("code_issued", Some(about));
                Ok(issued.into())
            }
            Err(e) => Ok(refused(e)),
        }
    }

    /// `POST /token`: the code and refresh grants. A replayed code or a reused refresh
    /// token: the refusal's step deletes the grant before the error is sent, so every
    /// token of it is dead by then (R43, R53).
    pub async fn token(&self, body: &[u8], authorization: Option<&str>, now: UnixTime) -> Stepped {
        let request = match TokenRequest::parse(body, authorization) {
            Ok(request) => request,
            Err(e) => return Ok(refused(e)),
        };
        let (key, mut ops) = (request.client_key(), Vec::new());
        let client = self
            .client(request.client_id(), &key, now, &mut ops)
            .await?;
        if request.is_code_grant() {
            // Taken: two concurrent redemptions cannot both see an unredeemed code (A8).
            // The grant is written with the take, in one commit where the store can: the
            // step's ops are applied here, and the step returned only replies.
            let (gate, mut entropy) = (self.gate.clone(), self.entropy);
            let code_key = request.record_key();
            let redeemed = move |code| {
                let issued = gate.redeem_code(&request, code, client.as_deref(), now, &mut entropy);
                (tokens_step(&request, issued, ops), ())
            };
            let (reply, ()) = self.exec.take_then(&code_key, now, redeemed).await?;
            return Ok(Step {
                ops: Vec::new(),
                reply,
            });
        }
        // Got, not taken: the core decides about rotation and says what to write.
        let refresh: Option<RefreshRecord> = self.exec.get(&request.record_key(), now).await?;
        let (grant, mark) = match &refresh {
            Some(refresh) => self.grant(&refresh.grant_key(), now).await?,
            None => (None, None),
        };
        let client = client.as_deref();
        let lookup = GrantLookup::with_installation(grant.as_ref(), mark.as_ref());
        let issued = self
            .gate
            .redeem_refresh(&request, refresh, lookup, client, now);
        Ok(tokens_step(&request, issued, ops))
    }

    /// `POST /revoke` (RFC 7009): a client revokes one of its tokens, and with it the
    /// grant, deleted before the reply (the client may rely on "200 means gone"). Where
    /// the upstream has a revocation endpoint, its tokens in the grant are revoked there
    /// too through `send`, after our grant is deleted (that step is then applied here, and
    /// the one returned only replies), whatever the upstream answers (R66).
    pub async fn revoke<F, Sent>(
        &self,
        body: &[u8],
        authorization: Option<&str>,
        now: UnixTime,
        send: F,
    ) -> Stepped
    where
        F: Fn(HttpRequest) -> Sent,
        Sent: Future<Output = Option<Answer>>,
    {
        let request = match RevocationRequest::parse(body, authorization) {
            Ok(request) => request,
            Err(e) => return Ok(refused(e)),
        };
        let (key, mut ops) = (request.client_key(), Vec::new());
        let client = self
            .client(request.client_id(), &key, now, &mut ops)
            .await?;
        // Got, not taken: an unknown or foreign token must change nothing (RFC 7009 §2.2).
        let refresh: Option<RefreshRecord> = self.exec.get(&request.refresh_key(), now).await?;
        let (client, refresh) = (client.as_deref(), refresh.as_ref());
        match self.gate.revoke(&request, client, refresh, now) {
            Ok(revocation) => {
                let Some(key) = revocation.revoke_grant else {
                    return Ok(after(ops, revocation.into()));
                };
                let client_id = client.map(|c| short(c.client_id()).into_owned());
                info!(security = true, event = "grant_revoked", client_id);
                // Read before it is deleted: it holds the upstream's tokens.
                let grant: Option<GrantRecord> = self.exec.get(&key, now).await?;
                let gate = &self.gate;
                let upstream = gate.upstream_revocation_request(
                    &request,
                    client,
                    refresh,
                    grant.as_ref(),
                    now,
                );
                let step = after(ops, revocation.into());
                let Some(upstream) = upstream else {
                    return Ok(step);
                };
                let reply = self.exec.apply(step, now).await?;
                let answer = send(upstream).await;
                if answer.is_none_or(|a| a.status != 200) {
                    warn!(event = "upstream_revocation_failed");
                }
                Ok(Step::reply(reply))
            }
            Err(e) => Ok(after(ops, refused(e))),
        }
    }

    /// The grant under `key` and, for a metadata-document client's grant, the revocation
    /// mark of its installation (R59), read after it: one read for other grants.
    async fn grant(
        &self,
        key: &StoreKey,
        now: UnixTime,
    ) -> Result<(Option<GrantRecord>, Option<InstallationRevocation>), StoreError> {
        let grant: Option<GrantRecord> = self.exec.get(key, now).await?;
        let mark = match grant.as_ref().and_then(GrantRecord::installation_key) {
            Some(installation) => self.exec.get(&installation, now).await?,
            None => None,
        };
        Ok((grant, mark))
    }

    /// Revokes one user's installation of a metadata-document client (R59,
    /// [`Gate::revoke_installation`]): every grant of the upstream user `subject` for
    /// `client_id` through the registered `redirect_uri` approved until now stops
    /// working; the user's other installations, and other users, keep theirs. An
    /// operator's action: no client asks for it over HTTP.
    pub async fn revoke_installation(
        &self,
        subject: &str,
        client_id: &str,
        redirect_uri: &str,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        let step = self
            .gate
            .revoke_installation(subject, client_id, redirect_uri, now);
        let _done = self.exec.apply(step, now).await?;
        info!(event = "installation_revoked", client_id = %short(client_id));
        Ok(())
    }

    /// The bearer check of a protected request: the token, its grant, and the two
    /// together (a replayed code or a reused refresh token deleted the grant, and with it
    /// every token it issued, R43, R53). When the grant's upstream token expires within a
    /// minute (or has expired) and the upstream gave a refresh token, it is renewed first
    /// through `send`, once per grant at a time (R66); an upstream that refuses ends the
    /// grant, one that cannot be reached leaves the request the upstream token while it is
    /// valid. A refusal with an OAuth error is logged as a security event; answer it with
    /// [`Gate::unauthorized`].
    pub async fn bearer<F, Sent>(
        &self,
        authorization: Option<&str>,
        now: UnixTime,
        send: F,
    ) -> Result<Result<Principal, BearerError>, StoreError>
    where
        F: Fn(HttpRequest) -> Sent,
        Sent: Future<Output = Option<Answer>>,
    {
        let claims = self.gate.verify_bearer(authorization, now);
        let (grant, mark) = match &claims {
            Ok(claims) => self.grant(&claims.grant_key(), now).await?,
            Err(_) => (None, None),
        };
        let lookup = GrantLookup::with_installation(grant.as_ref(), mark.as_ref());
        let principal = claims.and_then(|c| c.confirm_refreshable(lookup, now));
        let principal = match principal {
            Ok(p) if p.upstream_refresh_due(now) => self.renew(authorization, p, now, send).await?,
            other => other,
        };
        if let Err(e) = &principal {
            if e.oauth_error().is_some() {
                warn!(security = true, event = %variant(e), reason = %e);
            }
        }
        Ok(principal)
    }

    /// Renews `principal`'s upstream token, single-flight per grant (R66): under the
    /// grant's lock the grant is read and confirmed again, and a request that waited
    /// while another renewed finds the renewal done and sends nothing.
    async fn renew<F, Sent>(
        &self,
        authorization: Option<&str>,
        principal: Principal,
        now: UnixTime,
        send: F,
    ) -> Result<Result<Principal, BearerError>, StoreError>
    where
        F: Fn(HttpRequest) -> Sent,
        Sent: Future<Output = Option<Answer>>,
    {
        let lock = self.renewals.of(principal.grant_key());
        let _renewing = lock.lock().await;
        let (grant, mark) = self.grant(principal.grant_key(), now).await?;
        let again = self.gate.verify_bearer(authorization, now);
        let lookup = GrantLookup::with_installation(grant.as_ref(), mark.as_ref());
        let principal = match again.and_then(|c| c.confirm_refreshable(lookup, now)) {
            Ok(p) if p.upstream_refresh_due(now) => p,
            done => return Ok(done),
        };
        let Some(request) = self.gate.upstream_refresh_request(&principal) else {
            return Ok(Err(BearerError::UpstreamExpired));
        };
        let accepted = match send(request).await {
            Some(answer) => self.gate.accept_upstream_refresh(
                &principal,
                grant.as_ref(),
                answer.as_upstream(),
                now,
                &mut self.entropy.clone(),
            ),
            None => Err(UpstreamRefreshError::Unavailable(
                UpstreamError::Unreachable,
            )),
        };
        match accepted {
            Ok((renewed, step)) => {
                let _nothing_to_send = self.exec.apply(step, now).await?;
                info!(event = "upstream_token_renewed", client_id = %short(renewed.client_id()));
                Ok(Ok(renewed))
            }
            Err(e) => {
                // The grant's deletion when the upstream refused; its 401 is the caller's.
                let _unauthorized = self
                    .exec
                    .apply(self.gate.upstream_refresh_failed(&e), now)
                    .await?;
                let client_id = short(principal.client_id()).into_owned();
                warn!(security = true, event = %variant(&e), reason = %e, client_id);
                match e {
                    UpstreamRefreshError::Unavailable(_) if principal.upstream_valid(now) => {
                        Ok(Ok(principal))
                    }
                    e => Ok(Err(e.bearer_error())),
                }
            }
        }
    }
}

/// The token endpoint's step: the grant, the refresh records, the redeemed code; the
/// successor of a rotated refresh token only where none is (R63, A22); for a replayed
/// code or a reused refresh token, the grant's deletion, logged as a security event.
/// `ops` (a fetched metadata document's client) go first.
fn tokens_step(
    request: &TokenRequest,
    issued: Result<consent_gate::TokensIssued, TokenError>,
    ops: Vec<Op>,
) -> Step {
    let event = match &issued {
        Err(TokenError::CodeReused { .. }) => Some("code_replay_grant_revoked"),
        Err(TokenError::RefreshReused { .. }) => Some("refresh_reuse_grant_revoked"),
        _ => None,
    };
    if let Some(event) = event {
        warn!(security = true, event, client_id = %short(request.client_id()));
    }
    after(ops, issued.map_or_else(refused, Step::from))
}

/// `step` with `ops` (a fetched metadata document's client) applied first.
fn after(mut ops: Vec<Op>, step: Step) -> Step {
    ops.extend(step.ops);
    Step { ops, ..step }
}

/// A refusal of the core as its step (its reply, and for a replay the grant's deletion),
/// logged as a security event named after its variant.
fn refused<E>(e: E) -> Step
where
    E: std::fmt::Debug + std::fmt::Display + Into<Step>,
{
    warn!(security = true, event = %variant(&e), reason = %e);
    e.into()
}

/// An error's variant in snake case (`BindingMismatch`: `binding_mismatch`). Only the
/// name: a variant's fields may carry attacker text.
pub fn variant(e: &impl std::fmt::Debug) -> String {
    let (debug, mut event) = (format!("{e:?}"), String::new());
    for (i, c) in debug
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .enumerate()
    {
        event.extend((i > 0 && c.is_uppercase()).then_some('_'));
        event.push(c.to_ascii_lowercase());
    }
    event
}

/// Attacker-controlled text cut to at most 96 printable characters, for the logs.
pub fn short(s: &str) -> std::borrow::Cow<'_, str> {
    match s.len() <= 96 && !s.chars().any(char::is_control) {
        true => std::borrow::Cow::Borrowed(s),
        false => s.chars().filter(|c| !c.is_control()).take(96).collect(),
    }
}

/// Who an authorization is about, for the log: its client id and redirect host.
fn who(d: &AuthorizationDetails) -> [String; 2] {
    [
        short(d.client_id()).into(),
        short(d.redirect_uri().host()).into(),
    ]
}

fn log(event: &'static str, details: Option<&AuthorizationDetails>) {
    log_about(event, details.map(who));
}

/// An event about one authorization; every one but the page shown is a security event.
fn log_about(event: &'static str, who: Option<[String; 2]>) {
    let [client_id, redirect_host] = who.unwrap_or_default();
    info!(
        security = event != "consent_shown",
        event, client_id, redirect_host
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_fields_are_short_printable_and_never_a_variants_fields() {
        assert_eq!(short("app.example"), "app.example");
        let long = "a\u{7}b".repeat(100);
        let cut = short(&long);
        assert_eq!(cut.chars().count(), 96);
        assert!(!cut.chars().any(char::is_control));
        #[derive(Debug)]
        #[allow(dead_code)]
        enum E {
            BindingMismatch { attacker: String },
        }
        let e = E::BindingMismatch {
            attacker: "<script>".into(),
        };
        assert_eq!(variant(&e), "binding_mismatch");
    }
}
