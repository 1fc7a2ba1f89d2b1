//! `POST /token`: the `authorization_code` and `refresh_token` grants (R42–R46, R53).

use core::fmt;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::authorize::MAX_CLIENT_ID;
use crate::bearer::mint_access_token;
use crate::client::{ClientRecord, MAX_REDIRECT_URI, TokenAuthMethod};
use crate::code::CodeRecord;
use crate::crypto::{
    MacWriter, RecordMac, Sealed, StoreKey, UNSEALED, UpstreamToken, b64, ct_eq, fresh32, pkce_s256,
};
use crate::error::{ParamError, TokenError};
use crate::reply::Reply;
use crate::request::params::{Params, decode, is_unreserved};
use crate::request::scope::ScopeSet;
use crate::{Entropy, Gate, UnixTime};

/// Which grant a token request is for.
#[derive(Clone, PartialEq, Eq)]
enum Grant {
    Code {
        code: String,
        verifier: String,
        redirect_uri: Option<String>,
    },
    Refresh {
        token: String,
        scope: Option<String>,
    },
}

/// A strictly parsed token request with its client credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenRequest {
    grant: Grant,
    credentials: ClientCredentials,
    resource: Option<String>,
    /// The host looks the code or refresh record up by it and the grant checks it:
    /// hashed once.
    record_key: StoreKey,
}

/// Client credentials from the body or HTTP Basic (RFC 6749 §2.3.1), one method only.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ClientCredentials {
    pub(crate) id: String,
    secret: Option<String>,
}

impl ClientCredentials {
    pub(crate) fn parse(p: &Params, authorization: Option<&str>) -> Result<Self, TokenError> {
        let body_id = p.optional("client_id", MAX_CLIENT_ID)?;
        let body_secret = p.optional("client_secret", 256)?;
        let (id, secret) = match authorization {
            Some(h) => {
                let (id, secret) = basic_credentials(h).ok_or(TokenError::InvalidClient)?;
                // One authentication method per request (RFC 6749 §2.3).
                if body_secret.is_some() || body_id.is_some_and(|b| b != id) {
                    return Err(ParamError::Invalid("client_secret").into());
                }
                (id, Some(secret))
            }
            None => {
                let id = body_id.ok_or(ParamError::Missing("client_id"))?;
                (id.to_owned(), body_secret.map(str::to_owned))
            }
        };
        if id.is_empty() || id.len() > MAX_CLIENT_ID {
            return Err(TokenError::InvalidClient);
        }
        Ok(Self { id, secret })
    }
}

impl fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.grant {
            Grant::Code { .. } => "authorization_code",
            Grant::Refresh { .. } => "refresh_token",
        };
        f.debug_struct("TokenRequest")
            .field("grant_type", &kind)
            .field("client_id", &self.credentials.id)
            .finish_non_exhaustive()
    }
}

/// Decodes `Authorization: Basic` credentials (RFC 6749 §2.3.1: each part form-encoded).
fn basic_credentials(header: &str) -> Option<(String, String)> {
    let (scheme, value) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") || value.len() > 1024 {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()?;
    let i = raw.iter().position(|b| *b == b':')?;
    Some((
        decode(&raw[..i]).ok()?.into_owned(),
        decode(&raw[i + 1..]).ok()?.into_owned(),
    ))
}

impl TokenRequest {
    /// Parses the form body and the optional `Authorization` header.
    pub fn parse(body: &[u8], authorization: Option<&str>) -> Result<Self, TokenError> {
        let p = Params::parse(body)?;
        let credentials = ClientCredentials::parse(&p, authorization)?;
        let grant = match p.required("grant_type", 64)? {
            "authorization_code" => {
                let verifier = p.required("code_verifier", 128)?;
                // RFC 7636 §4.1: 43–128 unreserved characters.
                if verifier.len() < 43 || !is_unreserved(verifier) {
                    return Err(ParamError::Invalid("code_verifier").into());
                }
                Grant::Code {
                    code: p.required("code", 256)?.to_owned(),
                    verifier: verifier.to_owned(),
                    redirect_uri: p
                        .optional("redirect_uri", MAX_REDIRECT_URI)?
                        .map(str::to_owned),
                }
            }
            "refresh_token" => Grant::Refresh {
                token: p.required("refresh_token", 256)?.to_owned(),
                scope: p.optional("scope", 2048)?.map(str::to_owned),
            },
            _ => return Err(TokenError::UnsupportedGrantType),
        };
        let record_key = match &grant {
            Grant::Code { code, .. } => StoreKey::derive("code", code.as_bytes()),
            Grant::Refresh { token, .. } => StoreKey::derive("refresh", token.as_bytes()),
        };
        Ok(Self {
            grant,
            credentials,
            resource: p.optional("resource", 2048)?.map(str::to_owned),
            record_key,
        })
    }

