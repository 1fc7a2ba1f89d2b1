//! The host: each action's server side calls the core's public API exactly as a real host
//! does (parse → look up / *take* → verify → store what comes out → send the reply), the
//! same order as `examples/hyper_server/routes.rs`.

use std::sync::Arc;

use consent_gate::{
    Authorization, AuthorizeError, AuthorizeRequest, BrowserContext, Callback, CallbackError,
    ClientRecord, ClientRedirect, ConsentError, ConsentForm, Decision, Kind, Op, PendingConsent,
    Record, Reply, Step, StoreKey, TransactionRecord, UnixTime, UpstreamRedirect,
};
use url::form_urlencoded::Serializer;

use crate::action::{Action, Outcome, Refusal};
use crate::actors::{
    EPOCH, EVIL_AS_ISSUER, EVIL_DOCUMENT, EVIL_ORIGIN, EVIL_REDIRECT, HONEST_REDIRECT,
    TRICK_REDIRECT, build_server, push_new, query_param,
};
use crate::entropy::Draws;
use crate::kit::{self, FakeGithub, Faults, Nav};
use crate::ledger::{HeldCode, Inbox, Issued, IssuedCode, SingleUse};
use crate::world::{
    Browser, BrowserState, CallbackUrl, Identity, Link, LinkClient, Minter, Page, Party, Server,
    Setup, Terms, World,
};

fn registration(redirect: &str, name: &str) -> String {
    format!(
        r#"{{"redirect_uris":["{redirect}"],"client_name":"{name}","token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"]}}"#
    )
}

fn at(list_len: usize, index: u16) -> Option<usize> {
    let i = usize::from(index);
    (i < list_len).then_some(i)
}

impl World {
    /// A world with these faults at the CI bound (see [`Setup::new`] for the policy).
    pub fn new(faults: Faults) -> Self {
        Self::with_setup(Setup::new(faults))
    }

    /// A world with an explicit setup. The honest client is registered through the real
    /// registration endpoint; the attacker's trick link for it (A10) is already crafted.
    pub fn with_setup(setup: Setup) -> Self {
        let (gate, github) = build_server(&setup);
        let server = Server {
            setup,
            gate,
            github,
        };
        let mut draws = Draws::new(Minter::Init.ix(), 0);
        let reg = server.gate.register(
            registration(HONEST_REDIRECT, "Honest App").as_bytes(),
            UnixTime(EPOCH),
            &mut draws,
        );
        let reg = match reg {
            Ok(r) => r,
            Err(e) => panic!("the honest registration is valid: {e}"),
        };
        let honest_client = Arc::from(reg.record.client_id());
        let mut store = kit::Store::default();
        let _created = store.apply(reg);
        let links = vec![
            Link {
                client: LinkClient::Honest,
                redirect_uri: HONEST_REDIRECT.into(),
                pkce: Party::Honest,
                state: "honest".into(),
                crafted_by: Party::Honest,
            },
            Link {
                client: LinkClient::Honest,
                redirect_uri: TRICK_REDIRECT.into(),
                pkce: Party::Attacker,
                state: "trick".into(),
                crafted_by: Party::Attacker,
            },
        ];
        let mut mints = [0; 6];
        mints[Minter::Init.ix()] = 1;
        World {
            server,
            now: UnixTime(EPOCH),
            mints,
            left: setup.bounds,
            store,
            browsers: [
                BrowserState::new(Browser::Victim),
                BrowserState::new(Browser::Attacker),
            ],
            links: Arc::new(links),
            inboxes: Default::default(),
            honest_client,
            attacker_clients: Vec::new(),
            ghost: Default::default(),
        }
    }

