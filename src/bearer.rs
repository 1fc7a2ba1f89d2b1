//! MCP access tokens: minting, bearer verification at the MCP endpoint, and the 401/403
//! challenges (R2, R5, R49–R51, R54).
//!
//! An access token is `cga_` + base64url(payload ‖ HMAC-SHA256(payload)). The payload
//! names the key, expiry, grant, the grant secret that opens the grant's user data
//! (docs/design.md#at-rest), audience hash, client, subject and scope. Verification
//! is one HMAC over ~100 bytes with a pre-keyed state: no store lookup, no allocation
//! beyond the decode. Revocation is the grant's existence, checked by
//! [`BearerClaims::confirm`].

use core::fmt;

use crate::at_rest::GrantSecret;
use crate::crypto::{Keys, Sealed, StoreKey, UpstreamRefreshToken, UpstreamToken, unb64};
use crate::error::BearerError;
use crate::grant::{GrantLookup, GrantRecord};
use crate::reply::{HttpRequest, Reply};
use crate::scope::ScopeSet;
use crate::{Gate, UnixTime};

const PREFIX: &str = "cga_";
const VERSION: u8 = 1;
const MAX_TOKEN: usize = 4096;

fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..usize::from(len)]);
}

/// The client id, grant key and grant secret of a valid access token of ours, for
/// revocation (the secret opens the grant for revoking upstream too, R66).
pub(crate) fn access_token_grant(
    gate: &Gate,
    token: &str,
    now: UnixTime,
) -> Option<(String, StoreKey, GrantSecret)> {
    let claims = gate.decode_access_token(token, now).ok()?;
    let key = claims.grant_key();
    Some((claims.client_id, key, claims.secret))
}

pub(crate) fn mint_access_token(
    gate: &Gate,
    grant: &GrantRecord,
    secret: &GrantSecret,
    subject: &str,
    scope: &ScopeSet,
    now: UnixTime,
) -> String {
    let keys = &gate.config.keys;
    let mut p = Vec::with_capacity(128);
    p.push(VERSION);
    p.extend_from_slice(&keys.current_id().to_be_bytes());
    p.extend_from_slice(&now.plus(gate.config.lifetimes.access_token).0.to_be_bytes());
    p.extend_from_slice(grant.grant_id());
    p.extend_from_slice(&secret.0);
    p.extend_from_slice(&gate.config.audience);
    put_str(&mut p, grant.client_id());
    put_str(&mut p, subject);
    put_str(&mut p, scope.as_str());
    let mut w = keys.mac("access token");
    w.bytes(&p);
    let tag = w.finish();
    p.extend_from_slice(&tag);
    let mut s = String::with_capacity(PREFIX.len() + p.len() * 4 / 3 + 4);
    s.push_str(PREFIX);
    crate::crypto::b64_into(&p, &mut s);
    s
}

/// A reader over the payload that fails instead of panicking.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn str(&mut self) -> Option<&'a str> {
        let len = u16::from_be_bytes(self.take(2)?.try_into().ok()?);
        core::str::from_utf8(self.take(usize::from(len))?).ok()
    }
}

/// A bearer token whose MAC, expiry and audience verified; its grant is not yet checked.
#[must_use = "confirm the grant still exists before trusting the token"]
pub struct BearerClaims<'g> {
    grant_id: [u8; 16],
    secret: GrantSecret,
    client_id: String,
    subject: String,
    scope: ScopeSet,
    keys: &'g Keys,
}

