//! The upstream leg: [`UpstreamRedirect`] (only from a [`ConsentGiven`]), the callback's
//! browser binding, and the token exchange as data (R33–R41).

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::authorize::{AuthorizationDetails, MAX_STATE};
use crate::consent::ConsentGiven;
use crate::crypto::{
    MacWriter, RecordMac, Sealed, StoreKey, UNSEALED, UpstreamCode, b64, ct_eq, fresh32, pkce_s256,
    sha256_labeled,
};
use crate::error::{CallbackError, ParamError, UpstreamError};
use crate::reply::{ClientRedirect, Reply};
use crate::request::cookie::{self, BrowserContext};
use crate::request::params::{Params, append_pair, is_vschar_or_space, start_query};
use crate::{Entropy, Gate, UnixTime};

/// Largest upstream response body we parse.
pub const MAX_UPSTREAM_BODY: usize = 64 * 1024;

/// The way to the upstream: a 303 that sets this transaction's binding cookie, and the
/// transaction record to store.
///
/// No public constructor; the only function that returns one,
/// [`Gate::upstream_redirect`], consumes a [`ConsentGiven`] (R25, R34).
#[must_use = "store the transaction record, then send the redirect"]
pub struct UpstreamRedirect {
    transaction: TransactionRecord,
    location: String,
    cookies: Vec<String>,
}

impl fmt::Debug for UpstreamRedirect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamRedirect")
            .field("client_id", &self.transaction.details.client_id)
            .finish_non_exhaustive()
    }
}

impl UpstreamRedirect {
    /// The record to store under its key until the callback takes it.
    pub fn transaction_record(&self) -> &TransactionRecord {
        &self.transaction
    }

    /// The upstream authorization URL (carries our `state` and PKCE challenge).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The 303 with the binding cookie (R24: 303 after a POST, never 307).
    pub fn response(&self) -> Reply {
        let mut r = Reply::see_other(self.location.clone());
        for c in &self.cookies {
            r = r.with_cookie(c.clone());
        }
        r
    }

    /// Takes the record and the reply apart.
    pub fn into_parts(self) -> (TransactionRecord, Reply) {
        let r = self.response();
        (self.transaction, r)
    }
}

/// An approved authorization on its way through the upstream, keyed by a hash of our
/// upstream `state`. It holds a hash of the binding cookie, never the cookie (R38: the MCP
/// client's parameters stay server-side; A16).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TransactionRecord {
    key: StoreKey,
    details: AuthorizationDetails,
    binding_hash: [u8; 32],
    expires_at: UnixTime,
    mac: RecordMac,
}

impl Sealed for TransactionRecord {
    const LABEL: &'static str = "transaction v1";
    fn feed(&self, w: MacWriter) -> MacWriter {
        self.details
            .feed(w.bytes(&self.key.0))
            .bytes(&self.binding_hash)
            .u64(self.expires_at.0)
    }
    fn mac(&self) -> &RecordMac {
        &self.mac
    }
}

impl TransactionRecord {
    /// The store key (a hash of the upstream `state`).
    pub fn key(&self) -> &StoreKey {
        &self.key
    }
    /// When it may be deleted (R36).
    pub fn expires_at(&self) -> UnixTime {
        self.expires_at
    }
    /// What was approved.
    pub fn details(&self) -> &AuthorizationDetails {
        &self.details
    }
}

fn binding_cookie_name(gate: &Gate, state: &str) -> String {
    // One cookie per transaction, so parallel flows in one browser do not clobber each
    // other (the Cloudflare demo's single cookie does).
    let h = sha256_labeled("binding cookie name", state.as_bytes());
    let suffix: String = h[..6].iter().map(|b| format!("{b:02x}")).collect();
    cookie::name(gate.config.cookie_mode, &format!("cg-bind-{suffix}"))
}

impl Gate {
    fn upstream_verifier(&self, state: &str) -> String {
        // Derived, not stored: the store never holds the upstream PKCE verifier (R37).
        b64(&self.config.keys.mac("upstream pkce").str(state).finish())
    }

