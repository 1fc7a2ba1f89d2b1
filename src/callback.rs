//! The upstream callback: its browser binding checked against the transaction this browser
//! consented to (R35, R36; A2, A6, A7) and its issuer against the transaction's upstream
//! (R40, R67; A13), then the token exchange and the user lookup as data, each answer read
//! strictly (R38, R41).

use core::fmt;
use std::borrow::Cow;

use crate::authorize::{AuthorizationDetails, MAX_STATE};
use crate::config::UpstreamConfig;
use crate::cookie::{self, BrowserContext};
use crate::crypto::Sealed;
use crate::crypto::{StoreKey, UpstreamCode, UpstreamRefreshToken, UpstreamToken};
use crate::crypto::{ct_eq, sha256_labeled};
use crate::error::{CallbackError, UpstreamError};
use crate::openid::{IdTokenExpectation, IdTokenPolicy, check_id_token};
use crate::params::{ParamError, Params, append_pair, is_vschar_or_space};
use crate::reply::{ClientRedirect, HttpRequest, UpstreamResponse};
use crate::upstream::{TransactionRecord, binding_cookie_name};
use crate::upstream_json::parse_token_response;
use crate::{Gate, UnixTime};

/// A parsed upstream callback query.
#[derive(Clone, PartialEq, Eq)]
pub struct Callback {
    state: String,
    code: Option<UpstreamCode>,
    error: Option<String>,
    iss: Option<String>,
    /// The host takes the transaction by it and the verification checks it: hashed once.
    transaction_key: StoreKey,
}

impl fmt::Debug for Callback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Callback")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl Callback {
    /// Parses the callback query. Unknown parameters are ignored (docs/upstreams.md#parsing-rules);
    /// `state` is required; exactly one of `code` and `error`.
    pub fn parse(query: &[u8]) -> Result<Self, CallbackError> {
        let p = Params::parse(query)?;
        let state = p.required("state", MAX_STATE)?;
        let code = p.optional("code", 1024)?;
        let error = p.optional("error", 128)?;
        let iss = p.optional("iss", 512)?;
        if code.is_some() == error.is_some() {
            return Err(CallbackError::Ambiguous);
        }
        if !is_vschar_or_space(state) {
            return Err(ParamError::Invalid("state").into());
        }
        if code.is_some_and(|c| !is_vschar_or_space(c)) {
            return Err(ParamError::Invalid("code").into());
        }
        Ok(Self {
            transaction_key: StoreKey::derive("upstream state", state.as_bytes()),
            state: state.to_owned(),
            code: code.map(UpstreamCode::new),
            // Kept for logs only: reduced to a safe token, never echoed to anyone.
            error: error.map(|e| {
                e.chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .take(64)
                    .collect()
            }),
            iss: iss.map(str::to_owned),
        })
    }

    /// The key of the transaction to take (atomically, before any upstream call).
    pub fn transaction_key(&self) -> StoreKey {
        self.transaction_key
    }
}

/// A callback whose `state` named a transaction this browser consented to, exactly once,
/// in time: the code may now be exchanged.
#[must_use]
pub struct VerifiedCallback {
    details: AuthorizationDetails,
    token_request: HttpRequest,
    user_endpoint: String,
    issuer: String,
    clear_cookie: String,
    /// An OpenID upstream's ID-token check, ready to run on the token response (R67).
    id_token: Option<IdTokenCheck>,
    #[cfg(consent_gate_faults)]
    reinsert: Option<TransactionRecord>,
}

/// What the ID token of this callback's token response must say.
struct IdTokenCheck {
    policy: IdTokenPolicy,
    client_id: String,
    nonce: String,
    now: UnixTime,
}

impl fmt::Debug for VerifiedCallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedCallback")
            .field("client_id", &self.details.client_id)
            .finish_non_exhaustive()
    }
}

