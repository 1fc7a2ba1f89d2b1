//! One error enum per surface, each variant mapped once to its OAuth error code, its HTTP
//! status and whether a browser redirect to the client is allowed
//! (docs/conventions.md#one-error-enum-per-surface).
//!
//! The redirect rule is the heart of R16/R32/A15: a redirect to the client is only ever
//! made with a [`ClientRedirect`](crate::ClientRedirect), which exists only after the
//! client *and* its redirect URI were validated *and* the user saw the consent page. Every
//! other error is an HTML page on our own origin.

use thiserror::Error;

use crate::crypto::StoreKey;
use crate::params::ParamError;
use crate::reply::{ClientRedirect, Reply};
use crate::step::{Kind, Op, Step};

/// Why a `GET /authorize` was refused. Always an error page: before the consent page was
/// shown, the user has not seen the client's host, so a redirect would make us a phishing
/// redirector (R16, R32, A15).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AuthorizeError {
    /// The query is malformed, ambiguous or misses a parameter.
    #[error("invalid request: {0}")]
    Params(#[from] ParamError),
    /// `client_id` names no registered client.
    #[error("unknown client")]
    UnknownClient,
    /// The client record failed its MAC: the store was edited.
    #[error("client record failed verification")]
    TamperedRecord,
    /// `redirect_uri` is absent and the client registered several, or it matches none.
    #[error("redirect_uri is not registered for this client")]
    RedirectUriMismatch,
    /// `response_type` is not `code`.
    #[error("unsupported response_type")]
    UnsupportedResponseType,
    /// PKCE is missing, `plain`, or the challenge is malformed (R19, A12).
    #[error("PKCE S256 code_challenge required")]
    PkceRequired,
    /// A requested scope is not offered by this server.
    #[error("invalid scope")]
    InvalidScope,
    /// `resource` is not this server's canonical MCP resource (R21).
    #[error("invalid resource")]
    InvalidTarget,
    /// The browser's `Cookie` header is over the size we read (A21).
    #[error("{COOKIES_OVERSIZED}")]
    CookieHeaderTooLarge,
}

/// What the error says when the `Cookie` header is over the size we read (A21).
const COOKIES_OVERSIZED: &str = "the browser sent a Cookie header over 8 KiB";

/// The page for an oversized `Cookie` header: it says why, and what the user can do
/// (A21: never a silent CSRF or binding mismatch).
fn cookies_oversized_page() -> Reply {
    crate::page::error_page(
        400,
        "Too many cookies for this site",
        "Your browser sent more cookies for this site than we accept (over 8 KiB), so we \
         cannot tell whether this is the browser that started the sign-in. Clear this \
         site's cookies in your browser, then start again from your application.",
    )
}

impl AuthorizeError {
    /// The RFC 6749 / RFC 8707 error code.
    pub fn oauth_error(&self) -> &'static str {
        match self {
            Self::Params(_)
            | Self::RedirectUriMismatch
            | Self::PkceRequired
            | Self::CookieHeaderTooLarge => "invalid_request",
            Self::UnknownClient => "invalid_client",
            Self::TamperedRecord => "server_error",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
        }
    }

    /// Never: see the type's documentation.
    pub fn redirect_allowed(&self) -> bool {
        false
    }

    /// The HTTP status of the error page.
    pub fn status(&self) -> u16 {
        match self {
            Self::TamperedRecord => 500,
            _ => 400,
        }
    }

    /// The error page to send.
    pub fn response(&self) -> Reply {
        if *self == Self::CookieHeaderTooLarge {
            return cookies_oversized_page();
        }
        crate::page::error_page(
            self.status(),
            "This sign-in link is not valid",
            &self.to_string(),
        )
    }
}