    /// Runs one action: the party's side, then the host and the core. Deterministic.
    pub fn step(&mut self, action: Action) -> Outcome {
        let mint = self.left.nonces > 0;
        match action {
            Action::Register if mint && self.left.attacker_clients > 0 => self.register(),
            Action::Open { browser, link } if mint => match at(self.links.len(), link) {
                Some(i) if self.may_open(browser, &self.links[i]) => {
                    self.open(browser, i, Nav::Direct)
                }
                _ => Outcome::Disabled,
            },
            Action::SameSiteOpen { link } if mint && self.remembers() => {
                match at(self.links.len(), link) {
                    Some(i) => self.open(Browser::Victim, i, Nav::SameSite),
                    None => Outcome::Disabled,
                }
            }
            Action::Approve { browser, page } if mint => self.decide(browser, page, true),
            Action::Deny { browser, page } => self.decide(browser, page, false),
            Action::ForgedPost { page, legacy } if mint => self.forged_post(page, legacy),
            Action::Upstream { browser, redirect } => {
                let list = &self.browsers[browser.ix()].upstream;
                match at(list.len(), redirect) {
                    Some(i) => self.upstream(browser, list[i].clone()),
                    None => Outcome::Disabled,
                }
            }
            Action::ForwardUpstreamUrl { redirect } => {
                let list = &self.browsers[Browser::Attacker.ix()].upstream;
                match at(list.len(), redirect) {
                    Some(i) => self.upstream(Browser::Victim, list[i].clone()),
                    None => Outcome::Disabled,
                }
            }
            Action::Callback { browser, url } if mint => {
                let list = &self.browsers[browser.ix()].callbacks;
                match at(list.len(), url) {
                    Some(i) => self.callback(browser, list[i].url.clone()),
                    None => Outcome::Disabled,
                }
            }
            Action::ReplayCallback { url } if mint => {
                let list = &self.browsers[Browser::Attacker.ix()].callbacks;
                match at(list.len(), url) {
                    Some(i) => self.callback(Browser::Victim, list[i].url.clone()),
                    None => Outcome::Disabled,
                }
            }
            Action::MixUp { redirect } if mint => match self.mix_up_callback(redirect) {
                Some(back) => self.callback(Browser::Victim, back.url),
                None => Outcome::Disabled,
            },
            Action::RedeemCode { party, code } if mint => {
                let list = &self.inboxes[party.ix()].codes;
                match at(list.len(), code) {
                    Some(i) => self.redeem(party, list[i].clone()),
                    None => Outcome::Disabled,
                }
            }
            Action::Refresh { party, token } if self.may_refresh(party, token) => {
                let held = self.inboxes[party.ix()].refresh[usize::from(token)].clone();
                self.refresh(party, held)
            }
            Action::Tick { secs } if self.left.ticks > 0 => {
                self.left.ticks -= 1;
                self.now = self.now.plus(u64::from(secs));
                Outcome::Ticked
            }
            _ => Outcome::Disabled,
        }
    }

    /// Ghost: records `what` as late if it was accepted at or after the end of its
    /// lifetime, counted from `since` (R36, R42).
    pub(crate) fn check_lifetime(&mut self, what: SingleUse, key: StoreKey, since: UnixTime) {
        let l = self.server.gate.config().lifetimes();
        let lifetime = match what {
            SingleUse::ConsentDecision => l.consent,
            SingleUse::UpstreamState => l.transaction,
            SingleUse::Code => l.code,
        };
        if self.now >= since.plus(lifetime) {
            self.ghost.late.insert((what, key));
        }
    }

    pub(crate) fn spend_nonce(&mut self) {
        self.left.nonces = self.left.nonces.saturating_sub(1);
    }

    /// The entropy for one step of `m`.
    pub(crate) fn draws(&self, m: Minter) -> Draws {
        Draws::new(m.ix(), self.mints[m.ix()])
    }

    /// Counts the step of `m` if it drew anything.
    pub(crate) fn drew(&mut self, m: Minter, d: &Draws) {
        if d.fills > 0 {
            self.mints[m.ix()] += 1;
        }
    }

    pub(crate) fn browser(&mut self, b: Browser) -> &mut BrowserState {
        &mut self.browsers[b.ix()]
    }

    pub(crate) fn inbox(&mut self, p: Party) -> &mut Inbox {
        &mut self.inboxes[p.ix()]
    }

    fn apply_cookies(&mut self, b: Browser, reply: &Reply) {
        let now = self.now;
        self.browser(b).jar.apply(reply, now);
    }