    /// The client to look up (store key [`TokenRequest::client_key`]).
    pub fn client_id(&self) -> &str {
        &self.credentials.id
    }

    /// The store key of the client registration.
    pub fn client_key(&self) -> StoreKey {
        StoreKey::client(&self.credentials.id)
    }

    /// The key of the record to load: take the code record for `authorization_code`, get
    /// the refresh record for `refresh_token`.
    pub fn record_key(&self) -> StoreKey {
        self.record_key
    }

    /// Whether this is an `authorization_code` grant.
    pub fn is_code_grant(&self) -> bool {
        matches!(self.grant, Grant::Code { .. })
    }
}

/// An authorization grant: one user's approval of one client, with the upstream token
/// kept server-side (R41). Access and refresh tokens name it; deleting it revokes them all.
/// Store it under [`GrantRecord::key`]; hosts should encrypt it at rest.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GrantRecord {
    grant_id: [u8; 16],
    client_id: String,
    subject: String,
    display_name: Option<String>,
    scope: ScopeSet,
    resource: String,
    upstream_token: Option<UpstreamToken>,
    upstream_expires_at: Option<UnixTime>,
    expires_at: UnixTime,
    mac: RecordMac,
}

impl Sealed for GrantRecord {
    const LABEL: &'static str = "grant v1";
    fn feed(&self, w: &mut MacWriter) {
        w.fixed(&self.grant_id)
            .str(&self.client_id)
            .str(&self.subject)
            .opt_str(self.display_name.as_deref())
            .str(self.scope.as_str())
            .str(&self.resource)
            .opt_str(self.upstream_token.as_ref().map(UpstreamToken::secret))
            .u64(self.upstream_expires_at.map_or(0, |t| t.0 + 1))
            .u64(self.expires_at.0);
    }
    fn mac(&self) -> &RecordMac {
        &self.mac
    }
}

impl GrantRecord {
    /// The store key.
    pub fn key(&self) -> StoreKey {
        StoreKey::derive("grant", &self.grant_id)
    }
    /// When it may be deleted.
    pub fn expires_at(&self) -> UnixTime {
        self.expires_at
    }
    /// The upstream subject (`github:1`).
    pub fn subject(&self) -> &str {
        &self.subject
    }
    /// The upstream login or name, for display.
    pub fn display_name(&self) -> Option<&str> {
        self.display_name.as_deref()
    }
    /// The client the grant is for.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }
    /// The upstream access token, for the server's own calls to the upstream API. Never
    /// send it to an MCP client (R41, R50).
    pub fn upstream_token(&self) -> Option<&UpstreamToken> {
        self.upstream_token.as_ref()
    }
    /// When the upstream token expires, if the upstream said (`expires_in`); `None` for
    /// tokens that do not expire (GitHub OAuth App tokens).
    pub fn upstream_expires_at(&self) -> Option<UnixTime> {
        self.upstream_expires_at
    }
    /// Whether the upstream token has expired at `now` (R66): the grant then no longer
    /// authorizes MCP calls until the upstream token is renewed.
    pub fn upstream_expired(&self, now: UnixTime) -> bool {
        self.upstream_expires_at.is_some_and(|at| now >= at)
    }
    pub(crate) fn grant_id(&self) -> &[u8; 16] {
        &self.grant_id
    }
}

/// A refresh token's record, keyed by its hash. Rotated on every use; a rotated token
/// presented again after the grace window revokes the grant (R53).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RefreshRecord {
    key: StoreKey,
    grant_id: [u8; 16],
    client_id: String,
    scope: ScopeSet,
    expires_at: UnixTime,
    rotated_at: Option<UnixTime>,
    mac: RecordMac,
}

