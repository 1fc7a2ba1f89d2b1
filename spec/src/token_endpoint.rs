//! The host's token endpoint: `POST /token` for both grants, then the resource server's
//! bearer check as the party would use the token (R42–R46, R53).

use std::sync::Arc;

use consent_gate::{
    ClientRecord, CodeRecord, GrantLookup, RefreshRecord, TokenError, TokenRequest, TokensIssued,
};
use url::form_urlencoded::Serializer;

use crate::action::{Outcome, Refusal};
use crate::actors::push_new;
use crate::ledger::{HeldCode, HeldRefresh, HeldToken, SingleUse};
use crate::world::{Identity, Minter, Party, World};

impl World {
    /// `POST /token`, authorization_code grant.
    pub(crate) fn redeem(&mut self, party: Party, held: Arc<HeldCode>) -> Outcome {
        let gate = self.server.gate.clone();
        let body = Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", &held.code)
            .append_pair("code_verifier", party.verifier())
            .append_pair("client_id", &held.client_id)
            .append_pair("redirect_uri", &held.redirect_uri)
            .finish();
        let request = match TokenRequest::parse(body.as_bytes(), None) {
            Ok(r) => r,
            Err(e) => return Outcome::Refused(token_refusal(&e)),
        };
        let client = self.store.get::<ClientRecord>(&request.client_key());
        let key = request.record_key();
        // Taken: two redemptions cannot both see an unredeemed code (A8).
        let record = self.store.take::<CodeRecord>(&key);
        let minter = Minter::Token(party);
        let mut draws = self.draws(minter);
        let result = gate.redeem_code(&request, record, client.as_ref(), self.now, &mut draws);
        self.drew(minter, &draws);
        match result {
            Ok(issued) => {
                self.spend_nonce();
                *self.ghost.redeemed.entry(key).or_default() += 1;
                let issued_at = self
                    .ghost
                    .codes
                    .iter()
                    .find(|c| c.code == key)
                    .map(|c| c.at);
                if let Some(at) = issued_at {
                    self.check_lifetime(SingleUse::Code, key, at);
                }
                self.tokens_issued(party, issued, &held.client_id, &held.redirect_uri, false)
            }
            Err(e) => self.token_failed(&e),
        }
    }

    /// `POST /token`, refresh_token grant.
    pub(crate) fn refresh(&mut self, party: Party, held: Arc<HeldRefresh>) -> Outcome {
        let gate = self.server.gate.clone();
        let body = refresh_body(&held.token, &held.client_id);
        let request = match TokenRequest::parse(body.as_bytes(), None) {
            Ok(r) => r,
            Err(e) => return Outcome::Refused(token_refusal(&e)),
        };
        let client = self.store.get::<ClientRecord>(&request.client_key());
        let key = request.record_key();
        // Got, not taken: a concurrent refresh inside the grace window must find it.
        let record = self.store.get::<RefreshRecord>(&key);
        let (grant, mark) = match &record {
            Some(r) => self.store.grant(&r.grant_key()),
            None => (None, None),
        };
        let lookup = GrantLookup::with_installation(grant.as_ref(), mark.as_ref());
        let result = gate.redeem_refresh(&request, record, lookup, client.as_ref(), self.now);
        match result {
            Ok(issued) => {
                self.ghost.refreshed.insert((key, self.now));
                self.inbox(party).refreshed.insert(key);
                let held_before = self.inboxes[party.ix()].refresh.len();
                let outcome =
                    self.tokens_issued(party, issued, &held.client_id, &held.redirect_uri, true);
                // Only a refresh that hands out a token the party did not hold yet counts
                // against the bound: a repeat inside the grace window returns the same
                // successor and makes the chain no longer.
                if self.inboxes[party.ix()].refresh.len() > held_before {
                    self.left.refreshes = self.left.refreshes.saturating_sub(1);
                }
                outcome
            }
            Err(e) => self.token_failed(&e),
        }
    }

    fn token_failed(&mut self, e: &TokenError) -> Outcome {
        // A replayed code or reused refresh token revokes the grant before the reply
        // (R43, R53): the error's own store operations.
        let _reply = self.store.apply(e.clone());
        Outcome::Refused(token_refusal(e))
    }

    /// Stores what the token endpoint returned, hands the tokens to `party`, and checks
    /// the access token at the resource server as the party would use it.
    fn tokens_issued(
        &mut self,
        party: Party,
        issued: TokensIssued,
        client_id: &str,
        redirect_uri: &str,
        refreshed: bool,
    ) -> Outcome {
        // The one executor: the redeemed code, the grant, the refresh records, and the
        // successor put-if-absent (R63), as the step's operations say.
        let reply = self.store.apply(issued);
        let json: serde_json::Value = serde_json::from_slice(&reply.body).unwrap_or_default();
        let access = json["access_token"].as_str().unwrap_or_default().to_owned();
        if let Some(rt) = json["refresh_token"].as_str() {
            match TokenRequest::parse(refresh_body(rt, client_id).as_bytes(), None) {
                Ok(request) => {
                    push_new(
                        &mut self.inbox(party).refresh,
                        Arc::new(HeldRefresh {
                            token: rt.to_owned(),
                            client_id: client_id.to_owned(),
                            redirect_uri: redirect_uri.to_owned(),
                            key: request.record_key(),
                        }),
                    );
                }
                Err(e) => {
                    self.ghost
                        .host_errors
                        .insert(format!("unusable refresh token: {e}"));
                }
            }
        }
        let gate = self.server.gate.clone();
        let principal = gate
            .verify_bearer(Some(&format!("Bearer {access}")), self.now)
            .and_then(|claims| {
                let (grant, mark) = self.store.grant(&claims.grant_key());
                let lookup = GrantLookup::with_installation(grant.as_ref(), mark.as_ref());
                claims.confirm(lookup, self.now)
            });
        let subject = principal
            .ok()
            .and_then(|p| Identity::from_subject(p.subject()));
        match subject {
            Some(subject) => {
                self.inbox(party).tokens.insert(Arc::new(HeldToken {
                    subject,
                    client_id: client_id.to_owned(),
                    redirect_uri: redirect_uri.to_owned(),
                    refreshed,
                }));
                Outcome::Tokens {
                    party,
                    subject,
                    refreshed,
                }
            }
            None => {
                self.ghost
                    .host_errors
                    .insert("a freshly issued access token does not verify".into());
                Outcome::Refused(Refusal::Other("unusable access token".into()))
            }
        }
    }
}

fn refresh_body(token: &str, client_id: &str) -> String {
    Serializer::new(String::new())
        .append_pair("grant_type", "refresh_token")
        .append_pair("refresh_token", token)
        .append_pair("client_id", client_id)
        .finish()
}

fn token_refusal(e: &TokenError) -> Refusal {
    match e {
        TokenError::InvalidGrant(why) => match *why {
            "unknown code" | "unknown refresh token" => Refusal::Unknown,
            "code expired" | "refresh token expired" => Refusal::Expired,
            "PKCE verification failed" => Refusal::Pkce,
            "code was issued to another client" | "refresh token was issued to another client" => {
                Refusal::WrongClient
            }
            "grant revoked" => Refusal::GrantRevoked,
            "redirect_uri mismatch" => Refusal::RedirectMismatch,
            other => Refusal::Other(other.to_owned()),
        },
        TokenError::CodeReused { .. } => Refusal::CodeReused,
        TokenError::RefreshReused { .. } => Refusal::RefreshReused,
        other => Refusal::Other(other.to_string()),
    }
}