impl Gate {
    /// Verifies a callback against the transaction the host *took* under
    /// [`Callback::transaction_key`] (R35, R36; A2, A6, A7).
    ///
    /// The take stands even when verification fails: never store the record back. In A2
    /// the victim's browser reaches the callback first and fails the binding check; that
    /// failed attempt must burn the `state`, or the URL it carried (with the victim's
    /// upstream code) would complete later in the attacker's browser, which does hold the
    /// binding cookie (found by the fuzz crate's `hostile` target).
    pub fn verify_callback(
        &self,
        callback: Callback,
        transaction: Option<TransactionRecord>,
        browser: BrowserContext<'_>,
        now: UnixTime,
    ) -> Result<VerifiedCallback, CallbackError> {
        let txn = transaction.ok_or(CallbackError::UnknownTransaction)?;
        if !txn.mac_is_valid(&self.config.keys) {
            return Err(CallbackError::TamperedRecord);
        }
        let key = callback.transaction_key();
        if txn.key != key {
            return Err(CallbackError::UnknownTransaction);
        }
        if now >= txn.expires_at {
            return Err(CallbackError::Expired);
        }
        if browser.cookies_oversized() {
            return Err(CallbackError::CookieHeaderTooLarge);
        }
        let name = binding_cookie_name(self, &key);
        let bound = cookie::find(browser.cookies, &name)
            .is_some_and(|v| ct_eq(&sha256_labeled("binding", v.as_bytes()), &txn.binding_hash));
        if !bound && !self.config.faults().callback_unbound {
            return Err(CallbackError::BindingMismatch);
        }
        let up = &self.config.upstream;
        if !self.config.faults().issuer_unchecked {
            check_issuer(
                up,
                &txn.upstream_hash,
                &self.upstream_hash(),
                callback.iss.as_deref(),
            )?;
        }
        #[cfg(consent_gate_faults)]
        let reinsert = self.config.faults().state_reusable.then(|| txn.clone());
        let details = txn.details;
        let code = match (callback.code, callback.error) {
            (Some(code), None) => code,
            (_, error) => {
                let error = error.unwrap_or_default();
                let to_client_error = if error == "access_denied" {
                    "access_denied"
                } else {
                    "server_error"
                };
                return Err(CallbackError::Upstream {
                    cause: UpstreamError::ErrorResponse(error),
                    to_client: ClientRedirect::error(
                        &details.redirect_uri,
                        to_client_error,
                        details.client_state.as_deref(),
                        &self.config.issuer,
                    ),
                });
            }
        };
        let mut body = String::with_capacity(512);
        append_pair(&mut body, "grant_type", "authorization_code");
        append_pair(&mut body, "code", code.secret());
        append_pair(&mut body, "redirect_uri", &self.config.callback_uri);
        append_pair(&mut body, "client_id", &up.client_id);
        append_pair(&mut body, "client_secret", up.client_secret.secret());
        append_pair(
            &mut body,
            "code_verifier",
            self.upstream_verifier(&callback.state).as_str(),
        );
        let id_token = up.id_token.as_ref().map(|policy| IdTokenCheck {
            policy: policy.clone(),
            client_id: up.client_id.clone(),
            nonce: self.upstream_nonce(&callback.state).as_str().to_owned(),
            now,
        });
        let token_request = upstream_token_request(&up.token_endpoint, body);
        Ok(VerifiedCallback {
            details,
            token_request,
            user_endpoint: up.user_endpoint.clone(),
            issuer: self.config.issuer.clone(),
            clear_cookie: cookie::clear(self.config.cookie_mode, &name),
            id_token,
            #[cfg(consent_gate_faults)]
            reinsert,
        })
    }
}

/// Mix-up (R40, R67; A13): the trip was sent to the upstream configured now (`recorded`,
/// the transaction's hash of its upstream, equals `current`), and the callback names it
/// when it names any issuer, as it must where the provider says it does.
fn check_issuer(
    up: &UpstreamConfig,
    recorded: &[u8; 32],
    current: &[u8; 32],
    iss: Option<&str>,
) -> Result<(), CallbackError> {
    if !ct_eq(recorded, current) {
        return Err(CallbackError::IssuerMismatch);
    }
    match (&up.issuer, iss) {
        (Some(expected), Some(got)) if expected.as_str() != got => {
            Err(CallbackError::IssuerMismatch)
        }
        (_, None) if up.require_callback_issuer => Err(CallbackError::IssuerMismatch),
        _ => Ok(()),
    }
}

/// A POST of `body` to the upstream's token endpoint, in the shape every provider takes:
/// the code exchange and the refresh (R66) alike, and the revocation (RFC 7009).
pub(crate) fn upstream_token_request(token_endpoint: &str, body: String) -> HttpRequest {
    HttpRequest {
        method: "POST",
        url: token_endpoint.to_owned(),
        headers: vec![
            (
                "content-type",
                Cow::Borrowed("application/x-www-form-urlencoded"),
            ),
            // GitHub picks the format by Accept; never its REST media type (406, F18).
            ("accept", Cow::Borrowed("application/json")),
            ("user-agent", Cow::Borrowed("consent-gate")),
        ],
        body: body.into_bytes(),
    }
}

impl VerifiedCallback {
    /// The upstream token request the host must send (RFC 6749 §4.1.3 + PKCE; GitHub's
    /// documented shape: credentials in the body, `Accept: application/json`).
    pub fn token_request(&self) -> &HttpRequest {
        &self.token_request
    }

    /// What was approved.
    pub fn details(&self) -> &AuthorizationDetails {
        &self.details
    }

    /// For code issuance: what was approved, and the `Set-Cookie` that clears the binding.
    pub(crate) fn into_parts(self) -> (AuthorizationDetails, String) {
        (self.details, self.clear_cookie)
    }

    /// A record the host must store back: only ever with the A7 fault switched on, so only
    /// in builds with `--cfg consent_gate_faults`.
    #[cfg(consent_gate_faults)]
    pub fn reinsert(&self) -> Option<&TransactionRecord> {
        self.reinsert.as_ref()
    }