impl Sealed for RefreshRecord {
    const LABEL: &'static str = "refresh v1";
    fn feed(&self, w: &mut MacWriter) {
        w.fixed(&self.key.0)
            .fixed(&self.grant_id)
            .str(&self.client_id)
            .str(self.scope.as_str())
            .u64(self.expires_at.0)
            .u64(self.rotated_at.map_or(0, |t| t.0 + 1));
    }
    fn mac(&self) -> &RecordMac {
        &self.mac
    }
}

impl RefreshRecord {
    /// The store key (a hash of the refresh token).
    pub fn key(&self) -> &StoreKey {
        &self.key
    }
    /// When it may be deleted.
    pub fn expires_at(&self) -> UnixTime {
        self.expires_at
    }
    /// The store key of its grant.
    pub fn grant_key(&self) -> StoreKey {
        StoreKey::derive("grant", &self.grant_id)
    }
    /// The client it was issued to.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }
    /// Whether it was already rotated.
    pub fn is_rotated(&self) -> bool {
        self.rotated_at.is_some()
    }
}

/// Tokens issued: the JSON reply and the records to store (each under its own key).
#[derive(Debug)]
#[must_use = "store the records, then send the reply"]
pub struct TokensIssued {
    /// The RFC 6749 §5.1 response with `Cache-Control: no-store` (R46).
    pub reply: Reply,
    /// The new grant (code grant only).
    pub grant: Option<GrantRecord>,
    /// Refresh records to store (put): a code grant's first refresh token, or the presented
    /// token's record marked rotated.
    pub refresh: Vec<RefreshRecord>,
    /// The successor of a rotated refresh token. Store it with **put-if-absent**: if a
    /// record already exists under its key, keep that one. Two concurrent first refreshes
    /// of one token both produce it; the slower writer must not overwrite a successor that
    /// has been rotated since, or that successor could be used again undetected (R63,
    /// A22). `None` for a code grant, and when a refresh inside the grace window is
    /// answered with the successor already stored.
    pub successor: Option<RefreshRecord>,
    /// The code record to store back, marked redeemed (code grant only).
    pub code: Option<CodeRecord>,
}

impl Gate {
    pub(crate) fn authenticate(
        &self,
        credentials: &ClientCredentials,
        client: Option<&ClientRecord>,
    ) -> Result<(), TokenError> {
        let client = client.ok_or(TokenError::InvalidClient)?;
        if !client.mac_is_valid(&self.config.keys) || client.client_id() != credentials.id {
            return Err(TokenError::InvalidClient);
        }
        match (client.auth_method(), &credentials.secret) {
            (TokenAuthMethod::None, None) => Ok(()),
            (TokenAuthMethod::None, Some(_)) => Err(TokenError::InvalidClient),
            (_, Some(s)) if client.secret_matches(s) => Ok(()),
            _ => Err(TokenError::InvalidClient),
        }
    }

    fn check_resource(&self, req: &TokenRequest, bound: &str) -> Result<(), TokenError> {
        match &req.resource {
            Some(r) if r != bound => Err(TokenError::InvalidTarget),
            _ => Ok(()),
        }
    }

    fn token_reply(&self, access: &str, refresh: Option<&str>, scope: &ScopeSet) -> Reply {
        // A fixed shape, written directly (members in the order serde_json's map sorts
        // them, as the earlier `json!` reply had them).
        let mut body = String::with_capacity(access.len() + 160);
        body.push_str("{\"access_token\":");
        push_json_str(&mut body, access);
        body.push_str(",\"expires_in\":");
        crate::reply::push_u64(&mut body, self.config.lifetimes.access_token);
        if let Some(r) = refresh {
            body.push_str(",\"refresh_token\":");
            push_json_str(&mut body, r);
        }
        body.push_str(",\"scope\":");
        push_json_str(&mut body, scope.as_str());
        body.push_str(",\"token_type\":\"Bearer\"}");
        Reply::json_bytes(200, body.into_bytes())
    }

