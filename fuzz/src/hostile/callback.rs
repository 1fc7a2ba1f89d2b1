//! The callback side of the harness: the kit's GitHub (approving at once, single-use
//! PKCE-bound codes, a token endpoint and a user endpoint), the callback, the delivery of
//! client redirects to whoever owns the host, and the token endpoint's clients.

use consent_gate::{
    Callback, ClientRecord, CodeRecord, GrantRecord, RefreshRecord, Reply, TokenRequest,
    TransactionRecord,
};
use consent_gate_spec::kit::Nav;

use super::*;
use crate::fixture::{SplitMix64, query_param};
use crate::oracle::location_targets_client;

impl Hostile {
    /// The upstream: a returning user is approved at once (GitHub skips its consent
    /// screen, docs/upstreams.md#github-returning-user); the code is bound to the PKCE challenge.
    pub(super) fn visit_upstream(
        &self,
        st: &mut St,
        who: Who,
        url: &str,
        deny: bool,
        follow: Follow,
    ) -> Result<(), Violation> {
        if query_param(url, "state").is_none() {
            return Ok(());
        }
        let query = if deny {
            st.github.refuse(url, "access_denied")
        } else {
            st.github.authorize(who.github(), url)
        };
        st.callbacks.push(Link {
            owner: who,
            url: query.clone(),
            attacker_knows: who == Who::Attacker,
            used: false,
        });
        match follow {
            Follow::All => self.load_callback(st, who, &query, false),
            Follow::LoseCallbackReply => self.load_callback(st, who, &query, true),
            Follow::BeforeUpstream | Follow::BeforeCallback => Ok(()),
        }
    }

    pub(super) fn load_callback(
        &self,
        st: &mut St,
        who: Who,
        query: &str,
        lost: bool,
    ) -> Result<(), Violation> {
        for l in st.callbacks.iter_mut().filter(|l| l.url == query) {
            l.used = true;
        }
        let raw = query.split_once('?').map_or(query, |(_, q)| q);
        let Ok(cb) = Callback::parse(raw.as_bytes()) else {
            return Ok(());
        };
        let key = cb.transaction_key();
        let txn = st.store.take::<TransactionRecord>(&key);
        let client_id = txn.as_ref().map(|t| t.details().client_id().to_owned());
        let headers = st.jars[jar_index(who)].request(Nav::CrossSite, st.now);
        let out = self
            .gate
            .verify_callback(cb, txn, headers.context(), st.now);
        let verified = match out {
            Err(e) => {
                let r = e.response();
                return match (e.redirect_allowed(), client_id) {
                    (true, Some(id)) => self.deliver(st, who, &r, &id, None, lost),
                    (true, None) => fail(
                        "P5 error redirect",
                        "a callback error redirects without a transaction",
                    ),
                    (false, _) if r.header("location").is_some() => {
                        fail("P5 error redirect", format!("{e} redirects"))
                    }
                    (false, _) => Ok(()),
                };
            }
            Ok(v) => v,
        };
        let client_id = client_id.expect("verified without a transaction");
        if !st.accepted.insert((1, key)) {
            return fail("P4 single use (A7)", "an upstream state was accepted twice");
        }
        let owner = st.txn_owner.get(&key).copied();
        if owner != Some(who) {
            return fail(
                "P3 callback in the consenting browser (A2/A6)",
                format!("{owner:?}'s transaction completed in {who:?}'s browser"),
            );
        }
        #[cfg(consent_gate_faults)]
        if let Some(r) = verified.reinsert() {
            st.store.put(r);
        }
        // GitHub's token endpoint: its codes are single-use and PKCE-bound.
        let answer = st.github.token(verified.token_request());
        let auth = match verified.accept_token_response(answer.as_response()) {
            Ok(a) => a,
            Err(e) => return self.deliver(st, who, &e.response(), &client_id, None, lost),
        };
        let user_request = auth.user_request();
        let user = user_request
            .headers
            .iter()
            .find(|(n, _)| *n == "authorization")
            .and_then(|(_, v)| v.strip_prefix("Bearer "))
            .and_then(|t| st.github.token_user(t))
            .and_then(Who::of_github);
        let doc = st.github.user(&user_request);
        let client = self.client(st, &client_id);
        let mut rng = SplitMix64(st.rng);
        let issued = self.gate.issue_code(
            auth,
            doc.as_response(),
            client.as_ref(),
            st.now,
            &mut |b: &mut [u8]| rng.fill(b),
        );
        st.rng = rng.0;
        match issued {
            Err(e) => self.deliver(st, who, &e.response(), &client_id, None, lost),
            Ok(issued) => {
                let reply = st.store.apply(issued);
                self.deliver(st, who, &reply, &client_id, user, lost)
            }
        }
    }