    /// Spends a [`ConsentGiven`] on an upstream authorization redirect: fresh `state`
    /// (256 bits, R33), upstream PKCE S256 (R37), and a binding cookie set only now, after
    /// approval (R34).
    pub fn upstream_redirect(
        &self,
        consent: ConsentGiven,
        now: UnixTime,
        entropy: &mut (impl Entropy + ?Sized),
    ) -> UpstreamRedirect {
        let state = b64(&fresh32(entropy));
        let binding = b64(&fresh32(entropy));
        let up = &self.config.upstream;
        let mut location = up.authorize_endpoint.clone();
        start_query(&mut location);
        append_pair(&mut location, "response_type", "code");
        append_pair(&mut location, "client_id", &up.client_id);
        append_pair(&mut location, "redirect_uri", &self.config.callback_uri);
        if !self.config.upstream_scope.is_empty() {
            append_pair(&mut location, "scope", &self.config.upstream_scope);
        }
        append_pair(&mut location, "state", &state);
        append_pair(
            &mut location,
            "code_challenge",
            &pkce_s256(&self.upstream_verifier(&state)),
        );
        append_pair(&mut location, "code_challenge_method", "S256");
        let lifetime = self.config.lifetimes.transaction;
        let mut transaction = TransactionRecord {
            key: StoreKey::derive("upstream state", state.as_bytes()),
            details: consent.details,
            binding_hash: sha256_labeled("binding", binding.as_bytes()),
            expires_at: now.plus(lifetime),
            mac: UNSEALED,
        };
        transaction.mac = transaction.compute_mac(&self.config.keys);
        let mode = self.config.cookie_mode;
        let mut cookies = vec![cookie::set(
            mode,
            &binding_cookie_name(self, &state),
            &binding,
            lifetime,
        )];
        cookies.extend(consent.remember_cookie);
        UpstreamRedirect {
            transaction,
            location,
            cookies,
        }
    }
}

/// A parsed upstream callback query.
#[derive(Clone, PartialEq, Eq)]
pub struct Callback {
    state: String,
    code: Option<UpstreamCode>,
    error: Option<String>,
    iss: Option<String>,
}

impl fmt::Debug for Callback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Callback")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl Callback {
    /// Parses the callback query. Unknown parameters are ignored (UPSTREAMS §6); `state`
    /// is required; exactly one of `code` and `error`.
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
        StoreKey::derive("upstream state", self.state.as_bytes())
    }
}

/// An HTTP request the host must send for the core (back channel).
#[derive(Clone, PartialEq, Eq)]
#[must_use]
pub struct HttpRequest {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// The absolute URL.
    pub url: String,
    /// Headers to send.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Bodies and Authorization headers carry secrets.
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// An upstream HTTP response, as the host received it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpstreamResponse<'a> {
    /// The status code.
    pub status: u16,
    /// The `Content-Type` header, if any.
    pub content_type: Option<&'a str>,
    /// The body.
    pub body: &'a [u8],
}

/// A callback whose `state` named a transaction this browser consented to, exactly once,
/// in time: the code may now be exchanged.
#[must_use]
pub struct VerifiedCallback {
    pub(crate) details: AuthorizationDetails,
    pub(crate) token_request: HttpRequest,
    pub(crate) user_endpoint: String,
    pub(crate) issuer: String,
    pub(crate) clear_cookie: String,
    pub(crate) reinsert: Option<TransactionRecord>,
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
    /// binding cookie (found by the `flow` fuzzer).
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
        if txn.key != callback.transaction_key() {
            return Err(CallbackError::UnknownTransaction);
        }
        if now >= txn.expires_at {
            return Err(CallbackError::Expired);
        }
        let name = binding_cookie_name(self, &callback.state);
        let bound = cookie::find(browser.cookies, &name)
            .is_some_and(|v| ct_eq(&sha256_labeled("binding", v.as_bytes()), &txn.binding_hash));
        if !bound && !self.config.faults().callback_unbound {
            return Err(CallbackError::BindingMismatch);
        }
        let up = &self.config.upstream;
        if let (Some(expected), Some(got)) = (&up.issuer, &callback.iss) {
            if expected != got {
                return Err(CallbackError::IssuerMismatch);
            }
        }
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
        let mut body = String::new();
        append_pair(&mut body, "grant_type", "authorization_code");
        append_pair(&mut body, "code", code.secret());
        append_pair(&mut body, "redirect_uri", &self.config.callback_uri);
        append_pair(&mut body, "client_id", &up.client_id);
        append_pair(&mut body, "client_secret", up.client_secret.secret());
        append_pair(
            &mut body,
            "code_verifier",
            &self.upstream_verifier(&callback.state),
        );
        let token_request = HttpRequest {
            method: "POST",
            url: up.token_endpoint.clone(),
            headers: vec![
                ("content-type", "application/x-www-form-urlencoded".into()),
                // GitHub picks the format by Accept; never its REST media type (406, F18).
                ("accept", "application/json".into()),
                ("user-agent", "consent-gate".into()),
            ],
            body: body.into_bytes(),
        };
        Ok(VerifiedCallback {
            details,
            token_request,
            user_endpoint: up.user_endpoint.clone(),
            issuer: self.config.issuer.clone(),
            clear_cookie: cookie::clear(self.config.cookie_mode, &name),
            reinsert,
        })
    }
}

