//! `POST /token`: the `authorization_code` and `refresh_token` grants (R42–R46, R53).

use core::fmt;

use base64::Engine as _;
use serde::Serialize;

use crate::at_rest::{Ciphertext, GrantSecret, UserData};
use crate::authorize::MAX_CLIENT_ID;
use crate::bearer::mint_access_token;
use crate::client_document::is_metadata_document_url;
use crate::code::CODE_USER;
use crate::code::CodeRecord;
use crate::crypto::{Sealed, StoreKey, UNSEALED, b64, ct_eq, fresh32, pkce_s256};
use crate::error::TokenError;
use crate::grant::{GRANT_USER, GrantLookup, GrantRecord, RefreshRecord};
use crate::installation::{Installation, installation_keys};
use crate::params::{ParamError, Params, decode, is_unreserved};
use crate::redirect::{MAX_REDIRECT_URI, RedirectUri};
use crate::register::{ClientRecord, TokenAuthMethod};
use crate::reply::Reply;
use crate::scope::ScopeSet;
use crate::step::{Op, Step};
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

/// The RFC 6749 §5.1 success body.
#[derive(Serialize)]
struct TokenReply<'a> {
    access_token: &'a str,
    expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    scope: &'a str,
    token_type: &'static str,
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
        let body = TokenReply {
            access_token: access,
            expires_in: self.config.lifetimes.access_token,
            refresh_token: refresh,
            scope: scope.as_str(),
            token_type: "Bearer",
        };
        Reply::json_bytes(200, serde_json::to_vec(&body).unwrap_or_default())
    }

    fn new_refresh(
        &self,
        token: &str,
        grant: &GrantRecord,
        secret: &GrantSecret,
        scope: ScopeSet,
        now: UnixTime,
    ) -> RefreshRecord {
        let key = StoreKey::derive("refresh", token.as_bytes());
        let mut r = RefreshRecord {
            key,
            grant_id: grant.grant_id,
            client_id: grant.client_id.clone(),
            scope,
            expires_at: now.plus(self.config.lifetimes.refresh_token),
            rotated_at: None,
            wrapped: secret.wrap(token, &key.0),
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
            code,
            verifier,
            redirect_uri,
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
        // The user data opens under the code the client presented; a code record that
        // was edited or had another code's ciphertext copied in does not (A16).
        let user = UserData::open(code.as_bytes(), CODE_USER, &record.key.0, &record.user)
            .ok_or(TokenError::InvalidGrant("unknown code"))?;
        let scope = d.scope.clone();
        // The redeemed tombstone stored back below needs no user (the A8 fault stores the
        // code back redeemable, so it must keep its user).
        let reusable = self.config.faults().code_reusable;
        if !reusable {
            record.user = Ciphertext::default();
        }
        // A fresh secret per grant: its access tokens carry it, its refresh records wrap
        // it, the store never sees it (docs/design.md#at-rest).
        let secret = GrantSecret(fresh32(entropy));
        let mut grant = GrantRecord {
            grant_id: record.grant_id,
            client_id: d.client_id.clone(),
            scope: scope.clone(),
            resource: d.resource.clone(),
            user: user.seal(&secret.0, GRANT_USER, &record.grant_id),
            user_salt: None,
            upstream_expires_at: record.upstream_expires_at,
            expires_at: now.plus(self.config.lifetimes.refresh_token),
            installation: None,
            mac: UNSEALED,
        };
        // A document's client id is shared by every installation: the grant names this
        // user's (through the registered redirect URI that matched) and the second of the
        // approval, the code's issue, so that revoking the installation ends it (R59).
        if is_metadata_document_url(&d.client_id) {
            let presented = d.redirect_uri.as_str();
            let registered = client
                .and_then(|c| c.redirect_uris().iter().find(|r| r.matches(presented)))
                .map_or(presented, RedirectUri::as_str);
            let keys = &self.config.keys;
            grant.installation = installation_keys(keys, &user.subject, &d.client_id, registered)
                .next()
                .map(|key| Installation {
                    key,
                    approved_at: UnixTime(
                        record
                            .expires_at
                            .0
                            .saturating_sub(self.config.lifetimes.code),
                    ),
                });
        }
        grant.mac = grant.compute_mac(&self.config.keys);
        let access = mint_access_token(self, &grant, &secret, &user.subject, &scope, now);
        let refresh_token = client
            .is_some_and(ClientRecord::refresh_allowed)
            .then(|| b64(&fresh32(entropy)));
        let refresh: Vec<RefreshRecord> = refresh_token
            .iter()
            .map(|t| self.new_refresh(t, &grant, &secret, scope.clone(), now))
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
    /// successor instead of `invalid_grant` (FastMCP #4901). For a metadata-document
    /// client's grant, pass the revocation mark of its installation with the grant
    /// ([`GrantLookup::with_installation`], R59); without it such a grant is refused.
    pub fn redeem_refresh<'a>(
        &self,
        req: &TokenRequest,
        record: Option<RefreshRecord>,
        grant: impl Into<GrantLookup<'a>>,
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
        // The grant secret is wrapped under the presented token, never stored in the clear.
        let secret = GrantSecret::unwrap(token, &record.key.0, &record.wrapped)
            .ok_or(TokenError::InvalidGrant("unknown refresh token"))?;
        let grant = grant
            .into()
            .standing(&self.config.keys)
            .filter(|g| {
                g.mac_is_valid(&self.config.keys)
                    && g.grant_id == record.grant_id
                    && now < g.expires_at
            })
            .ok_or(TokenError::InvalidGrant("grant revoked"))?;
        self.check_resource(req, &grant.resource)?;
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
            let next = self.new_refresh(&successor, grant, &secret, scope.clone(), now);
            record.rotated_at = Some(now);
            record.mac = record.compute_mac(&self.config.keys);
            (vec![record], Some(next))
        } else {
            (Vec::new(), None)
        };
        let user = grant
            .open_user(&secret)
            .ok_or(TokenError::InvalidGrant("grant revoked"))?;
        // R66: a grant whose upstream token has expired and cannot be renewed (the
        // upstream gave no refresh token) cannot be refreshed into working tokens (every
        // bearer check would refuse them): the client must sign in again. With an
        // upstream refresh token the host renews it at the next bearer check.
        if grant.upstream_expired(now) && user.upstream_refresh.is_none() {
            return Err(TokenError::InvalidGrant("upstream authorization expired"));
        }
        let access = mint_access_token(self, grant, &secret, &user.subject, &scope, now);
        Ok(TokensIssued {
            reply: self.token_reply(&access, Some(&successor), &scope),
            grant: None,
            refresh,
            successor: successor_record,
            code: None,
        })
    }
}

impl From<TokensIssued> for Step {
    /// Store the grant, the refresh records and the redeemed code; the successor of a
    /// rotated refresh token only if absent (R63, A22); then send the tokens.
    fn from(t: TokensIssued) -> Self {
        let mut ops = Vec::with_capacity(4);
        ops.extend(t.code.as_ref().map(Op::put));
        ops.extend(t.grant.as_ref().map(Op::put));
        ops.extend(t.refresh.iter().map(Op::put));
        ops.extend(t.successor.as_ref().map(Op::put_if_absent));
        Step {
            ops,
            reply: t.reply,
        }
    }
}
