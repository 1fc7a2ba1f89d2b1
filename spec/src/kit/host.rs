//! The MCP server as the integration tests drive it: the [`Gate`] behind one method per
//! endpoint, in the order a real host calls it (parse → look up or *take* → the step → the
//! one executor, [`Store::apply`]), with a controllable clock, the kit's entropy and the
//! [`FakeGithub`] it talks to (docs/design.md#sans-io, docs/design.md#store-contract).
//!
//! Nothing here decides anything the core should decide: every answer comes from the gate,
//! and every store write is an `Op` the core returned.

use consent_gate::{
    Authorization, AuthorizeError, AuthorizeRequest, BearerError, Callback, CallbackError,
    ClientRecord, CodeRecord, ConsentError, ConsentForm, ConsentGiven, Decision, Gate, GrantLookup,
    GrantRecord, PendingConsent, Principal, RefreshRecord, RegistrationError, Reply,
    RevocationRequest, TokenAuthMethod, TokenError, TokenRequest, TransactionRecord, UnixTime,
    UpstreamRefreshError,
};

use super::browser::{Browser, Nav};
use super::client::{App, Client, ConsentFields};
use super::gate::{GateSetup, T0};
use super::github::{FakeGithub, GithubUser, VICTIM};
use super::location;
use super::store::Store;
use crate::entropy::SplitMix64;

/// Tokens from the token endpoint.
#[derive(Clone, Debug)]
pub struct Tokens {
    /// The reply as sent.
    pub reply: Reply,
    /// Its JSON body.
    pub json: serde_json::Value,
}

impl Tokens {
    /// The access token.
    pub fn access(&self) -> &str {
        self.json["access_token"].as_str().expect("access_token")
    }
    /// The refresh token, if one was issued.
    pub fn refresh(&self) -> Option<&str> {
        self.json["refresh_token"].as_str()
    }
}

/// A loopback host with one registered public client (refresh allowed), the victim's
/// browser, and an app of that client.
pub fn app_host() -> (Host, Browser, App) {
    let mut host = Host::new();
    let client = host.register_public("Acme Agent", "http://127.0.0.1:9/cb");
    let browser = host.browser(VICTIM);
    let app = App::new(&client, "acme");
    (host, browser, app)
}

/// The MCP server: a gate, its store, a clock, entropy, and the upstream it talks to.
#[derive(Debug)]
pub struct Host {
    /// The gate under test.
    pub gate: Gate,
    /// The store.
    pub store: Store,
    /// The upstream.
    pub github: FakeGithub,
    /// The clock.
    pub now: UnixTime,
    /// The entropy.
    pub entropy: SplitMix64,
}

impl Host {
    /// The loopback development host with the default policy.
    pub fn new() -> Self {
        Self::with(GateSetup::default())
    }

    /// A host for `setup`.
    pub fn with(setup: GateSetup) -> Self {
        let (gate, github) = setup.build();
        assert_eq!(gate.config().callback_uri(), github.callback());
        Self {
            gate,
            store: Store::default(),
            github,
            now: T0,
            entropy: SplitMix64(0),
        }
    }

    /// Our issuer.
    pub fn issuer(&self) -> String {
        self.gate.config().issuer().to_owned()
    }

    /// Lets time pass.
    pub fn advance(&mut self, seconds: u64) {
        self.now = self.now.plus(seconds);
    }

    /// A fresh browser signed in to GitHub as `user`.
    pub fn browser(&self, user: GithubUser) -> Browser {
        Browser::new(&self.issuer(), user)
    }

    // --- POST /register -------------------------------------------------------------

    /// `POST /register` with a JSON body: stores the record, returns the owner's view.
    pub fn register(&mut self, json: &str) -> Result<(Client, Reply), RegistrationError> {
        let reg = self
            .gate
            .register(json.as_bytes(), self.now, &mut self.entropy)?;
        let v: serde_json::Value = serde_json::from_slice(&reg.reply.body).expect("JSON");
        let client = Client {
            id: reg.record.client_id().to_owned(),
            secret: v["client_secret"].as_str().map(str::to_owned),
            auth: match reg.record.auth_method() {
                TokenAuthMethod::None => "none",
                TokenAuthMethod::ClientSecretPost => "client_secret_post",
                TokenAuthMethod::ClientSecretBasic => "client_secret_basic",
            },
            redirect_uri: reg.record.redirect_uris()[0].as_str().to_owned(),
        };
        let reply = self.store.apply(reg);
        Ok((client, reply))
    }