    fn new_refresh(
        &self,
        token: &str,
        grant_id: [u8; 16],
        client_id: &str,
        scope: ScopeSet,
        now: UnixTime,
    ) -> RefreshRecord {
        let mut r = RefreshRecord {
            key: StoreKey::derive("refresh", token.as_bytes()),
            grant_id,
            client_id: client_id.to_owned(),
            scope,
            expires_at: now.plus(self.config.lifetimes.refresh_token),
            rotated_at: None,
            mac: UNSEALED,
        };
        r.mac = r.compute_mac(&self.config.keys);
        r
    }

    /// Redeems an authorization code. `record` is what the host *took* under
    /// [`TokenRequest::record_key`]; `client` the registration under
    /// [`TokenRequest::client_key`].
    ///
    /// A failed redemption consumes the code (fail closed: a code someone else has tried
    /// to redeem is burnt; the user signs in again), and an invalid replay never revokes.
    ///
    /// Checks, in this order, so that an invalid replay never revokes anything (R43):
    /// client authentication, the code's binding to this client (A9), expiry, PKCE S256 in
    /// constant time (R44, A12), `redirect_uri` equality if sent (R45), `resource` (R21);
    /// only then whether it was redeemed before (A8: revoke the grant).
    pub fn redeem_code(
        &self,
        req: &TokenRequest,
        record: Option<CodeRecord>,
        client: Option<&ClientRecord>,
        now: UnixTime,
        entropy: &mut (impl Entropy + ?Sized),
    ) -> Result<TokensIssued, TokenError> {
        let Grant::Code {
            verifier,
            redirect_uri,
            ..
        } = &req.grant
        else {
            return Err(TokenError::UnsupportedGrantType);
        };
        self.authenticate(&req.credentials, client)?;
        let mut record = record.ok_or(TokenError::InvalidGrant("unknown code"))?;
        if !record.mac_is_valid(&self.config.keys) || record.key != req.record_key() {
            return Err(TokenError::InvalidGrant("unknown code"));
        }
        let d = &record.details;
        if d.client_id != req.credentials.id {
            return Err(TokenError::InvalidGrant(
                "code was issued to another client",
            ));
        }
        if now >= record.expires_at {
            return Err(TokenError::InvalidGrant("code expired"));
        }
        if !ct_eq(
            pkce_s256(verifier).as_str().as_bytes(),
            d.code_challenge.as_bytes(),
        ) {
            return Err(TokenError::InvalidGrant("PKCE verification failed"));
        }
        if redirect_uri
            .as_ref()
            .is_some_and(|r| r != d.redirect_uri.as_str())
        {
            return Err(TokenError::InvalidGrant("redirect_uri mismatch"));
        }
        self.check_resource(req, &d.resource)?;
        if record.redeemed {
            return Err(TokenError::CodeReused {
                revoke_grant: record.grant_key(),
            });
        }
        let scope = d.scope.clone();
        // The redeemed tombstone stored back below needs no user: move it into the grant
        // (the A8 fault stores the code back redeemable, so it must keep its user).
        let reusable = self.config.faults().code_reusable;
        let (subject, display_name) = if reusable {
            (record.subject.clone(), record.display_name.clone())
        } else {
            (
                core::mem::take(&mut record.subject),
                record.display_name.take(),
            )
        };
        let mut grant = GrantRecord {
            grant_id: record.grant_id,
            client_id: d.client_id.clone(),
            subject,
            display_name,
            scope: scope.clone(),
            resource: d.resource.clone(),
            upstream_token: record.upstream_token.take(),
            upstream_expires_at: record.upstream_expires_at,
            expires_at: now.plus(self.config.lifetimes.refresh_token),
            mac: UNSEALED,
        };
        grant.mac = grant.compute_mac(&self.config.keys);
        let access = mint_access_token(self, &grant, &scope, now);
        let refresh_token = client
            .is_some_and(ClientRecord::refresh_allowed)
            .then(|| b64(&fresh32(entropy)));
        let refresh: Vec<RefreshRecord> = refresh_token
            .iter()
            .map(|t| self.new_refresh(t, grant.grant_id, &grant.client_id, scope.clone(), now))
            .collect();
        // Stored back as redeemed (without the upstream token) so that a replay is
        // recognised; it lives as long as a transaction would.
        if !reusable {
            record.redeemed = true;
        }
        record.expires_at = now.plus(self.config.lifetimes.transaction);
        record.mac = record.compute_mac(&self.config.keys);
        Ok(TokensIssued {
            reply: self.token_reply(&access, refresh_token.as_deref(), &scope),
            grant: Some(grant),
            refresh,
            successor: None,
            code: Some(record),
        })
    }

