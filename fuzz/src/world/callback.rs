//! The callback side of the world: the upstream (approving at once, issuing
//! PKCE-bound codes, a token endpoint and a user endpoint), the callback, the delivery of
//! client redirects to whoever owns the host, and the token endpoint's clients.

use consent_gate::{BrowserContext, Callback, Reply, TokenRequest};

use super::*;
use crate::fixture::{SplitMix64, form_param, query_param};
use crate::oracle::location_targets_client;

impl World {
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
        let Some(state) = query_param(url, "state") else {
            return Ok(());
        };
        let query = if deny {
            format!("error=access_denied&state={}", enc(&state))
        } else {
            st.up_n += 1;
            let code = format!("ghc{:04}", st.up_n);
            let challenge = query_param(url, "code_challenge").unwrap_or_default();
            st.up_codes.insert(
                code.clone(),
                UpCode {
                    user: who,
                    challenge,
                    used: false,
                },
            );
            format!(
                "code={code}&state={}&iss=https%3A%2F%2Fgithub.com%2Flogin%2Foauth",
                enc(&state)
            )
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
        let Ok(cb) = Callback::parse(query.as_bytes()) else {
            return Ok(());
        };
        let key = cb.transaction_key();
        let txn = st.txns.remove(&key);
        let client_id = txn.as_ref().map(|t| t.details().client_id().to_owned());
        let cookies = st.jars[jar_index(who)].header();
        let out =
            self.gate
                .verify_callback(cb, txn, BrowserContext::with_cookies(&cookies), st.now);
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
            st.txns.insert(*r.key(), r.clone());
        }
        // The upstream's token endpoint.
        let body = verified.token_request().body.clone();
        let code = form_param(&body, "code").unwrap_or_default();
        let verifier = form_param(&body, "code_verifier").unwrap_or_default();
        let user = match st.up_codes.get_mut(&code) {
            Some(c) if !c.used && c.challenge == s256(&verifier) => {
                c.used = true;
                Some(c.user)
            }
            _ => None,
        };
        let token_body = match user {
            Some(u) => {
                st.up_n += 1;
                let t = format!("gho_{:?}{}", u, st.up_n);
                st.up_tokens.insert(t.clone(), u);
                format!(r#"{{"access_token":"{t}","token_type":"bearer","scope":"read:user"}}"#)
            }
            None => r#"{"error":"bad_verification_code","error_description":"The code passed is incorrect or expired."}"#.to_owned(),
        };
        let auth = match verified.accept_token_response(json(token_body.as_bytes())) {
            Ok(a) => a,
            Err(e) => return self.deliver(st, who, &e.response(), &client_id, None, lost),
        };
        let bearer = auth
            .user_request()
            .headers
            .iter()
            .find(|(n, _)| *n == "authorization")
            .map(|(_, v)| v.clone());
        let token = bearer
            .as_deref()
            .and_then(|b| b.strip_prefix("Bearer "))
            .unwrap_or_default();
        let user = st.up_tokens.get(token).copied();
        let doc = match user {
            Some(Who::Victim) => r#"{"login":"victim","id":1}"#,
            Some(Who::Attacker) => r#"{"login":"mallory","id":2}"#,
            None => r#"{"message":"Bad credentials"}"#,
        };
        let client = self.client(st, &client_id);
        let mut rng = SplitMix64(st.rng);
        let issued = self.gate.issue_code(
            auth,
            json(doc.as_bytes()),
            client.as_ref(),
            st.now,
            &mut |b: &mut [u8]| rng.fill(b),
        );
        st.rng = rng.0;
        match issued {
            Err(e) => self.deliver(st, who, &e.response(), &client_id, None, lost),
            Ok(issued) => {
                let (record, reply) = issued.into_parts();
                st.codes.insert(*record.key(), record);
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
        let record = st.codes.remove(&key);
        let client = st.clients.get(&req.client_key()).cloned();
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
            Err(e) => {
                if let Some(g) = e.revoke_grant() {
                    st.grants.remove(g);
                }
                return Ok(());
            }
            Ok(t) => t,
        };
        if !st.accepted.insert((2, key)) {
            return fail("P4 single use (A8)", "an MCP code was redeemed twice");
        }
        if let Some(c) = t.code {
            st.codes.insert(*c.key(), c);
        }
        if let Some(g) = t.grant {
            st.grants.insert(g.key(), g);
        }
        for r in t.refresh {
            st.refresh.insert(*r.key(), r);
        }
        self.take_tokens(st, who, &t.reply.body)
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
        let record = st.refresh.get(&req.record_key()).cloned();
        let grant = record
            .as_ref()
            .and_then(|r| st.grants.get(&r.grant_key()))
            .cloned();
        let client = st.clients.get(&req.client_key()).cloned();
        match self
            .gate
            .redeem_refresh(&req, record, grant.as_ref(), client.as_ref(), st.now)
        {
            Err(e) => {
                if let Some(g) = e.revoke_grant() {
                    st.grants.remove(g);
                }
                Ok(())
            }
            Ok(t) => {
                for r in t.refresh {
                    st.refresh.insert(*r.key(), r);
                }
                // Put-if-absent: never over a successor rotated since (R63, A22).
                if let Some(r) = t.successor {
                    st.refresh.entry(*r.key()).or_insert(r);
                }
                self.take_tokens(st, who, &t.reply.body)
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
        let grant = st.grants.get(&claims.grant_key()).cloned();
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