/// A parsed, successful upstream token response.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct UpstreamTokens {
    pub(crate) access_token: crate::crypto::UpstreamToken,
    pub(crate) expires_in: Option<u64>,
}

/// Parses an upstream token response: branch on the body, not the status (GitHub answers
/// errors with HTTP 200, UPSTREAMS §1.7); JSON or form by `Content-Type`; any `error`
/// member is a failure; a missing or empty `access_token` is a failure.
pub(crate) fn parse_token_response(
    resp: &UpstreamResponse<'_>,
) -> Result<UpstreamTokens, UpstreamError> {
    if resp.body.len() > MAX_UPSTREAM_BODY {
        return Err(UpstreamError::Malformed);
    }
    let ct = resp.content_type.unwrap_or("").to_ascii_lowercase();
    let fields: Vec<(String, String)> =
        if ct.starts_with("application/x-www-form-urlencoded") || ct.starts_with("text/plain") {
            let p = Params::parse(resp.body).map_err(|_| UpstreamError::Malformed)?;
            ["access_token", "token_type", "expires_in", "error"]
                .iter()
                .filter_map(|k| p.get(k).map(|v| ((*k).to_owned(), v.to_owned())))
                .collect()
        } else {
            let v: serde_json::Value = serde_json::from_slice(resp.body).map_err(|_| {
                if resp.status != 200 {
                    UpstreamError::Status(resp.status)
                } else {
                    UpstreamError::Malformed
                }
            })?;
            let obj = v.as_object().ok_or(UpstreamError::Malformed)?;
            obj.iter()
                .filter_map(|(k, v)| match v {
                    serde_json::Value::String(s) => Some((k.clone(), s.clone())),
                    // Numbers only where providers send them (`expires_in` may be either,
                    // UPSTREAMS §6); a numeric `access_token` is not a token.
                    serde_json::Value::Number(n) if k == "expires_in" => {
                        Some((k.clone(), n.to_string()))
                    }
                    _ => None,
                })
                .collect()
        };
    let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if let Some(e) = get("error") {
        let e: String = e
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        return Err(UpstreamError::ErrorResponse(e));
    }
    if resp.status != 200 {
        return Err(UpstreamError::Status(resp.status));
    }
    let token = get("access_token").filter(|t| !t.is_empty() && t.len() <= 4096);
    let token = token.ok_or(UpstreamError::Incomplete)?;
    // `bearer` (GitHub) or `Bearer` (Google); absent is tolerated.
    if get("token_type").is_some_and(|t| !t.eq_ignore_ascii_case("bearer")) {
        return Err(UpstreamError::Incomplete);
    }
    Ok(UpstreamTokens {
        access_token: crate::crypto::UpstreamToken::new(token),
        // Absent means "does not expire" (GitHub OAuth Apps), never "expired".
        expires_in: get("expires_in").and_then(|v| v.parse().ok()),
    })
}

/// The user an upstream document names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct UpstreamUser {
    pub(crate) subject: String,
    pub(crate) display_name: Option<String>,
}

/// Parses a GitHub `GET /user` document (`id`, `login`) or an OIDC userinfo (`sub`).
pub(crate) fn parse_user(
    resp: &UpstreamResponse<'_>,
    prefix: &str,
) -> Result<UpstreamUser, UpstreamError> {
    if resp.status != 200 {
        return Err(UpstreamError::Status(resp.status));
    }
    if resp.body.len() > MAX_UPSTREAM_BODY {
        return Err(UpstreamError::Malformed);
    }
    let v: serde_json::Value =
        serde_json::from_slice(resp.body).map_err(|_| UpstreamError::Malformed)?;
    let id = match (v.get("sub"), v.get("id")) {
        (Some(serde_json::Value::String(s)), _) => s.clone(),
        (_, Some(serde_json::Value::Number(n))) => n.to_string(),
        (_, Some(serde_json::Value::String(s))) => s.clone(),
        _ => return Err(UpstreamError::NoSubject),
    };
    if id.is_empty() || id.len() > 255 || !is_vschar_or_space(&id) {
        return Err(UpstreamError::NoSubject);
    }
    let display_name = ["login", "email", "name"]
        .iter()
        .find_map(|k| v.get(*k).and_then(|x| x.as_str()))
        .filter(|s| s.len() <= 255)
        .map(|s| s.chars().filter(|c| !c.is_control()).collect());
    Ok(UpstreamUser {
        subject: format!("{prefix}{id}"),
        display_name,
    })
}