    /// Registers a client with one redirect URI, `auth` method, and the refresh grant.
    pub fn register_client(&mut self, name: &str, redirect_uri: &str, auth: &str) -> Client {
        let body = serde_json::json!({
            "client_name": name,
            "redirect_uris": [redirect_uri],
            "token_endpoint_auth_method": auth,
            "grant_types": ["authorization_code", "refresh_token"],
        });
        self.register(&body.to_string()).expect("registration").0
    }

    /// Registers a public client (every MCP client on a user's machine).
    pub fn register_public(&mut self, name: &str, redirect_uri: &str) -> Client {
        self.register_client(name, redirect_uri, "none")
    }

    // --- GET/POST /authorize ----------------------------------------------------------

    /// `GET /authorize?{query}` in `browser`: the consent page, or (remembered consent)
    /// the 303 to the upstream; an error page is the `Err`.
    pub fn get_authorize(
        &mut self,
        browser: &mut Browser,
        query: &str,
        nav: Nav,
    ) -> Result<Reply, AuthorizeError> {
        let req = AuthorizeRequest::parse(query.as_bytes())?;
        let client = self.store.get::<ClientRecord>(&req.client_key());
        let headers = browser.request(nav, self.now);
        let authorization = self.gate.authorize(
            req,
            client.as_ref(),
            headers.context(),
            self.now,
            &mut self.entropy,
        )?;
        let reply = match authorization {
            Authorization::NeedsConsent(prompt) => self.store.apply(prompt),
            Authorization::Remembered(consent) => self.go_upstream(consent),
        };
        browser.apply(&reply, self.now);
        Ok(reply)
    }

    fn go_upstream(&mut self, consent: ConsentGiven) -> Reply {
        let up = self
            .gate
            .upstream_redirect(consent, self.now, &mut self.entropy);
        self.store.apply(up)
    }

    /// `POST /authorize` (the consent decision) with a form `body` from `browser`.
    pub fn post_consent(
        &mut self,
        browser: &mut Browser,
        body: &str,
        nav: Nav,
    ) -> Result<Reply, ConsentError> {
        let form = ConsentForm::parse(body.as_bytes())?;
        let pending = self.store.take::<PendingConsent>(&form.pending_key());
        let headers = browser.request(nav, self.now);
        let reply = match self
            .gate
            .decide(form, pending, headers.context(), self.now)?
        {
            Decision::Approved(consent) => self.go_upstream(consent),
            Decision::Denied(to_client) => self.store.apply(to_client),
        };
        browser.apply(&reply, self.now);
        Ok(reply)
    }

    /// Clicks `decision` on a consent page shown in `browser`.
    pub fn click(
        &mut self,
        browser: &mut Browser,
        page: &Reply,
        decision: &str,
    ) -> Result<Reply, ConsentError> {
        let body = ConsentFields::read(page).body(decision);
        self.post_consent(browser, &body, Nav::SameOrigin)
    }

    /// The consent page for `app`'s request, opened by `nav` (a test failure otherwise).
    pub fn page(&mut self, browser: &mut Browser, app: &App, nav: Nav) -> Reply {
        let page = self.get_authorize(browser, &app.query(), nav);
        page.expect("a consent page")
    }

    /// The user opens `app`'s request and approves: our 303 to GitHub.
    pub fn approved(&mut self, browser: &mut Browser, app: &App) -> Reply {
        let page = self.page(browser, app, Nav::Direct);
        self.click(browser, &page, "approve").expect("an approval")
    }

    /// As [`Host::approved`], then GitHub sends the browser back: the callback URL.
    pub fn back_from_github(&mut self, browser: &mut Browser, app: &App) -> String {
        let up = self.approved(browser, app);
        self.through_github(browser, &up)
    }

    // --- the upstream, then GET /callback -----------------------------------------------

    /// The browser follows our 303 to GitHub, which sends it straight back: the callback
    /// URL it lands on.
    pub fn through_github(&mut self, browser: &Browser, to_github: &Reply) -> String {
        self.github.authorize(browser.github, location(to_github))
    }