    /// The headers `b` sends on a request that came about by `nav`.
    fn context_of(&self, b: Browser, nav: Nav) -> kit::Request {
        self.browsers[b.ix()].jar.request(nav, self.now)
    }

    /// `POST /register` by the attacker, then a link for the new client.
    fn register(&mut self) -> Outcome {
        let gate = self.server.gate.clone();
        let n = u16::try_from(self.attacker_clients.len()).unwrap_or(u16::MAX);
        let result = if self.server.setup.documents {
            // The attacker publishes a metadata document on its own domain; the host
            // fetched it (no draws: a document's id is its URL) and stores the client.
            let url = format!("{EVIL_DOCUMENT}{n}.json");
            let doc = format!(
                r#"{{"client_id":"{url}","client_name":"Totally Legit Assistant","redirect_uris":["{EVIL_REDIRECT}"],"grant_types":["authorization_code","refresh_token"]}}"#
            );
            gate.accept_metadata_document(&url, doc.as_bytes(), None, self.now)
        } else {
            let body = registration(EVIL_REDIRECT, "Totally Legit Assistant");
            let mut draws = self.draws(Minter::Registrar);
            let result = gate.register(body.as_bytes(), self.now, &mut draws);
            self.drew(Minter::Registrar, &draws);
            result.map(|reg| reg.record)
        };
        match result {
            Ok(record) => {
                self.spend_nonce();
                self.left.attacker_clients -= 1;
                self.attacker_clients.push(Arc::from(record.client_id()));
                self.store.apply_op(consent_gate::Op::put(&record));
                Arc::make_mut(&mut self.links).push(Link {
                    client: LinkClient::Attacker(n),
                    redirect_uri: EVIL_REDIRECT.into(),
                    pkce: Party::Attacker,
                    state: format!("evil{n}"),
                    crafted_by: Party::Attacker,
                });
                Outcome::Registered
            }
            Err(e) => Outcome::Refused(Refusal::Other(e.to_string())),
        }
    }

    fn link_query(&self, link: &Link) -> String {
        let client_id = match link.client {
            LinkClient::Honest => &self.honest_client,
            LinkClient::Attacker(n) => &self.attacker_clients[usize::from(n)],
        };
        Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", &link.redirect_uri)
            .append_pair("state", &link.state)
            .append_pair("code_challenge", &link.pkce.challenge())
            .append_pair("code_challenge_method", "S256")
            .finish()
    }

    /// `GET /authorize` in `b`, on a navigation with this `Sec-Fetch-Site`.
    fn open(&mut self, b: Browser, link: usize, nav: Nav) -> Outcome {
        let gate = self.server.gate.clone();
        let query = self.link_query(&self.links[link]);
        let request = match AuthorizeRequest::parse(query.as_bytes()) {
            Ok(r) => r,
            Err(e) => return Outcome::Refused(authorize_refusal(&e)),
        };
        let client = self.store.get::<ClientRecord>(&request.client_key());
        let headers = self.context_of(b, nav);
        let minter = Minter::Browser(b);
        let mut draws = self.draws(minter);
        let result = gate.authorize(
            request,
            client.as_ref(),
            headers.context(),
            self.now,
            &mut draws,
        );
        let outcome = match result {
            Err(e) => Outcome::Refused(authorize_refusal(&e)),
            Ok(Authorization::NeedsConsent(prompt)) => {
                self.spend_nonce();
                let view = prompt.view();
                let pending = *prompt.pending_record().key();
                let page = Page {
                    tx: view.form_tx.clone(),
                    csrf: view.form_csrf.clone(),
                    terms: Terms {
                        client_id: view.client_id.clone(),
                        redirect_uri: view.redirect_uri.clone(),
                        scope: view.scopes.join(" "),
                        resource: view.resource.clone(),
                    },
                    pending,
                    shown_at: self.now,
                };
                let reply = self.store.apply(prompt);
                self.apply_cookies(b, &reply);
                self.browser(b).pages.push(Arc::new(page));
                Outcome::ConsentPage
            }
            Ok(Authorization::Remembered(consent)) => {
                self.spend_nonce();
                let up = gate.upstream_redirect(consent, self.now, &mut draws);
                self.went_upstream(b, up, true, nav == Nav::Direct)
            }
        };
        self.drew(minter, &draws);
        outcome
    }