/// Why a consent decision (`POST /authorize`) was refused. Always an error page.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConsentError {
    /// The form body is malformed.
    #[error("invalid form: {0}")]
    Params(#[from] ParamError),
    /// `decision` is neither `approve` nor `deny`.
    #[error("invalid decision")]
    InvalidDecision,
    /// No pending consent for this form (never existed, already used, or expired away).
    #[error("this consent request is unknown or was already answered")]
    UnknownTransaction,
    /// The pending consent is past its lifetime.
    #[error("this consent request has expired")]
    Expired,
    /// The CSRF token does not match this browser's cookie (R28, A3).
    #[error("the consent form was not submitted from the page we showed to this browser")]
    CsrfMismatch,
    /// `Origin` or `Sec-Fetch-Site` show a cross-site submission (defence in depth, A3).
    #[error("cross-site consent submission refused")]
    CrossSite,
    /// The pending record failed its MAC: the store was edited.
    #[error("consent record failed verification")]
    TamperedRecord,
    /// The browser's `Cookie` header is over the size we read (A21).
    #[error("{COOKIES_OVERSIZED}")]
    CookieHeaderTooLarge,
}

impl ConsentError {
    /// The OAuth error code (for logs; the user sees a page).
    pub fn oauth_error(&self) -> &'static str {
        match self {
            Self::TamperedRecord => "server_error",
            Self::CsrfMismatch | Self::CrossSite => "access_denied",
            _ => "invalid_request",
        }
    }

    /// Never: the decision could not be attributed to this browser.
    pub fn redirect_allowed(&self) -> bool {
        false
    }

    /// The HTTP status of the error page.
    pub fn status(&self) -> u16 {
        match self {
            Self::CsrfMismatch | Self::CrossSite => 403,
            Self::TamperedRecord => 500,
            _ => 400,
        }
    }

    /// The error page to send.
    pub fn response(&self) -> Reply {
        if *self == Self::CookieHeaderTooLarge {
            return cookies_oversized_page();
        }
        crate::page::error_page(
            self.status(),
            "This approval could not be accepted",
            &format!("{self}. Start again from your application."),
        )
    }
}

/// Why an upstream callback (`GET /callback`) was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CallbackError {
    /// The query is malformed or ambiguous.
    #[error("invalid callback: {0}")]
    Params(#[from] ParamError),
    /// Both `code` and `error`, or neither.
    #[error("callback carries neither exactly one code nor an error")]
    Ambiguous,
    /// No transaction for this `state` (never existed, already used, or expired away; A7).
    #[error("unknown or already used sign-in transaction")]
    UnknownTransaction,
    /// The transaction is past its lifetime (R36).
    #[error("the sign-in transaction has expired")]
    Expired,
    /// This browser does not hold the binding cookie of the browser that consented (R35, A2, A6).
    #[error("this sign-in was started in a different browser")]
    BindingMismatch,
    /// `iss` is present and differs from the upstream's issuer, or is missing although the
    /// provider advertises it, or the transaction was sent to another upstream than the
    /// one configured now (RFC 9207, A13, R67: mix-up).
    #[error("callback from an unexpected issuer")]
    IssuerMismatch,
    /// The transaction record failed its MAC: the store was edited.
    #[error("transaction record failed verification")]
    TamperedRecord,
    /// The browser's `Cookie` header is over the size we read (A21).
    #[error("{COOKIES_OVERSIZED}")]
    CookieHeaderTooLarge,
    /// The client registration is gone, edited, or no longer lists the redirect URI the
    /// code would go to (R38: re-validated before a code is issued).
    #[error("the client registration changed during sign-in")]
    ClientChanged,
    /// The upstream failed after a verified binding (its own `error=`, a failed token
    /// exchange or user lookup). The client is told `access_denied` or `server_error`,
    /// without the upstream's text (no leaking).
    #[error("the upstream provider failed: {cause}")]
    Upstream {
        /// What the upstream said (for logs).
        cause: UpstreamError,
        /// The error redirect to the validated client redirect URI.
        to_client: ClientRedirect,
    },
}