    pub(crate) fn fail(&self, cause: UpstreamError) -> CallbackError {
        CallbackError::Upstream {
            cause,
            to_client: ClientRedirect::error(
                &self.details.redirect_uri,
                "server_error",
                self.details.client_state.as_deref(),
                &self.issuer,
            ),
        }
    }

    /// The host could not reach the upstream (connection error, timeout): the client is
    /// told `server_error`, with its `state` and our `iss`.
    pub fn upstream_unreachable(self) -> CallbackError {
        self.fail(UpstreamError::Unreachable)
    }

    /// Accepts the upstream's answer to [`token_request`](Self::token_request).
    pub fn accept_token_response(
        self,
        response: UpstreamResponse<'_>,
    ) -> Result<UpstreamAuthenticated, CallbackError> {
        let tokens = match parse_token_response(&response) {
            Ok(tokens) => tokens,
            Err(e) => return Err(self.fail(e)),
        };
        let id_subject = match &self.id_token {
            None => None,
            Some(check) => {
                let expect = IdTokenExpectation {
                    policy: &check.policy,
                    client_id: &check.client_id,
                    nonce: &check.nonce,
                    now: check.now,
                };
                let checked = tokens
                    .id_token
                    .as_deref()
                    .ok_or(UpstreamError::IdToken("missing"))
                    .and_then(|t| check_id_token(t, &expect));
                match checked {
                    Ok(claims) => Some(claims.subject),
                    Err(e) => return Err(self.fail(e)),
                }
            }
        };
        Ok(UpstreamAuthenticated {
            upstream_token: tokens.access_token,
            upstream_expires_in: tokens.expires_in,
            upstream_refresh: tokens.refresh_token,
            id_subject,
            callback: self,
        })
    }
}

/// What the upstream's token response granted: the access token, its lifetime, and the
/// refresh token when one came (R66).
pub(crate) struct UpstreamGrant {
    pub(crate) token: UpstreamToken,
    pub(crate) expires_in: Option<u64>,
    pub(crate) refresh: Option<UpstreamRefreshToken>,
}

/// The upstream accepted our code: we hold its access token (which never leaves the
/// server, R41) and must learn who the user is.
#[must_use]
pub struct UpstreamAuthenticated {
    callback: VerifiedCallback,
    upstream_token: UpstreamToken,
    upstream_expires_in: Option<u64>,
    /// The upstream's refresh token, if it issued one (R66).
    upstream_refresh: Option<UpstreamRefreshToken>,
    /// The `sub` of a checked ID token (OpenID upstreams): the user document must agree.
    id_subject: Option<String>,
}

impl fmt::Debug for UpstreamAuthenticated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamAuthenticated")
            .field("client_id", &self.callback.details.client_id)
            .finish_non_exhaustive()
    }
}

impl UpstreamAuthenticated {
    /// The user-document request the host must send (GitHub `GET /user` wants a
    /// `User-Agent`, F16).
    pub fn user_request(&self) -> HttpRequest {
        HttpRequest::upstream_user(&self.callback.user_endpoint, &self.upstream_token)
    }

    /// The host could not reach the upstream's user endpoint: the client is told
    /// `server_error`.
    pub fn upstream_unreachable(self) -> CallbackError {
        self.callback.fail(UpstreamError::Unreachable)
    }

    /// The client id whose registration the host must look up again (R38).
    pub fn client_key(&self) -> StoreKey {
        StoreKey::client(&self.callback.details.client_id)
    }

    /// What was approved.
    pub fn details(&self) -> &AuthorizationDetails {
        &self.callback.details
    }

    /// For code issuance: the verified callback, the upstream tokens and the access
    /// token's lifetime, and the ID token's `sub` when there was one.
    pub(crate) fn into_parts(self) -> (VerifiedCallback, UpstreamGrant, Option<String>) {
        let grant = UpstreamGrant {
            token: self.upstream_token,
            expires_in: self.upstream_expires_in,
            refresh: self.upstream_refresh,
        };
        (self.callback, grant, self.id_subject)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_errors_are_reduced_to_a_safe_token() {
        let parse = |q: &str| Callback::parse(q.as_bytes());
        let cb = parse("state=s&error=access_denied%3Cb%3E-x&error_description=d").unwrap();
        assert_eq!(cb.error.as_deref(), Some("access_deniedbx"));
        assert!(format!("{cb:?}").contains("access_deniedbx"));
        let long = format!("state=s&error={}", "e".repeat(128));
        assert_eq!(parse(&long).unwrap().error, Some("e".repeat(64)));
        let cb = parse("state=s&code=secretcode&iss=https%3A%2F%2Fi").unwrap();
        assert_eq!(
            cb.code.as_ref().map(UpstreamCode::secret),
            Some("secretcode")
        );
        assert_eq!(cb.iss.as_deref(), Some("https://i"));
        assert_eq!(
            cb.transaction_key(),
            StoreKey::derive("upstream state", b"s")
        );
        assert!(!format!("{cb:?}").contains("secretcode"));
        for bad in [
            "state=s",
            "state=s&code=c&error=e",
            "code=c",
            "state=s%01&code=c",
            "state=s&code=c%01",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