    /// Stores the transaction, sets the binding cookie in `b`, and records the redirect.
    fn went_upstream(
        &mut self,
        b: Browser,
        up: UpstreamRedirect,
        remembered: bool,
        user_started: bool,
    ) -> Outcome {
        let step = Step::from(up);
        // Ghost bookkeeping only: what the host is about to store, read back as the record.
        let txn = step.ops.iter().find_map(|op| match op {
            Op::Put {
                kind: Kind::Transaction,
                value,
                ..
            } => TransactionRecord::decode(value),
            _ => None,
        });
        let Some(txn) = txn else {
            self.ghost
                .host_errors
                .insert("an upstream redirect without a transaction to store".into());
            return Outcome::Refused(Refusal::Other("no transaction".into()));
        };
        let d = txn.details();
        self.ghost.issued.insert(Issued {
            browser: b,
            terms: Arc::new(Terms {
                client_id: d.client_id().to_owned(),
                redirect_uri: d.redirect_uri().as_str().to_owned(),
                scope: d.scope().to_scope_string(),
                resource: d.resource().to_owned(),
            }),
            txn: *txn.key(),
            remembered,
            user_started,
            at: self.now,
        });
        let reply = self.store.apply(step);
        self.apply_cookies(b, &reply);
        if let Some(location) = reply.header("location") {
            push_new(&mut self.browser(b).upstream, Arc::from(location));
        }
        Outcome::WentUpstream { remembered }
    }

    /// The browser follows a 303 to a client: whoever owns the URI receives it.
    fn deliver(
        &mut self,
        client_id: &str,
        redirect: &ClientRedirect,
        code_of: Option<(Identity, StoreKey)>,
    ) -> Outcome {
        let uri = redirect.redirect_uri().to_owned();
        let to = Party::owning(&uri);
        self.ghost
            .redirects
            .insert((Arc::from(client_id), Arc::from(uri.as_str())));
        let location = redirect.location();
        match (
            redirect.error_code(),
            query_param(location, "code"),
            code_of,
        ) {
            (None, Some(code), Some((subject, key))) => {
                push_new(
                    &mut self.inbox(to).codes,
                    Arc::new(HeldCode {
                        code,
                        client_id: client_id.to_owned(),
                        redirect_uri: uri,
                        subject,
                        key,
                    }),
                );
                Outcome::ClientRedirect { to, error: None }
            }
            (Some(error), _, _) => {
                self.inbox(to).errors.insert((Arc::from(client_id), error));
                Outcome::ClientRedirect {
                    to,
                    error: Some(error),
                }
            }
            _ => {
                self.ghost
                    .host_errors
                    .insert(format!("unreadable client redirect to {uri}"));
                Outcome::Refused(Refusal::Other("unreadable client redirect".into()))
            }
        }
    }

    /// `POST /authorize` from `b`'s own page (a click).
    fn decide(&mut self, b: Browser, page: u16, approve: bool) -> Outcome {
        let pages = &self.browsers[b.ix()].pages;
        let Some(i) = at(pages.len(), page) else {
            return Outcome::Disabled;
        };
        let page = pages[i].clone();
        let headers = self.context_of(b, Nav::SameOrigin);
        self.post_consent(b, &page, approve, headers.context(), true)
    }

    /// A3: the victim's browser submits the attacker's form values cross-site.
    fn forged_post(&mut self, page: u16, legacy: bool) -> Outcome {
        let pages = &self.browsers[Browser::Attacker.ix()].pages;
        let Some(i) = at(pages.len(), page) else {
            return Outcome::Disabled;
        };
        let page = pages[i].clone();
        let jar = &self.browsers[Browser::Victim.ix()].jar;
        let headers = if legacy {
            // No Fetch Metadata, no SameSite: the victim's cookies go along (`Origin: null`
            // from a `no-referrer` page).
            jar.legacy_request(Nav::CrossSitePost("null"), self.now)
        } else {
            // SameSite=Lax: a cross-site POST carries none of our cookies.
            jar.request(Nav::CrossSitePost(EVIL_ORIGIN), self.now)
        };
        self.post_consent(Browser::Victim, &page, true, headers.context(), false)
    }

