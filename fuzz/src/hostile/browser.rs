//! The browser side of the world: navigations to `/authorize`, consent answers (genuine
//! and forged) and the upstream redirect; plus the dispatch of every [`Op`].

use consent_gate::{
    Authorization, AuthorizeRequest, BrowserContext, ClientRecord, ConsentForm, ConsentGiven,
    ConsentPolicy, Decision, Kind, PendingConsent, Step, StoreKey,
};
use consent_gate_spec::kit::{GateSetup, Nav, T0};

use super::*;
use crate::fixture::{Faults, ISSUER, SplitMix64, form_param, query_param};
use crate::oracle::redirect_acceptable;

impl Hostile {
    /// A world around a gate with this policy and these faults; the honest client and
    /// the attacker's client are registered.
    pub fn new(policy: ConsentPolicy, faults: Faults) -> Self {
        let (gate, github) = GateSetup {
            https: true,
            policy,
            faults,
            ..GateSetup::default()
        }
        .build();
        let mut init = St {
            now: T0,
            rng: 0x0f10,
            store: Store::default(),
            client_list: Vec::new(),
            jars: [
                kit::Browser::new(ISSUER, Who::Victim.github()),
                kit::Browser::new(ISSUER, Who::Attacker.github()),
            ],
            pages: Vec::new(),
            up_links: Vec::new(),
            callbacks: Vec::new(),
            held: Vec::new(),
            held_refresh: Vec::new(),
            honest_flows: Vec::new(),
            github,
            approvals: Vec::new(),
            pending_owner: BTreeMap::new(),
            txn_owner: BTreeMap::new(),
            accepted: BTreeSet::new(),
        };
        let w = Hostile {
            gate,
            init: init.clone(),
        };
        w.register(&mut init, Who::Victim, r#"{"redirect_uris":["http://127.0.0.1/callback","https://app.example"],"client_name":"App","token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"]}"#);
        w.register(&mut init, Who::Attacker, r#"{"redirect_uris":["https://evil.example/cb"],"client_name":"Totally Legit","token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"]}"#);
        assert_eq!(init.client_list.len(), 2, "world clients register");
        Hostile { init, ..w }
    }

    /// The gate under test.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// The state before any action.
    pub fn init_state(&self) -> St {
        self.init.clone()
    }

    fn register(&self, st: &mut St, who: Who, json: &str) {
        let mut rng = SplitMix64(st.rng);
        if let Ok(reg) = self
            .gate
            .register(json.as_bytes(), st.now, &mut |b: &mut [u8]| rng.fill(b))
        {
            st.client_list
                .push((reg.record.client_id().to_owned(), who));
            let _created = st.store.apply(reg);
        }
        st.rng = rng.0;
    }

    pub(super) fn client(&self, st: &St, id: &str) -> Option<ClientRecord> {
        st.store.get::<ClientRecord>(&StoreKey::client(id))
    }

    /// Applies one action, checking the transition properties (P1, P3, P4, P5, P6).
    pub fn step(&self, st: &mut St, op: &Op) -> Result<(), Violation> {
        match *op {
            Op::HonestStart { redirect } => {
                let choices = [
                    "http://127.0.0.1/callback",
                    "http://127.0.0.1:53682/callback",
                    "https://app.example",
                ];
                let redirect = choices[usize::from(redirect) % choices.len()];
                let n = st.honest_flows.len();
                let (state, verifier) = (format!("honest-{n}"), format!("honest-verifier-{n:040}"));
                let query = authorize_query(
                    &st.client_list[0].0,
                    Some(redirect),
                    &state,
                    &s256(&verifier),
                );
                st.honest_flows.push((state, verifier));
                self.navigate_authorize(st, Who::Victim, &query, Nav::Direct)
            }
            Op::Link {
                client,
                redirect,
                victim,
                from_page,
            } => {
                let (client_id, _) =
                    st.client_list[usize::from(client) % st.client_list.len()].clone();
                // Below 128: one of the client's own URIs (the flow goes on); else one
                // of A10's candidates (mostly refused, each once worth trying).
                let own = self
                    .client(st, &client_id)
                    .map(|c| c.redirect_uris().to_vec());
                let r = match own.filter(|_| redirect < 128) {
                    Some(uris) if !uris.is_empty() => {
                        uris[usize::from(redirect) % uris.len()].as_str().to_owned()
                    }
                    _ => REDIRECTS[usize::from(redirect) % REDIRECTS.len()].to_owned(),
                };
                let query = authorize_query(
                    &client_id,
                    (!r.is_empty()).then_some(r.as_str()),
                    "attacker-state",
                    &s256(ATTACKER_VERIFIER),
                );
                let (who, nav) = if victim {
                    let nav = if from_page {
                        Nav::CrossSite
                    } else {
                        Nav::Direct
                    };
                    (Who::Victim, nav)
                } else {
                    (Who::Attacker, Nav::Direct)
                };
                self.navigate_authorize(st, who, &query, nav)
            }
            Op::Answer {
                who,
                page,
                approve,
                follow,
            } => {
                let Some(i) = pick(&st.pages, page, |p| p.owner == who) else {
                    return Ok(());
                };
                let p = st.pages[i].clone();
                let headers = st.jars[jar_index(who)].request(Nav::SameOrigin, st.now);
                self.submit(st, who, &p, approve, headers.context(), true, follow)
            }
            Op::ForgedAnswer { page, legacy } => {
                let Some(i) = pick(&st.pages, page, |p| p.owner == Who::Attacker) else {
                    return Ok(());
                };
                let p = st.pages[i].clone();
                let jar = &st.jars[jar_index(Who::Victim)];
                let headers = if legacy {
                    jar.legacy_request(Nav::CrossSitePost("null"), st.now)
                } else {
                    jar.request(Nav::CrossSitePost("https://evil.example"), st.now)
                };
                self.submit(
                    st,
                    Who::Victim,
                    &p,
                    true,
                    headers.context(),
                    false,
                    Follow::All,
                )
            }
            Op::Upstream {
                who,
                link,
                deny,
                follow,
            } => {
                let Some(i) = pick(&st.up_links, link, |l| visible(l, who)) else {
                    return Ok(());
                };
                let url = st.up_links[i].url.clone();
                self.visit_upstream(st, who, &url, deny, follow)
            }
            Op::Callback { who, link, lost } => {
                let Some(i) = pick(&st.callbacks, link, |l| visible(l, who)) else {
                    return Ok(());
                };
                let query = st.callbacks[i].url.clone();
                self.load_callback(st, who, &query, lost)
            }
            Op::Splice {
                who,
                code_from,
                state_from,
            } => {
                let known = |l: &Link| l.attacker_knows;
                let (Some(a), Some(b)) = (
                    pick(&st.callbacks, code_from, known),
                    pick(&st.callbacks, state_from, known),
                ) else {
                    return Ok(());
                };
                let code = query_param(&st.callbacks[a].url, "code");
                let state = query_param(&st.callbacks[b].url, "state");
                let (Some(code), Some(state)) = (code, state) else {
                    return Ok(());
                };
                let query = format!(
                    "{}?code={}&state={}",
                    self.gate.config().callback_uri(),
                    enc(&code),
                    enc(&state)
                );
                st.callbacks.push(Link {
                    owner: Who::Attacker,
                    url: query.clone(),
                    attacker_knows: true,
                    used: false,
                });
                self.load_callback(st, who, &query, false)
            }
            Op::Leak { what, idx } => {
                match what {
                    Leak::Callback => {
                        let used = |l: &Link| l.owner == Who::Victim && l.used;
                        if let Some(i) = pick(&st.callbacks, idx, used) {
                            st.callbacks[i].attacker_knows = true;
                        }
                    }
                    Leak::Code => {
                        // Only the honest client's own codes: their PKCE challenge is its own
                        // (R44). A code for a request the attacker wrote cannot be protected
                        // by PKCE and is out of scope (A11).
                        if let Some(i) = pick(&st.held, idx, |h| {
                            h.holder == Who::Victim && h.verifier.is_some()
                        }) {
                            let h = st.held[i].clone();
                            st.held.push(Held {
                                holder: Who::Attacker,
                                delivered: false,
                                verifier: None,
                                ..h
                            });
                        }
                    }
                }
                Ok(())
            }
            Op::Redeem { who, code, client } => {
                // The honest client only redeems codes of flows it started.
                let Some(i) = pick(&st.held, code, |h| {
                    h.holder == who && (who == Who::Attacker || h.verifier.is_some())
                }) else {
                    return Ok(());
                };
                let h = st.held[i].clone();
                let client_id = match who {
                    Who::Victim => h.client_id.clone(),
                    Who::Attacker => st.client_list[usize::from(client) % st.client_list.len()]
                        .0
                        .clone(),
                };
                let verifier = h
                    .verifier
                    .clone()
                    .unwrap_or_else(|| ATTACKER_VERIFIER.to_owned());
                self.redeem(st, who, &h.value, &client_id, &verifier)
            }
            Op::Refresh { who, token } => {
                let Some(i) = pick(&st.held_refresh, token, |h| h.holder == who) else {
                    return Ok(());
                };
                let h = st.held_refresh[i].clone();
                self.refresh(st, who, &h)
            }
            Op::Register { redirect } => {
                if st.client_list.len() < MAX_CLIENTS {
                    let r = REDIRECTS[usize::from(redirect) % REDIRECTS.len()];
                    let json = serde_json::json!({"redirect_uris": [r], "client_name": "Another", "token_endpoint_auth_method": "none"});
                    self.register(st, Who::Attacker, &json.to_string());
                }
                Ok(())
            }
            // The jars send no cookie past its `Max-Age`.
            Op::Tick { step } => {
                st.now = st.now.plus(TICKS[usize::from(step) % TICKS.len()]);
                Ok(())
            }
            Op::MixUp { link } => {
                let Some(i) = pick(&st.up_links, link, |l| l.owner == Who::Victim) else {
                    return Ok(());
                };
                let url = st.up_links[i].url.clone();
                if query_param(&url, "state").is_none() {
                    return Ok(());
                }
                // GitHub's code for the attacker, bound to the victim's `state` and PKCE
                // challenge, in an answer that names the attacker's server. Loaded at once
                // and kept nowhere: the host takes the transaction, so it is spent either way.
                let honest_iss = st.github.send_iss.replace(EVIL_AS.to_owned());
                let query = st.github.authorize(Who::Attacker.github(), &url);
                st.github.send_iss = honest_iss;
                self.load_callback(st, Who::Victim, &query, false)
            }
        }
    }

    fn navigate_authorize(
        &self,
        st: &mut St,
        who: Who,
        query: &str,
        nav: Nav,
    ) -> Result<(), Violation> {
        let Ok(req) = AuthorizeRequest::parse(query.as_bytes()) else {
            return fail(
                "Glue setup",
                format!("the world wrote an unparsable query {query}"),
            );
        };
        let presented = form_param(query.as_bytes(), "redirect_uri");
        let client = st.store.get::<ClientRecord>(&req.client_key());
        let headers = st.jars[jar_index(who)].request(nav, st.now);
        let mut rng = SplitMix64(st.rng);
        let out = self.gate.authorize(
            req,
            client.as_ref(),
            headers.context(),
            st.now,
            &mut |b: &mut [u8]| rng.fill(b),
        );
        st.rng = rng.0;
        let details = match &out {
            Err(e) => {
                let r = e.response();
                if e.redirect_allowed() || r.header("location").is_some() {
                    return fail(
                        "P5 no redirect before consent",
                        format!("/authorize error {e} redirects"),
                    );
                }
                return Ok(());
            }
            Ok(Authorization::NeedsConsent(p)) => p.pending_record().details().clone(),
            Ok(Authorization::Remembered(c)) => c.details().clone(),
        };
        let client = client.expect("authorized for an unregistered client");
        let accepted = details.redirect_uri().as_str();
        let exact = presented.as_deref().is_none_or(|p| p == accepted);
        if !exact
            || !client
                .redirect_uris()
                .iter()
                .any(|r| redirect_acceptable(r.as_str(), accepted))
        {
            return fail(
                "P5 exact redirect (A10)",
                format!("{accepted:?} accepted for {:?}", client.redirect_uris()),
            );
        }
        match out {
            Err(_) => Ok(()),
            Ok(Authorization::NeedsConsent(prompt)) => {
                let v = prompt.view();
                let page = Page {
                    owner: who,
                    tx: v.form_tx.clone(),
                    csrf: v.form_csrf.clone(),
                };
                // Ghost bookkeeping: whose page it is.
                st.pending_owner.insert(*prompt.pending_record().key(), who);
                let reply = st.store.apply(prompt);
                st.jars[jar_index(who)].apply(&reply, st.now);
                st.pages.push(page);
                Ok(())
            }
            Ok(Authorization::Remembered(consent)) => {
                let d = consent.details();
                let lifetime = self.gate.config().lifetimes().remembered_consent;
                let approved = st.approvals.iter().any(|a| {
                    a.who == who
                        && a.client_id == d.client_id()
                        && a.redirect_uri == d.redirect_uri().as_str()
                        && a.scope == d.scope().to_scope_string()
                        && a.at.plus(lifetime) > st.now
                });
                if !approved {
                    return fail(
                        "P1 consent in this browser (A1/A4)",
                        format!(
                            "remembered consent for {} → {} that {who:?} never approved",
                            d.client_id(),
                            d.redirect_uri()
                        ),
                    );
                }
                self.go_upstream(st, who, consent, Follow::All)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn submit(
        &self,
        st: &mut St,
        who: Who,
        page: &Page,
        approve: bool,
        ctx: BrowserContext<'_>,
        genuine: bool,
        follow: Follow,
    ) -> Result<(), Violation> {
        let decision = if approve { "approve" } else { "deny" };
        let body = format!(
            "tx={}&csrf={}&decision={decision}",
            enc(&page.tx),
            enc(&page.csrf)
        );
        let Ok(form) = ConsentForm::parse(body.as_bytes()) else {
            return fail("Glue setup", "a rendered form does not parse");
        };
        let key = form.pending_key();
        let pending = st.store.take::<PendingConsent>(&key);
        let details = pending.as_ref().map(|p| p.details().clone());
        let out = self.gate.decide(form, pending, ctx, st.now);
        let outcome = match out {
            Err(e) => {
                if e.redirect_allowed() || e.response().header("location").is_some() {
                    return fail(
                        "P5 no redirect before consent",
                        format!("consent error {e} redirects"),
                    );
                }
                return Ok(());
            }
            Ok(o) => o,
        };
        if !st.accepted.insert((0, key)) {
            return fail("P4 single use", "a consent page was answered twice");
        }
        let owner = st.pending_owner.get(&key).copied();
        if owner != Some(who) || !genuine {
            return fail(
                "P1 consent in this browser (A3)",
                format!(
                    "a decision on a page shown to {owner:?} was accepted from {who:?} (genuine: {genuine})"
                ),
            );
        }
        let details = details.expect("accepted without a pending record");
        match outcome {
            Decision::Denied(to_client) => {
                let reply = st.store.apply(to_client);
                self.deliver(st, who, &reply, details.client_id(), None, false)
            }
            Decision::Approved(consent) => {
                st.approvals.push(Approval {
                    who,
                    client_id: details.client_id().to_owned(),
                    redirect_uri: details.redirect_uri().as_str().to_owned(),
                    scope: details.scope().to_scope_string(),
                    at: st.now,
                });
                self.go_upstream(st, who, consent, follow)
            }
        }
    }

    fn go_upstream(
        &self,
        st: &mut St,
        who: Who,
        consent: ConsentGiven,
        follow: Follow,
    ) -> Result<(), Violation> {
        let mut rng = SplitMix64(st.rng);
        let up = self
            .gate
            .upstream_redirect(consent, st.now, &mut |b: &mut [u8]| rng.fill(b));
        st.rng = rng.0;
        let step = Step::from(up);
        // Ghost bookkeeping: the transaction the host is about to store is `who`'s.
        let txn = step
            .ops
            .iter()
            .find(|op| op.kind() == Kind::Transaction)
            .map(|op| *op.key());
        let reply = st.store.apply(step);
        let url = reply.header("location").unwrap_or_default().to_owned();
        let endpoint = format!("{}?", self.gate.config().upstream().authorize_endpoint);
        if reply.status != 303 || !url.starts_with(&endpoint) {
            return fail("P5 upstream redirect", format!("{} to {url}", reply.status));
        }
        st.jars[jar_index(who)].apply(&reply, st.now);
        let Some(txn) = txn else {
            return fail(
                "Glue upstream",
                "an upstream redirect stores no transaction",
            );
        };
        st.txn_owner.insert(txn, who);
        st.up_links.push(Link {
            owner: who,
            url: url.clone(),
            attacker_knows: who == Who::Attacker,
            used: false,
        });
        match follow {
            Follow::BeforeUpstream => Ok(()),
            _ => self.visit_upstream(st, who, &url, false, follow),
        }
    }
}