    /// The browser follows a redirect to a client: P5, then whoever owns the host gets
    /// the query. Loopback is the browser's own machine.
    pub(super) fn deliver(
        &self,
        st: &mut St,
        who: Who,
        reply: &Reply,
        client_id: &str,
        user: Option<Who>,
        lost: bool,
    ) -> Result<(), Violation> {
        let loc = reply.header("location").unwrap_or_default().to_owned();
        let client = self
            .client(st, client_id)
            .expect("a redirect for an unregistered client");
        if reply.status != 303 || !location_targets_client(&loc, &client) {
            return fail(
                "P5 exact redirect (A10)",
                format!(
                    "{} to {loc:?} for {:?}",
                    reply.status,
                    client.redirect_uris()
                ),
            );
        }
        if lost {
            return Ok(());
        }
        st.jars[jar_index(who)].apply(reply, st.now);
        // Error redirects carry no user; only a code issued by the server does.
        let (Some(code), Some(user)) = (query_param(&loc, "code"), user) else {
            return Ok(());
        };
        let host = url::Url::parse(&loc)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        let receiver = match host.as_str() {
            "127.0.0.1" | "localhost" | "[::1]" => who,
            "app.example" => Who::Victim,
            _ => Who::Attacker,
        };
        let state = query_param(&loc, "state").unwrap_or_default();
        let flow = (receiver == Who::Victim && client_id == st.client_list[0].0)
            .then(|| {
                st.honest_flows
                    .iter()
                    .find(|(s, _)| *s == state)
                    .map(|(_, v)| v.clone())
            })
            .flatten();
        if flow.is_some() && user != Who::Victim {
            return fail(
                "P6 no login CSRF (A6)",
                "the honest client accepted a code for the attacker's identity",
            );
        }
        let attacker_flow = receiver == Who::Attacker && state == "attacker-state";
        let verifier = flow
            .clone()
            .or_else(|| attacker_flow.then(|| ATTACKER_VERIFIER.to_owned()));
        st.held.push(Held {
            holder: receiver,
            value: code.clone(),
            user,
            delivered: true,
            client_id: client_id.to_owned(),
            verifier,
        });
        // The honest client redeems what it asked for at once.
        match flow {
            Some(v) => self.redeem(st, Who::Victim, &code, client_id, &v),
            None => Ok(()),
        }
    }

    pub(super) fn redeem(
        &self,
        st: &mut St,
        who: Who,
        code: &str,
        client_id: &str,
        verifier: &str,
    ) -> Result<(), Violation> {
        let body = format!(
            "grant_type=authorization_code&code={}&code_verifier={verifier}&client_id={}",
            enc(code),
            enc(client_id)
        );
        let Ok(req) = TokenRequest::parse(body.as_bytes(), None) else {
            return Ok(());
        };
        let key = req.record_key();
        let record = st.store.take::<CodeRecord>(&key);
        let client = st.store.get::<ClientRecord>(&req.client_key());
        let mut rng = SplitMix64(st.rng);
        let out = self.gate.redeem_code(
            &req,
            record,
            client.as_ref(),
            st.now,
            &mut |b: &mut [u8]| rng.fill(b),
        );
        st.rng = rng.0;
        let t = match out {
            // A replayed code revokes its grant (R43): the error's own operations.
            Err(e) => {
                let _sent = st.store.apply(e);
                return Ok(());
            }
            Ok(t) => t,
        };
        if !st.accepted.insert((2, key)) {
            return fail("P4 single use (A8)", "an MCP code was redeemed twice");
        }
        let reply = st.store.apply(t);
        self.take_tokens(st, who, &reply.body)
    }