    fn post_consent(
        &mut self,
        b: Browser,
        page: &Page,
        approve: bool,
        ctx: BrowserContext<'_>,
        clicked: bool,
    ) -> Outcome {
        let gate = self.server.gate.clone();
        let body = Serializer::new(String::new())
            .append_pair("tx", &page.tx)
            .append_pair("csrf", &page.csrf)
            .append_pair("decision", if approve { "approve" } else { "deny" })
            .finish();
        let form = match ConsentForm::parse(body.as_bytes()) {
            Ok(f) => f,
            Err(e) => return Outcome::Refused(consent_refusal(&e)),
        };
        let key = form.pending_key();
        let pending = self.store.take::<PendingConsent>(&key);
        let client_id = pending
            .as_ref()
            .map(|p| p.details().client_id().to_owned())
            .unwrap_or_default();
        match gate.decide(form, pending, ctx, self.now) {
            Err(e) => Outcome::Refused(consent_refusal(&e)),
            Ok(Decision::Approved(consent)) => {
                *self.ghost.decided.entry(key).or_default() += 1;
                self.check_lifetime(SingleUse::ConsentDecision, key, page.shown_at);
                if clicked {
                    let terms = Arc::new(page.terms.clone());
                    *self.ghost.clicked.entry((b, terms)).or_default() += 1;
                }
                self.spend_nonce();
                let minter = Minter::Browser(b);
                let mut draws = self.draws(minter);
                let up = gate.upstream_redirect(consent, self.now, &mut draws);
                self.drew(minter, &draws);
                self.went_upstream(b, up, false, true)
            }
            Ok(Decision::Denied(redirect)) => {
                *self.ghost.decided.entry(key).or_default() += 1;
                self.check_lifetime(SingleUse::ConsentDecision, key, page.shown_at);
                self.deliver(&client_id, &redirect, None)
            }
        }
    }

    /// `b` follows an upstream authorization URL; the upstream sends it to our callback.
    fn upstream(&mut self, b: Browser, url: Arc<str>) -> Outcome {
        match self.server.github.wave_through(b.identity().github(), &url) {
            Some(back) => {
                let query = back.split_once('?').map_or("", |(_, q)| q);
                let Ok(parsed) = Callback::parse(query.as_bytes()) else {
                    return Outcome::Refused(Refusal::Other("unreadable callback URL".into()));
                };
                let txn = parsed.transaction_key();
                push_new(
                    &mut self.browser(b).callbacks,
                    Arc::new(CallbackUrl { url: back, txn }),
                );
                Outcome::AtCallback
            }
            None => Outcome::Refused(Refusal::Other("the upstream refused the request".into())),
        }
    }

    /// A13: where the attacker's authorization server sends the victim's browser when the
    /// victim's upstream URL `redirect` reaches it. It signs in at the upstream as the
    /// attacker with that request (the victim's `state` and PKCE challenge) and answers
    /// with the upstream's code and its own issuer ([`EVIL_AS_ISSUER`]) in `iss`, as an
    /// authorization server names itself (RFC 9207). Kept nowhere: the host takes the
    /// transaction on the one load, so a second one could change nothing. `None` for an
    /// index out of range or a URL the upstream would not wave through.
    pub(crate) fn mix_up_callback(&self, redirect: u16) -> Option<CallbackUrl> {
        let list = &self.browsers[Browser::Victim.ix()].upstream;
        let url = &list[at(list.len(), redirect)?];
        let user = Identity::Attacker.github();
        let github = &self.server.github;
        let back = github.wave_through_naming(user, url, Some(EVIL_AS_ISSUER))?;
        let query = back.split_once('?').map_or("", |(_, q)| q);
        let txn = Callback::parse(query.as_bytes()).ok()?.transaction_key();
        Some(CallbackUrl { url: back, txn })
    }