    /// `GET /callback?…` in `browser`: take the transaction (before any upstream call),
    /// verify, exchange the code, fetch the user, look the client up again, issue the code.
    pub fn callback(&mut self, browser: &mut Browser, url: &str) -> Result<Reply, CallbackError> {
        let query = url.split_once('?').map_or("", |(_, q)| q);
        let cb = Callback::parse(query.as_bytes())?;
        let txn = self.store.take::<TransactionRecord>(&cb.transaction_key());
        let headers = browser.request(Nav::CrossSite, self.now);
        let verified = self
            .gate
            .verify_callback(cb, txn, headers.context(), self.now)?;
        #[cfg(consent_gate_faults)]
        if let Some(record) = verified.reinsert() {
            self.store.put(record);
        }
        if let Some(google) = &mut self.github.openid {
            google.now = self.now;
        }
        let answer = self.github.token(verified.token_request());
        let authenticated = verified.accept_token_response(answer.as_response())?;
        let user = self.github.user(&authenticated.user_request());
        let client = self.store.get::<ClientRecord>(&authenticated.client_key());
        let issued = self.gate.issue_code(
            authenticated,
            user.as_response(),
            client.as_ref(),
            self.now,
            &mut self.entropy,
        )?;
        let reply = self.store.apply(issued);
        browser.apply(&reply, self.now);
        Ok(reply)
    }

    // --- POST /token ---------------------------------------------------------------------

    /// `POST /token` with a form body and optional `Authorization` header. Codes are
    /// taken; on a reused code or refresh token the grant is deleted (R43, R53).
    pub fn post_token(
        &mut self,
        body: &str,
        authorization: Option<&str>,
    ) -> Result<Tokens, TokenError> {
        let req = TokenRequest::parse(body.as_bytes(), authorization)?;
        let client = self.store.get::<ClientRecord>(&req.client_key());
        let result = if req.is_code_grant() {
            let code = self.store.take::<CodeRecord>(&req.record_key());
            self.gate
                .redeem_code(&req, code, client.as_ref(), self.now, &mut self.entropy)
        } else {
            let record = self.store.get::<RefreshRecord>(&req.record_key());
            let (grant, mark) = match &record {
                Some(r) => self.store.grant(&r.grant_key()),
                None => (None, None),
            };
            let lookup = GrantLookup::with_installation(grant.as_ref(), mark.as_ref());
            self.gate
                .redeem_refresh(&req, record, lookup, client.as_ref(), self.now)
        };
        match result {
            Ok(issued) => {
                let reply = self.store.apply(issued);
                let json = serde_json::from_slice(&reply.body).expect("JSON");
                Ok(Tokens { reply, json })
            }
            // R43, R53: a replayed code or reused refresh token deletes the grant first.
            Err(e) => {
                let _error_reply = self.store.apply(e.clone());
                Err(e)
            }
        }
    }