    pub(super) fn refresh(&self, st: &mut St, who: Who, h: &HeldRefresh) -> Result<(), Violation> {
        let body = format!(
            "grant_type=refresh_token&refresh_token={}&client_id={}",
            enc(&h.token),
            enc(&h.client_id)
        );
        let Ok(req) = TokenRequest::parse(body.as_bytes(), None) else {
            return Ok(());
        };
        let record = st.store.get::<RefreshRecord>(&req.record_key());
        let grant = record
            .as_ref()
            .and_then(|r| st.store.get::<GrantRecord>(&r.grant_key()));
        let client = st.store.get::<ClientRecord>(&req.client_key());
        match self
            .gate
            .redeem_refresh(&req, record, grant.as_ref(), client.as_ref(), st.now)
        {
            // A reused refresh token revokes its grant (R53).
            Err(e) => {
                let _sent = st.store.apply(e);
                Ok(())
            }
            // The successor is put-if-absent: never over one rotated since (R63, A22).
            Ok(t) => {
                let reply = st.store.apply(t);
                self.take_tokens(st, who, &reply.body)
            }
        }
    }

    /// A token reply reaches `who`: the access token must verify, and the refresh token
    /// is kept for later.
    fn take_tokens(&self, st: &mut St, who: Who, body: &[u8]) -> Result<(), Violation> {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let at = v["access_token"].as_str().unwrap_or_default();
        let claims = match self
            .gate
            .verify_bearer(Some(&format!("Bearer {at}")), st.now)
        {
            Ok(c) => c,
            Err(e) => {
                return fail(
                    "Glue tokens",
                    format!("a token just issued does not verify: {e}"),
                );
            }
        };
        let grant = st.store.get::<GrantRecord>(&claims.grant_key());
        let Ok(p) = claims.confirm(grant.as_ref(), st.now) else {
            return fail("Glue tokens", "a token just issued names no live grant");
        };
        if who == Who::Attacker
            && p.subject() == subject(Who::Victim)
            && !self.victim_approved_attacker(st, p.client_id(), None)
        {
            return fail(
                "P2 no confused deputy (A1/A2/A8)",
                format!(
                    "the attacker holds a token for the victim as client {}",
                    p.client_id()
                ),
            );
        }
        if let Some(r) = v["refresh_token"].as_str() {
            st.held_refresh.push(HeldRefresh {
                holder: who,
                token: r.to_owned(),
                client_id: p.client_id().to_owned(),
            });
        }
        Ok(())
    }

    /// Whether the victim approved, on a page in its own browser, a client the attacker
    /// registered (and, when given, for this redirect URI).
    fn victim_approved_attacker(&self, st: &St, client_id: &str, redirect: Option<&str>) -> bool {
        let attackers = st
            .client_list
            .iter()
            .any(|(id, by)| id == client_id && *by == Who::Attacker);
        attackers
            && st.approvals.iter().any(|a| {
                a.who == Who::Victim
                    && a.client_id == client_id
                    && redirect.is_none_or(|r| r == a.redirect_uri)
            })
    }

    /// The state properties, checked after every step (P2).
    pub fn invariants(&self, st: &St) -> Result<(), Violation> {
        for h in &st.held {
            if h.holder == Who::Attacker
                && h.delivered
                && h.user == Who::Victim
                && !self.victim_approved_attacker(st, &h.client_id, None)
            {
                return fail(
                    "P2 no confused deputy (A1/A2)",
                    format!(
                        "the server sent the attacker a code for the victim as client {}",
                        h.client_id
                    ),
                );
            }
        }
        Ok(())
    }
}