impl CallbackError {
    /// The OAuth error code.
    pub fn oauth_error(&self) -> &'static str {
        match self {
            Self::BindingMismatch | Self::IssuerMismatch => "access_denied",
            Self::TamperedRecord => "server_error",
            Self::ClientChanged => "invalid_client",
            Self::Upstream { to_client, .. } => to_client.error_code().unwrap_or("server_error"),
            _ => "invalid_request",
        }
    }

    /// Only an upstream error after the binding was verified goes back to the client.
    pub fn redirect_allowed(&self) -> bool {
        matches!(self, Self::Upstream { .. })
    }

    /// The HTTP status (303 for the client redirect).
    pub fn status(&self) -> u16 {
        match self {
            Self::BindingMismatch | Self::IssuerMismatch => 403,
            Self::TamperedRecord => 500,
            Self::Upstream { .. } => 303,
            _ => 400,
        }
    }

    /// The page or redirect to send.
    pub fn response(&self) -> Reply {
        match self {
            Self::Upstream { to_client, .. } => to_client.response(),
            Self::CookieHeaderTooLarge => cookies_oversized_page(),
            Self::BindingMismatch => crate::page::error_page(
                403,
                "Session mismatch",
                "This sign-in was approved in a different browser, or your browser did not \
                 keep our cookie. Start again from your application in this browser.",
            ),
            _ => crate::page::error_page(self.status(), "Sign-in failed", &self.to_string()),
        }
    }
}

/// A failed upstream token exchange or user lookup.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// The upstream answered with an HTTP status other than 200.
    #[error("upstream answered HTTP {0}")]
    Status(u16),
    /// The body carries an `error` member (GitHub does this with HTTP 200).
    #[error("upstream error `{0}`")]
    ErrorResponse(String),
    /// No or empty `access_token`, or a `token_type` other than bearer.
    #[error("upstream token response is incomplete")]
    Incomplete,
    /// The body could not be parsed as JSON or form data, or is too large.
    #[error("upstream response is malformed")]
    Malformed,
    /// The user document names no subject.
    #[error("upstream user document has no subject")]
    NoSubject,
    /// The host could not reach the upstream (connection error or timeout).
    #[error("upstream unreachable")]
    Unreachable,
    /// An OpenID provider's ID token is missing or fails a check (R67); the check named.
    #[error("upstream ID token refused: {0}")]
    IdToken(&'static str),
    /// The userinfo document names another user than the ID token (OpenID Connect Core
    /// §5.3.2).
    #[error("upstream user document names another subject than the ID token")]
    SubjectMismatch,
}

/// Why an OpenID provider's discovery document was refused (R67). It is read when the
/// host starts, before any client is served: these never reach a client.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The provider answered with an HTTP status other than 200.
    #[error("discovery document: HTTP {0}")]
    Status(u16),
    /// Not a JSON object of the expected members, or too large.
    #[error("discovery document is malformed")]
    Malformed,
    /// The document's `issuer` is not, byte for byte, the issuer asked for.
    #[error("discovery document names another issuer")]
    IssuerMismatch,
    /// A required endpoint is missing or not an absolute URL.
    #[error("discovery document: `{0}` missing or not an absolute URL")]
    Endpoint(&'static str),
    /// `response_types_supported` lacks `code`.
    #[error("the provider does not offer the authorization-code flow")]
    NoCodeFlow,
    /// `code_challenge_methods_supported` lacks `S256`.
    #[error("the provider does not offer PKCE S256")]
    NoPkce,
}