    /// Refreshes: rotation on every use, scope may only narrow, reuse of a rotated token
    /// outside the grace window revokes the grant (R53).
    ///
    /// `record` is what the host *got* under [`TokenRequest::record_key`], `grant` the
    /// record under [`RefreshRecord::grant_key`]. The successor token is derived from the
    /// presented one, so a concurrent refresh inside the grace window receives the same
    /// successor instead of `invalid_grant` (FastMCP #4901).
    pub fn redeem_refresh(
        &self,
        req: &TokenRequest,
        record: Option<RefreshRecord>,
        grant: Option<&GrantRecord>,
        client: Option<&ClientRecord>,
        now: UnixTime,
    ) -> Result<TokensIssued, TokenError> {
        let Grant::Refresh { token, scope } = &req.grant else {
            return Err(TokenError::UnsupportedGrantType);
        };
        self.authenticate(&req.credentials, client)?;
        let mut record = record.ok_or(TokenError::InvalidGrant("unknown refresh token"))?;
        if !record.mac_is_valid(&self.config.keys) || record.key != req.record_key() {
            return Err(TokenError::InvalidGrant("unknown refresh token"));
        }
        if record.client_id != req.credentials.id {
            return Err(TokenError::InvalidGrant(
                "refresh token was issued to another client",
            ));
        }
        if now >= record.expires_at {
            return Err(TokenError::InvalidGrant("refresh token expired"));
        }
        let grant = grant
            .filter(|g| {
                g.mac_is_valid(&self.config.keys)
                    && g.grant_id == record.grant_id
                    && now < g.expires_at
            })
            .ok_or(TokenError::InvalidGrant("grant revoked"))?;
        self.check_resource(req, &grant.resource)?;
        // R66: a grant whose upstream token has expired cannot be refreshed into working
        // tokens (every bearer check would refuse them): the client must sign in again.
        if grant.upstream_expired(now) {
            return Err(TokenError::InvalidGrant("upstream authorization expired"));
        }
        let scope = match scope {
            None => record.scope.clone(),
            Some(s) => ScopeSet::parse(s)
                .filter(|s| s.is_subset_of(&record.scope))
                .ok_or(TokenError::InvalidScope)?,
        };
        if let Some(at) = record.rotated_at {
            if now.0 > at.0.saturating_add(self.config.lifetimes.refresh_grace) {
                return Err(TokenError::RefreshReused {
                    revoke_grant: grant.key(),
                });
            }
        }
        let mut w = self.config.keys.mac("refresh successor");
        w.str(token);
        let successor = b64(&w.finish());
        // Inside the grace window the successor's record already exists and may itself
        // have been rotated since: writing it again would erase that, so only the first
        // rotation stores records, and the successor only where none exists yet (two
        // first rotations can race, A22).
        let (refresh, successor_record) = if record.rotated_at.is_none() {
            let next = self.new_refresh(
                &successor,
                grant.grant_id,
                &grant.client_id,
                scope.clone(),
                now,
            );
            record.rotated_at = Some(now);
            record.mac = record.compute_mac(&self.config.keys);
            (vec![record], Some(next))
        } else {
            (Vec::new(), None)
        };
        let access = mint_access_token(self, grant, &scope, now);
        Ok(TokensIssued {
            reply: self.token_reply(&access, Some(&successor), &scope),
            grant: None,
            refresh,
            successor: successor_record,
            code: None,
        })
    }
}

pub(crate) mod revoke {
    //! `POST /revoke` (RFC 7009): a client revokes one of its tokens, and with it the grant.
    //!
    //! Revoking either token of a grant deletes the grant, so every access and refresh token
    //! of that grant stops working (RFC 7009 §2.1: "SHOULD also invalidate all access tokens
    //! based on the same authorization grant"). An unknown, foreign or malformed token is
    //! answered with 200 and revokes nothing (§2.2), so the endpoint cannot be used to probe
    //! which tokens exist.