impl fmt::Debug for BearerClaims<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerClaims")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl BearerClaims<'_> {
    /// The store key of the grant to look up.
    pub fn grant_key(&self) -> StoreKey {
        StoreKey::derive("grant", &self.grant_id)
    }

    /// The revocation check: the grant must still exist (a replayed code or a reused
    /// refresh token deletes it, R43/R53), unexpired and unedited (its MAC verifies: a
    /// grant whose upstream token was swapped in the store is refused, A16); and the
    /// upstream token it holds must not have expired (R66:
    /// [`BearerError::UpstreamExpired`], so a host can renew it upstream where it can, or
    /// answer `401 invalid_token` and the client signs in again). A host that renews
    /// upstream tokens confirms with [`confirm_refreshable`](Self::confirm_refreshable).
    ///
    /// `grant` is what the host read under [`grant_key`](Self::grant_key), with the
    /// revocation mark of its installation for a metadata-document client's grant (R59,
    /// [`GrantLookup::with_installation`]); a bare `Option<&GrantRecord>` refuses such a
    /// grant.
    pub fn confirm<'a>(
        self,
        grant: impl Into<GrantLookup<'a>>,
        now: UnixTime,
    ) -> Result<Principal, BearerError> {
        self.confirm_with(grant.into(), now, false)
    }

    /// [`confirm`](Self::confirm) for a host that renews upstream tokens (R66): an
    /// expired upstream token is no refusal when the grant holds an upstream refresh
    /// token. Such a principal carries no upstream token
    /// ([`Principal::upstream_token`] is `None`) and is
    /// [`upstream_refresh_due`](Principal::upstream_refresh_due): renew it with
    /// [`Gate::upstream_refresh_request`] and [`Gate::accept_upstream_refresh`], or
    /// answer [`BearerError::UpstreamExpired`].
    pub fn confirm_refreshable<'a>(
        self,
        grant: impl Into<GrantLookup<'a>>,
        now: UnixTime,
    ) -> Result<Principal, BearerError> {
        self.confirm_with(grant.into(), now, true)
    }

    fn confirm_with(
        self,
        grant: GrantLookup<'_>,
        now: UnixTime,
        refreshable: bool,
    ) -> Result<Principal, BearerError> {
        // A revoked installation's grant counts as gone (R59).
        match grant.standing(self.keys) {
            Some(g)
                if g.grant_id() == &self.grant_id
                    && now < g.expires_at()
                    && g.mac_is_valid(self.keys) =>
            {
                let expired = g.upstream_expired(now);
                if expired && !refreshable {
                    return Err(BearerError::UpstreamExpired);
                }
                // The user data opens only under this grant's secret, which the token
                // carries and the store does not; a ciphertext copied from another grant
                // does not open here (A16).
                let user = g
                    .open_user(&self.secret)
                    .filter(|u| u.subject == self.subject)
                    .ok_or(BearerError::Revoked)?;
                if expired && user.upstream_refresh.is_none() {
                    return Err(BearerError::UpstreamExpired);
                }
                Ok(Principal {
                    grant_key: self.grant_key(),
                    subject: self.subject,
                    client_id: self.client_id,
                    scope: self.scope,
                    display_name: user.display_name,
                    // An expired upstream token is never handed out (R66).
                    upstream_token: user.upstream_token.filter(|_| !expired),
                    upstream_refresh: user.upstream_refresh,
                    upstream_expires_at: g.upstream_expires_at(),
                    grant_id: self.grant_id,
                    secret: self.secret,
                })
            }
            _ => Err(BearerError::Revoked),
        }
    }
}