/// Why a `POST /token` was refused (RFC 6749 §5.2).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The body is malformed or misses a parameter.
    #[error("invalid request: {0}")]
    Params(#[from] ParamError),
    /// Client authentication failed or the client is unknown.
    #[error("client authentication failed")]
    InvalidClient,
    /// Unknown, expired or foreign code or refresh token, or a PKCE / redirect mismatch.
    #[error("invalid grant: {0}")]
    InvalidGrant(&'static str),
    /// A code was redeemed twice: the grant it created must be revoked (R43, A8).
    #[error("authorization code reused")]
    CodeReused {
        /// The grant the host must delete (its tokens stop working).
        revoke_grant: StoreKey,
    },
    /// A rotated refresh token was used again outside the grace window (R53).
    #[error("refresh token reused")]
    RefreshReused {
        /// The grant the host must delete.
        revoke_grant: StoreKey,
    },
    /// `grant_type` is neither `authorization_code` nor `refresh_token`.
    #[error("unsupported grant_type")]
    UnsupportedGrantType,
    /// A refresh asked for a scope outside the original grant.
    #[error("invalid scope")]
    InvalidScope,
    /// `resource` is not the canonical MCP resource (R21).
    #[error("invalid resource")]
    InvalidTarget,
}

impl TokenError {
    /// The RFC 6749 error code.
    pub fn oauth_error(&self) -> &'static str {
        match self {
            Self::Params(_) => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant(_) | Self::CodeReused { .. } | Self::RefreshReused { .. } => {
                "invalid_grant"
            }
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
        }
    }

    /// A back-channel error: never a browser redirect.
    pub fn redirect_allowed(&self) -> bool {
        false
    }

    /// The HTTP status (RFC 6749 §5.2: 401 for `invalid_client`, else 400).
    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidClient => 401,
            _ => 400,
        }
    }

    /// The grant the host must revoke before answering, if any.
    pub fn revoke_grant(&self) -> Option<&StoreKey> {
        match self {
            Self::CodeReused { revoke_grant } | Self::RefreshReused { revoke_grant } => {
                Some(revoke_grant)
            }
            _ => None,
        }
    }

    /// The JSON error response.
    pub fn response(&self) -> Reply {
        let mut r = Reply::json(
            self.status(),
            &serde_json::json!({ "error": self.oauth_error(), "error_description": self.to_string() }),
        );
        if self.status() == 401 {
            r.headers
                .push(("www-authenticate", "Basic realm=\"token\"".into()));
        }
        r
    }
}

/// Why a bearer token was refused at the MCP endpoint (RFC 6750 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BearerError {
    /// No `Authorization: Bearer` header (R51: the query string is never read).
    #[error("no bearer token")]
    Missing,
    /// Not one of our tokens (including upstream tokens, R50), or the MAC fails.
    #[error("invalid token")]
    Invalid,
    /// Past its expiry.
    #[error("token expired")]
    Expired,
    /// Minted for another resource (R49, A14).
    #[error("token audience mismatch")]
    WrongAudience,
    /// Its grant was revoked.
    #[error("token revoked")]
    Revoked,
    /// Its grant's upstream token has expired (R66): the host may renew it upstream and
    /// check again; otherwise the client must sign in again.
    #[error("the upstream authorization has expired")]
    UpstreamExpired,
}

impl BearerError {
    /// The RFC 6750 error code (`None` when no token was presented).
    pub fn oauth_error(&self) -> Option<&'static str> {
        match self {
            Self::Missing => None,
            _ => Some("invalid_token"),
        }
    }

    /// Never.
    pub fn redirect_allowed(&self) -> bool {
        false
    }

    /// Always 401.
    pub fn status(&self) -> u16 {
        401
    }
}

/// Why renewing a grant's upstream token failed (R66). Each maps to the bearer refusal the
/// request gets ([`bearer_error`](Self::bearer_error), so a 401 `invalid_token` from
/// [`Gate::unauthorized`](crate::Gate::unauthorized)); a refusal by the upstream ends the
/// grant ([`revoke_grant`](Self::revoke_grant): apply
/// [`Gate::upstream_refresh_failed`](crate::Gate::upstream_refresh_failed)'s step).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum UpstreamRefreshError {
    /// The grant holds no upstream refresh token: the upstream token cannot be renewed.
    #[error("no upstream refresh token")]
    NoRefreshToken,
    /// The grant read back is not the principal's, is past its expiry, or was edited:
    /// nothing is written.
    #[error("the grant changed")]
    GrantChanged,
    /// The upstream refused the refresh (`invalid_grant`: the user revoked our app, or the
    /// refresh token expired or was used): the grant ends, and the client must sign in
    /// again (R66).
    #[error("the upstream refused the refresh: {cause}")]
    Refused {
        /// What the upstream said.
        cause: UpstreamError,
        /// The grant to delete.
        revoke_grant: StoreKey,
    },
    /// The upstream could not be reached or answered in no form we read (5xx, malformed):
    /// maybe transient, so the grant stays, and serves while its upstream token is valid.
    #[error("the upstream refresh failed: {0}")]
    Unavailable(UpstreamError),
}