    use core::fmt;

    use crate::bearer::access_token_grant;
    use crate::client::ClientRecord;
    use crate::crypto::{Sealed, StoreKey};
    use crate::error::TokenError;
    use crate::reply::Reply;
    use crate::request::params::Params;
    use crate::token::{ClientCredentials, RefreshRecord};
    use crate::{Gate, UnixTime};

    /// A parsed revocation request.
    #[derive(Clone, PartialEq, Eq)]
    pub struct RevocationRequest {
        token: String,
        credentials: ClientCredentials,
    }

    impl fmt::Debug for RevocationRequest {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("RevocationRequest")
                .field("client_id", &self.credentials.id)
                .finish_non_exhaustive()
        }
    }

    impl RevocationRequest {
        /// Parses the form body (`token`, optional `token_type_hint`) and the optional
        /// `Authorization` header.
        pub fn parse(body: &[u8], authorization: Option<&str>) -> Result<Self, TokenError> {
            let p = Params::parse(body)?;
            let credentials = ClientCredentials::parse(&p, authorization)?;
            // The hint is optional and only an optimisation (§2.1): both kinds are tried.
            p.optional("token_type_hint", 32)?;
            Ok(Self {
                token: p.required("token", 4096)?.to_owned(),
                credentials,
            })
        }

        /// The store key of the client registration.
        pub fn client_key(&self) -> StoreKey {
            StoreKey::client(&self.credentials.id)
        }

        /// The key under which the host should *get* a refresh record, in case the token is
        /// a refresh token.
        pub fn refresh_key(&self) -> StoreKey {
            StoreKey::derive("refresh", self.token.as_bytes())
        }
    }

    /// The outcome of a revocation.
    #[derive(Debug)]
    #[must_use = "delete the grant, then send the reply"]
    pub struct Revocation {
        /// The grant the host must delete, if the token was a live token of this client.
        pub revoke_grant: Option<StoreKey>,
        /// `200 OK` with an empty body.
        pub reply: Reply,
    }

    impl Gate {
        /// Revokes a token (RFC 7009). `client` is the registration under
        /// [`RevocationRequest::client_key`]; `refresh` is the record under
        /// [`RevocationRequest::refresh_key`], if any. Client authentication failures are
        /// errors (`invalid_client`, §2.2.1); a token that is not this client's is not.
        pub fn revoke(
            &self,
            request: &RevocationRequest,
            client: Option<&ClientRecord>,
            refresh: Option<&RefreshRecord>,
            now: UnixTime,
        ) -> Result<Revocation, TokenError> {
            self.authenticate(&request.credentials, client)?;
            let client_id = request.credentials.id.as_str();
            let from_access = access_token_grant(self, &request.token, now)
                .filter(|(owner, _)| owner == client_id)
                .map(|(_, grant)| grant);
            let from_refresh = refresh
                .filter(|r| {
                    r.mac_is_valid(&self.config.keys)
                        && *r.key() == request.refresh_key()
                        && r.client_id() == client_id
                })
                .map(RefreshRecord::grant_key);
            let mut reply = Reply::json(200, &serde_json::json!({}));
            reply.body.clear();
            reply.headers.retain(|(n, _)| *n != "content-type");
            Ok(Revocation {
                revoke_grant: from_access.or(from_refresh),
                reply,
            })
        }
    }
}

/// Appends `s` as a JSON string (RFC 8259 §7: `"`, `\\` and control characters escaped).
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            out.push_str("\\u00");
            crate::crypto::push_hex(out, &[b]);
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::push_json_str;

    #[test]
    fn json_strings_round_trip_through_serde_json() {
        for s in ["", "cga_abc-_", "a\"b\\c", "\u{0}\u{1f}\n\t", "é✓\u{7f}"] {
            let mut ours = String::new();
            push_json_str(&mut ours, s);
            assert_eq!(serde_json::from_str::<String>(&ours).unwrap(), s, "{ours}");
        }
    }
}