    /// Redeems a code as `client`.
    pub fn redeem(
        &mut self,
        client: &Client,
        code: &str,
        verifier: &str,
        redirect_uri: Option<&str>,
    ) -> Result<Tokens, TokenError> {
        let mut pairs = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", verifier),
        ];
        pairs.extend(redirect_uri.map(|r| ("redirect_uri", r)));
        let (body, auth) = client.token_request(&pairs);
        self.post_token(&body, auth.as_deref())
    }

    /// Refreshes as `client`, optionally narrowing the scope.
    pub fn refresh(
        &mut self,
        client: &Client,
        refresh_token: &str,
        scope: Option<&str>,
    ) -> Result<Tokens, TokenError> {
        let mut pairs = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        pairs.extend(scope.map(|s| ("scope", s)));
        let (body, auth) = client.token_request(&pairs);
        self.post_token(&body, auth.as_deref())
    }

    /// `POST /revoke` (RFC 7009) with a form body and optional `Authorization` header:
    /// look up the client and, in case the token is a refresh token, its record; the
    /// executor deletes the grant the gate names.
    pub fn post_revoke(
        &mut self,
        body: &str,
        authorization: Option<&str>,
    ) -> Result<Reply, TokenError> {
        let req = RevocationRequest::parse(body.as_bytes(), authorization)?;
        let client = self.store.get::<ClientRecord>(&req.client_key());
        let refresh = self.store.get::<RefreshRecord>(&req.refresh_key());
        let done = self
            .gate
            .revoke(&req, client.as_ref(), refresh.as_ref(), self.now)?;
        // Read before the deletion: the upstream's tokens it holds are revoked too (R66).
        let grant = done
            .revoke_grant
            .and_then(|key| self.store.get::<GrantRecord>(&key));
        let upstream = self.gate.upstream_revocation_request(
            &req,
            client.as_ref(),
            refresh.as_ref(),
            grant.as_ref(),
            self.now,
        );
        let reply = self.store.apply(done);
        if let Some(upstream) = upstream {
            let _courtesy = self.github.revoke(&upstream);
        }
        Ok(reply)
    }

    /// Revokes `token` as `client`.
    pub fn revoke(&mut self, client: &Client, token: &str) -> Result<Reply, TokenError> {
        let (body, auth) = client.token_request(&[("token", token)]);
        self.post_revoke(&body, auth.as_deref())
    }

    // --- the MCP endpoint ------------------------------------------------------------------

    /// `Authorization: Bearer {access}` at the MCP endpoint: verify, then confirm the grant.
    pub fn bearer(&self, access: &str) -> Result<Principal, BearerError> {
        let claims = self
            .gate
            .verify_bearer(Some(&format!("Bearer {access}")), self.now)?;
        let (grant, mark) = self.store.grant(&claims.grant_key());
        claims.confirm(
            GrantLookup::with_installation(grant.as_ref(), mark.as_ref()),
            self.now,
        )
    }

    /// The bearer check of a host that renews upstream tokens (R66), as
    /// `consent_gate_store::Endpoints::bearer` does it (single-threaded here, so the
    /// single flight is trivial): confirm, and when the upstream refresh is due, send it to
    /// the double, read the grant again, and apply what the gate makes of the answer.
    pub fn bearer_renewing(&mut self, access: &str) -> Result<Principal, BearerError> {
        let header = format!("Bearer {access}");
        let claims = self.gate.verify_bearer(Some(&header), self.now)?;
        let (grant, mark) = self.store.grant(&claims.grant_key());
        let lookup = GrantLookup::with_installation(grant.as_ref(), mark.as_ref());
        let principal = claims.confirm_refreshable(lookup, self.now)?;
        if !principal.upstream_refresh_due(self.now) {
            return Ok(principal);
        }
        let Some(request) = self.gate.upstream_refresh_request(&principal) else {
            return Err(BearerError::UpstreamExpired);
        };
        if let Some(google) = &mut self.github.openid {
            google.now = self.now;
        }
        let answer = self.github.token(&request);
        let grant = self.store.get::<GrantRecord>(principal.grant_key());
        let accepted = self.gate.accept_upstream_refresh(
            &principal,
            grant.as_ref(),
            answer.as_response(),
            self.now,
            &mut self.entropy,
        );
        match accepted {
            Ok((renewed, step)) => {
                let _nothing_to_send = self.store.apply(step);
                Ok(renewed)
            }
            Err(e) => {
                let _unauthorized = self.store.apply(self.gate.upstream_refresh_failed(&e));
                match e {
                    UpstreamRefreshError::Unavailable(_) if principal.upstream_valid(self.now) => {
                        Ok(principal)
                    }
                    e => Err(e.bearer_error()),
                }
            }
        }
    }

    // --- whole flows ---------------------------------------------------------------------

    /// The honest flow up to the code at the app: the app opens `/authorize` in the
    /// browser, the user approves (unless a remembered consent applies), GitHub sends the
    /// browser back, our callback redirects to the app.
    pub fn code_for(&mut self, browser: &mut Browser, app: &App) -> String {
        let reply = self
            .get_authorize(browser, &app.query(), Nav::Direct)
            .expect("consent page");
        let to_github = if reply.status == 200 {
            self.click(browser, &reply, "approve").expect("approval")
        } else {
            reply
        };
        let back = self.through_github(browser, &to_github);
        let to_app = self.callback(browser, &back).expect("callback");
        app.receive(&to_app, &self.issuer()).expect("a code")
    }

    /// The honest flow up to tokens.
    pub fn login(&mut self, browser: &mut Browser, app: &App) -> Tokens {
        let code = self.code_for(browser, app);
        self.redeem(&app.client, &code, &app.verifier, Some(&app.redirect_uri))
            .expect("tokens")
    }
}

impl Default for Host {
    fn default() -> Self {
        Self::new()
    }
}