/// Who is calling the MCP endpoint: verified token, live grant.
#[derive(Clone, PartialEq, Eq)]
pub struct Principal {
    subject: String,
    client_id: String,
    scope: ScopeSet,
    grant_key: StoreKey,
    display_name: Option<String>,
    pub(crate) upstream_token: Option<UpstreamToken>,
    /// The upstream's refresh token, to renew `upstream_token` (R66); never public.
    pub(crate) upstream_refresh: Option<UpstreamRefreshToken>,
    pub(crate) upstream_expires_at: Option<UnixTime>,
    /// The grant's id and secret, which the request's token carried: the key an upstream
    /// refresh seals the renewed user data under, so the client's tokens still open it
    /// (R65, R66). Never public, never in `Debug`.
    pub(crate) grant_id: [u8; 16],
    pub(crate) secret: GrantSecret,
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("subject", &self.subject)
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl Principal {
    /// The upstream subject (`github:1`).
    pub fn subject(&self) -> &str {
        &self.subject
    }
    /// The MCP client acting for the user.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }
    /// The granted scopes.
    pub fn scope(&self) -> &ScopeSet {
        &self.scope
    }
    /// The grant this request is made under.
    pub fn grant_key(&self) -> &StoreKey {
        &self.grant_key
    }
    /// The upstream login or name, for display.
    pub fn display_name(&self) -> Option<&str> {
        self.display_name.as_deref()
    }
    /// The user's upstream access token, for the server's own calls to the upstream API
    /// on this request. Decrypted from the grant with the secret this request's token
    /// carries; never send it to an MCP client (R41, R50).
    pub fn upstream_token(&self) -> Option<&UpstreamToken> {
        self.upstream_token.as_ref()
    }
    /// When the upstream token expires, if the upstream said; `None` for a token that does
    /// not expire (a GitHub OAuth App's).
    pub fn upstream_expires_at(&self) -> Option<UnixTime> {
        self.upstream_expires_at
    }
}

impl Gate {
    /// The request for the upstream's user API on `principal`'s behalf, with the upstream
    /// token its grant carries (for a tool that asks the upstream who the user is, or
    /// as the model of any upstream API call); `None` when the grant carries none.
    pub fn upstream_user_request(&self, principal: &Principal) -> Option<HttpRequest> {
        let token = principal.upstream_token.as_ref()?;
        let user_endpoint = &self.config.upstream().user_endpoint;
        Some(HttpRequest::upstream_user(user_endpoint, token))
    }
}

impl Gate {
    /// Verifies `Authorization: Bearer …` (R49, R50, R51): ours (MAC under a known key),
    /// unexpired, for this resource. Upstream tokens and anything else are `Invalid`.
    /// Pass the header value, or `None` when absent; the query string is never read.
    pub fn verify_bearer(
        &self,
        authorization: Option<&str>,
        now: UnixTime,
    ) -> Result<BearerClaims<'_>, BearerError> {
        let header = authorization.ok_or(BearerError::Missing)?;
        let (scheme, token) = header.split_once(' ').ok_or(BearerError::Invalid)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(BearerError::Missing);
        }
        self.decode_access_token(token.trim_start_matches(' '), now)
    }

    /// Verifies an access token string: ours, unexpired, for this resource.
    fn decode_access_token(
        &self,
        token: &str,
        now: UnixTime,
    ) -> Result<BearerClaims<'_>, BearerError> {
        if token.len() > MAX_TOKEN {
            return Err(BearerError::Invalid);
        }
        let raw = token
            .strip_prefix(PREFIX)
            .and_then(unb64)
            .ok_or(BearerError::Invalid)?;
        if raw.len() < 1 + 4 + 32 {
            return Err(BearerError::Invalid);
        }
        let (payload, tag) = raw.split_at(raw.len() - 32);
        let mut r = Reader(payload);
        if r.take(1) != Some(&[VERSION][..]) {
            return Err(BearerError::Invalid);
        }
        let kid = u32::from_be_bytes(
            r.take(4)
                .ok_or(BearerError::Invalid)?
                .try_into()
                .map_err(|_| BearerError::Invalid)?,
        );
        let mut mac = self
            .config
            .keys
            .mac_with(kid, "access token")
            .ok_or(BearerError::Invalid)?;
        mac.bytes(payload);
        if !mac.verify(tag) {
            return Err(BearerError::Invalid);
        }
        // Authentic from here on: a malformed payload is our own bug, still an error.
        let exp = r.u64().ok_or(BearerError::Invalid)?;
        let grant_id: [u8; 16] = r
            .take(16)
            .and_then(|g| g.try_into().ok())
            .ok_or(BearerError::Invalid)?;
        let secret = GrantSecret(
            r.take(32)
                .and_then(|s| s.try_into().ok())
                .ok_or(BearerError::Invalid)?,
        );
        let aud = r.take(16).ok_or(BearerError::Invalid)?;
        let client_id = r.str().ok_or(BearerError::Invalid)?.to_owned();
        let subject = r.str().ok_or(BearerError::Invalid)?.to_owned();
        let scope = r
            .str()
            .and_then(ScopeSet::parse)
            .ok_or(BearerError::Invalid)?;
        if now.0 >= exp {
            return Err(BearerError::Expired);
        }
        if aud != self.config.audience {
            return Err(BearerError::WrongAudience);
        }
        Ok(BearerClaims {
            grant_id,
            secret,
            client_id,
            subject,
            scope,
            keys: &self.config.keys,
        })
    }

    fn challenge(&self, error: Option<&str>, scope: &ScopeSet) -> String {
        let mut v = format!(
            "Bearer resource_metadata=\"{}\"",
            self.protected_resource_metadata_url()
        );
        if !scope.is_empty() {
            v.push_str(&format!(", scope=\"{scope}\""));
        }
        if let Some(e) = error {
            v.push_str(&format!(", error=\"{e}\""));
        }
        v
    }

    /// The 401 for a request without a valid token (R2, R5; RFC 6750 §3: `error` only
    /// when a token was presented).
    pub fn unauthorized(&self, error: BearerError) -> Reply {
        let www = self.challenge(error.oauth_error(), &self.config.scopes_supported);
        let mut r = Reply::json(
            401,
            &serde_json::json!({ "error": error.oauth_error().unwrap_or("unauthorized"), "error_description": error.to_string() }),
        );
        r.headers.push(("www-authenticate", www.into()));
        r
    }

    /// The 403 step-up challenge when the token lacks scopes (R54).
    pub fn insufficient_scope(&self, required: &ScopeSet) -> Reply {
        let www = self.challenge(Some("insufficient_scope"), required);
        let mut r = Reply::json(403, &serde_json::json!({ "error": "insufficient_scope" }));
        r.headers.push(("www-authenticate", www.into()));
        r
    }
}
