//! Renewing a grant's upstream token with the upstream's refresh token (R66; RFC 6749 §6),
//! as data: the request to send, and what its answer makes of the grant.
//!
//! The upstream's access and refresh tokens live in the grant's user data, sealed under the
//! grant secret that only the client's tokens carry (R65). So the renewal happens while
//! serving a request that presents one: the [`Principal`] of that request holds the grant
//! secret (privately), and the renewed user data is sealed under the same secret, with a
//! fresh salt, so every access and refresh token of the grant still opens it.
//!
//! The host makes the renewal single-flight per grant (R66): a provider that rotates
//! refresh tokens (a GitHub App) answers a second use of one with `invalid_grant`, which
//! would end the grant. `consent_gate_store::Endpoints::bearer` does it with a lock per
//! grant and a second read of the grant after the lock.

use crate::bearer::Principal;
use crate::callback::upstream_token_request;
use crate::crypto::{Sealed, fresh32};
use crate::error::{UpstreamError, UpstreamRefreshError};
use crate::grant::GrantRecord;
use crate::params::append_pair;
use crate::reply::{HttpRequest, Reply, UpstreamResponse};
use crate::step::{Kind, Op, Step};
use crate::upstream_json::parse_token_response;
use crate::{Entropy, Gate, UnixTime};

/// How long before the upstream token's expiry it is renewed: a call to the upstream API
/// made on this request should not meet a token that expires on the way.
pub const UPSTREAM_REFRESH_MARGIN: u64 = 60;

impl Principal {
    /// Whether the upstream token should be renewed now (R66): it expires within
    /// [`UPSTREAM_REFRESH_MARGIN`] seconds (or has expired) and the grant holds an upstream
    /// refresh token. Never for a token that does not expire (a GitHub OAuth App's).
    pub fn upstream_refresh_due(&self, now: UnixTime) -> bool {
        self.upstream_refresh.is_some()
            && self
                .upstream_expires_at
                .is_some_and(|at| now.plus(UPSTREAM_REFRESH_MARGIN) >= at)
    }

    /// Whether the upstream token is still valid at `now` (or never expires): a principal
    /// whose renewal failed for a passing reason may still serve until then.
    pub fn upstream_valid(&self, now: UnixTime) -> bool {
        self.upstream_token.is_some() && self.upstream_expires_at.is_none_or(|at| now < at)
    }
}

impl Gate {
    /// The refresh request for `principal`'s upstream token (RFC 6749 §6:
    /// `grant_type=refresh_token`, the refresh token, our upstream client credentials in
    /// the body, like the code exchange), or `None` when its grant holds no upstream
    /// refresh token. The host sends it once per grant at a time (R66).
    pub fn upstream_refresh_request(&self, principal: &Principal) -> Option<HttpRequest> {
        let refresh = principal.upstream_refresh.as_ref()?;
        let up = &self.config.upstream;
        let mut body = String::with_capacity(256 + refresh.secret().len());
        append_pair(&mut body, "grant_type", "refresh_token");
        append_pair(&mut body, "refresh_token", refresh.secret());
        append_pair(&mut body, "client_id", &up.client_id);
        append_pair(&mut body, "client_secret", up.client_secret.secret());
        Some(upstream_token_request(&up.token_endpoint, body))
    }

    /// Accepts the upstream's answer to [`upstream_refresh_request`](Self::upstream_refresh_request)
    /// for `principal`, whose grant the host read again (after taking the grant's lock).
    ///
    /// On success: the principal with the new upstream token, and the step that stores the
    /// renewed grant (its reply is an empty 204: nothing to send, serve the request). The
    /// new refresh token replaces the old one when the upstream sent one (a rotating
    /// provider); otherwise the old one stays (Google). No `expires_in` in the answer means
    /// the new token does not expire.
    ///
    /// A refusal by the upstream is [`UpstreamRefreshError::Refused`]: apply
    /// [`upstream_refresh_failed`](Self::upstream_refresh_failed), which deletes the grant
    /// (R66: the client must sign in again).
    pub fn accept_upstream_refresh(
        &self,
        principal: &Principal,
        grant: Option<&GrantRecord>,
        response: UpstreamResponse<'_>,
        now: UnixTime,
        entropy: &mut (impl Entropy + ?Sized),
    ) -> Result<(Principal, Step), UpstreamRefreshError> {
        let sent = principal
            .upstream_refresh
            .as_ref()
            .ok_or(UpstreamRefreshError::NoRefreshToken)?;
        let grant = grant
            .filter(|g| {
                g.mac_is_valid(&self.config.keys)
                    && g.grant_id() == &principal.grant_id
                    && now < g.expires_at()
            })
            .ok_or(UpstreamRefreshError::GrantChanged)?;
        // The refresh token sent must be the one the grant holds now: if another server
        // renewed the grant meanwhile, a refusal of the old token must not end the grant,
        // and an answer to it must not overwrite the newer one.
        let user = grant
            .open_user(&principal.secret)
            .filter(|u| {
                u.subject == principal.subject() && u.upstream_refresh.as_ref() == Some(sent)
            })
            .ok_or(UpstreamRefreshError::GrantChanged)?;
        let tokens = match parse_token_response(&response) {
            Ok(tokens) => tokens,
            // An answer in OAuth's error form (RFC 6749 §5.2: `invalid_grant` when the
            // refresh token was revoked, expired or used), or a plain 400/401: the
            // upstream will not renew it again.
            Err(cause @ (UpstreamError::ErrorResponse(_) | UpstreamError::Status(400 | 401))) => {
                return Err(UpstreamRefreshError::Refused {
                    cause,
                    revoke_grant: grant.key(),
                });
            }
            Err(cause) => return Err(UpstreamRefreshError::Unavailable(cause)),
        };
        let mut renewed = user;
        renewed.upstream_token = Some(tokens.access_token);
        if let Some(rotated) = tokens.refresh_token {
            renewed.upstream_refresh = Some(rotated);
        }
        let upstream_expires_at = tokens.expires_in.map(|s| now.plus(s));
        let mut salt = [0u8; 16];
        salt.copy_from_slice(&fresh32(entropy)[..16]);
        let mut record = grant.renewed(&principal.secret, salt, &renewed, upstream_expires_at);
        record.mac = record.compute_mac(&self.config.keys);
        let mut principal = principal.clone();
        principal.upstream_token = renewed.upstream_token.clone();
        principal.upstream_refresh = renewed.upstream_refresh.clone();
        principal.upstream_expires_at = upstream_expires_at;
        let step = Step {
            ops: vec![Op::put(&record)],
            reply: Reply::text(204, ""),
        };
        Ok((principal, step))
    }

    /// The step for a failed renewal: it deletes the grant when the upstream refused
    /// (R66), and answers 401 `invalid_token` with the challenge (R2, R5).
    pub fn upstream_refresh_failed(&self, error: &UpstreamRefreshError) -> Step {
        Step {
            ops: error
                .revoke_grant()
                .map(|key| Op::delete(Kind::Grant, *key))
                .into_iter()
                .collect(),
            reply: self.unauthorized(error.bearer_error()),
        }
    }
}