    /// `GET /callback` in `b`: take the transaction, verify, exchange the code upstream,
    /// look the user up, re-check the client, issue the code, redirect to the client.
    fn callback(&mut self, b: Browser, url: String) -> Outcome {
        let gate = self.server.gate.clone();
        let query = url.split_once('?').map_or("", |(_, q)| q).to_owned();
        let cb = match Callback::parse(query.as_bytes()) {
            Ok(cb) => cb,
            Err(e) => return Outcome::Refused(callback_refusal(&e)),
        };
        let key = cb.transaction_key();
        let txn = self.store.take::<TransactionRecord>(&key);
        let headers = self.context_of(b, Nav::CrossSite);
        let verified = match gate.verify_callback(cb, txn, headers.context(), self.now) {
            Ok(v) => v,
            Err(e) => return self.callback_failed(&e),
        };
        #[cfg(consent_gate_faults)]
        if let Some(again) = verified.reinsert() {
            self.store.put(again);
        }
        *self.ghost.accepted.entry((key, b)).or_default() += 1;
        let issued_at = self
            .ghost
            .issued
            .iter()
            .find(|i| i.txn == key)
            .map(|i| i.at);
        if let Some(at) = issued_at {
            self.check_lifetime(SingleUse::UpstreamState, key, at);
        }
        let subject = query_param(&url, "code")
            .and_then(|c| FakeGithub::lenient_code_user(&c))
            .and_then(Identity::of_github);
        let Some(subject) = subject else {
            return Outcome::Refused(Refusal::Other("unknown upstream code".into()));
        };
        let github = self.server.github.clone();
        let answer = github.lenient_token(verified.token_request());
        let authenticated = match verified.accept_token_response(answer.as_response()) {
            Ok(a) => a,
            Err(e) => return self.callback_failed(&e),
        };
        let user = github.user(&authenticated.user_request());
        let client = self.store.get::<ClientRecord>(&authenticated.client_key());
        let client_id = authenticated.details().client_id().to_owned();
        let minter = Minter::Browser(b);
        let mut draws = self.draws(minter);
        let issued = gate.issue_code(
            authenticated,
            user.as_response(),
            client.as_ref(),
            self.now,
            &mut draws,
        );
        self.drew(minter, &draws);
        let issued = match issued {
            Ok(i) => i,
            Err(e) => return self.callback_failed(&e),
        };
        self.spend_nonce();
        let redirect = issued.redirect().clone();
        let code_key = *issued.code_record().key();
        self.ghost.codes.insert(IssuedCode {
            code: code_key,
            txn: key,
            subject,
            at: self.now,
        });
        let reply = self.store.apply(issued);
        self.apply_cookies(b, &reply);
        self.deliver(&client_id, &redirect, Some((subject, code_key)))
    }

    fn callback_failed(&mut self, e: &CallbackError) -> Outcome {
        if let CallbackError::Upstream { .. } = e {
            // The model upstream always answers; a failure here is a glue bug.
            self.ghost
                .host_errors
                .insert(format!("the model upstream failed: {e}"));
        }
        Outcome::Refused(callback_refusal(e))
    }
}

fn authorize_refusal(e: &AuthorizeError) -> Refusal {
    match e {
        AuthorizeError::RedirectUriMismatch => Refusal::RedirectMismatch,
        other => Refusal::Other(other.to_string()),
    }
}

fn consent_refusal(e: &ConsentError) -> Refusal {
    match e {
        ConsentError::UnknownTransaction => Refusal::Unknown,
        ConsentError::Expired => Refusal::Expired,
        ConsentError::CsrfMismatch => Refusal::Csrf,
        ConsentError::CrossSite => Refusal::CrossSite,
        other => Refusal::Other(other.to_string()),
    }
}

fn callback_refusal(e: &CallbackError) -> Refusal {
    match e {
        CallbackError::UnknownTransaction => Refusal::Unknown,
        CallbackError::Expired => Refusal::Expired,
        CallbackError::BindingMismatch => Refusal::Binding,
        CallbackError::IssuerMismatch => Refusal::Issuer,
        other => Refusal::Other(other.to_string()),
    }
}