impl UpstreamRefreshError {
    /// The bearer refusal for the request that needed the renewal: `Revoked` once the
    /// grant is gone or changed, else `UpstreamExpired` (both 401 `invalid_token`).
    pub fn bearer_error(&self) -> BearerError {
        match self {
            Self::GrantChanged | Self::Refused { .. } => BearerError::Revoked,
            Self::NoRefreshToken | Self::Unavailable(_) => BearerError::UpstreamExpired,
        }
    }

    /// The RFC 6750 error code: always `invalid_token`.
    pub fn oauth_error(&self) -> &'static str {
        "invalid_token"
    }

    /// The grant to delete: only when the upstream refused (R66).
    pub fn revoke_grant(&self) -> Option<&StoreKey> {
        match self {
            Self::Refused { revoke_grant, .. } => Some(revoke_grant),
            _ => None,
        }
    }
}

/// Why a dynamic client registration (RFC 7591) was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RegistrationError {
    /// A redirect URI is not https or loopback http, has a fragment, or uses a refused
    /// scheme (R11, A17).
    #[error("invalid redirect_uri: {0}")]
    InvalidRedirectUri(&'static str),
    /// Other metadata is malformed, too large or unsupported.
    #[error("invalid client metadata: {0}")]
    InvalidClientMetadata(&'static str),
}

impl From<crate::redirect::RedirectUriError> for RegistrationError {
    fn from(e: crate::redirect::RedirectUriError) -> Self {
        Self::InvalidRedirectUri(e.0)
    }
}

impl RegistrationError {
    /// The RFC 7591 §3.2.2 error code.
    pub fn oauth_error(&self) -> &'static str {
        match self {
            Self::InvalidRedirectUri(_) => "invalid_redirect_uri",
            Self::InvalidClientMetadata(_) => "invalid_client_metadata",
        }
    }

    /// Never.
    pub fn redirect_allowed(&self) -> bool {
        false
    }

    /// Always 400.
    pub fn status(&self) -> u16 {
        400
    }

    /// The JSON error response.
    pub fn response(&self) -> Reply {
        Reply::json(
            400,
            &serde_json::json!({ "error": self.oauth_error(), "error_description": self.to_string() }),
        )
    }
}

/// A configuration the gate refuses to run with.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A URL setting does not parse, or has a query or fragment where none is allowed.
    #[error("`{0}` is not a valid absolute URL for this setting")]
    InvalidUrl(&'static str),
    /// `http` outside loopback development mode (R48).
    #[error("`{0}` must use https (plain http only on loopback in development mode)")]
    InsecureUrl(&'static str),
    /// A scope token has characters RFC 6749 §3.3 does not allow.
    #[error("invalid scope in configuration")]
    InvalidScope,
    /// A lifetime is zero or out of range.
    #[error("lifetime `{0}` is out of range")]
    InvalidLifetime(&'static str),
    /// An upstream setting is inconsistent (an extra authorization parameter the gate sets
    /// itself, an ID-token policy without issuers).
    #[error("upstream setting `{0}` is invalid")]
    InvalidUpstream(&'static str),
}

/// An error whose answer changes nothing in the store: its page or JSON reply.
macro_rules! reply_only {
    ($($error:ty),*) => {$(
        impl From<$error> for Step {
            fn from(e: $error) -> Self {
                Step::reply(e.response())
            }
        }
    )*};
}
reply_only!(
    AuthorizeError,
    ConsentError,
    CallbackError,
    RegistrationError
);

impl From<TokenError> for Step {
    /// A replayed code or a reused refresh token deletes the grant before the error is
    /// sent (R43, R53).
    fn from(e: TokenError) -> Self {
        Step {
            ops: e
                .revoke_grant()
                .map(|g| Op::delete(Kind::Grant, *g))
                .into_iter()
                .collect(),
            reply: e.response(),
        }
    }
}
