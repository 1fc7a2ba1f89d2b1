//! Issuer, resource, upstream endpoints, keys, lifetimes and policies.
//!
//! A [`Config`] is validated once, when built; after that every step can rely on it.

use std::sync::Arc;

use crate::cookie::CookieMode;
use crate::crypto::{ClientSecret, Keys};
use crate::error::ConfigError;
use crate::openid::{IdTokenPolicy, ProviderMetadata};
use crate::page::UpstreamPiece;
use crate::params::{append_pair, start_query};
use crate::scope::ScopeSet;

/// How long each kind of record lives, in seconds. Each default is documented with the
/// requirement it follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Lifetimes {
    /// A rendered consent page (default 600 s).
    pub consent: u64,
    /// An upstream transaction, from approval to callback (default 600 s, R36).
    pub transaction: u64,
    /// An authorization code (default 60 s; OAuth 2.1 §4.1.2 allows up to 10 min, R42).
    pub code: u64,
    /// An access token (default 3600 s, R52).
    pub access_token: u64,
    /// A refresh token (default 30 days).
    pub refresh_token: u64,
    /// How long a rotated refresh token may still be presented by a concurrent refresh
    /// and get the same successor (default 10 s; 0 disables; peer bug FastMCP #4901).
    pub refresh_grace: u64,
    /// A remembered consent, when that policy is on (default 30 days).
    pub remembered_consent: u64,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            consent: 600,
            transaction: 600,
            code: 60,
            access_token: 3600,
            refresh_token: 30 * 24 * 3600,
            refresh_grace: 10,
            remembered_consent: 30 * 24 * 3600,
        }
    }
}

/// Whether consent is asked every time (the default) or remembered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConsentPolicy {
    /// Show the consent page on every authorization (A4: FastMCP's default since
    /// GHSA-6x8h-498w-gv8c).
    #[default]
    Always,
    /// Remember an approval in a signed browser cookie, keyed by client id, exact redirect
    /// URI, scope and resource, capped, and honoured only on navigations with
    /// `Sec-Fetch-Site` of `none` or `same-origin` (R71: `same-site` and a missing header
    /// prompt).
    Remember,
}

/// The upstream OAuth provider this server is a client of, with its static client id.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpstreamConfig {
    /// Shown on the consent page ("… then sign in with GitHub").
    pub display_name: String,
    /// The upstream's RFC 9207 issuer; when set, an `iss` on the callback must equal it.
    pub issuer: Option<String>,
    /// The browser-facing authorization endpoint.
    pub authorize_endpoint: String,
    /// The back-channel token endpoint.
    pub token_endpoint: String,
    /// The user document endpoint (GitHub `GET /user`, OIDC userinfo).
    pub user_endpoint: String,
    /// Our static client id at the upstream.
    pub client_id: String,
    /// Our client secret at the upstream.
    pub client_secret: ClientSecret,
    /// The upstream scopes we request (shown on the consent page, R27).
    pub scopes: Vec<String>,
    /// Prefix of subjects (`github:` + the numeric user id).
    pub subject_prefix: String,
    /// An OpenID provider: `nonce` is sent, and the token response must carry an ID token
    /// that passes these checks; the user document's `sub` must equal its `sub` (R67).
    pub id_token: Option<IdTokenPolicy>,
    /// The callback must carry RFC 9207 `iss` (set when the provider advertises
    /// `authorization_response_iss_parameter_supported`; R67).
    pub require_callback_issuer: bool,
    /// Further authorization-request parameters, sent as they are (Google's
    /// `access_type=offline` and `prompt=consent`, `hd`; R68). The parameters the gate
    /// sets itself are refused here ([`ConfigBuilder::build`]).
    pub authorize_params: Vec<(String, String)>,
    /// The upstream's revocation endpoint, if it has one: revoking our grant then revokes
    /// the upstream's tokens too (R66), in the endpoint's [`shape`](Self::revocation_shape).
    pub revocation_endpoint: Option<String>,
    /// How [`revocation_endpoint`](Self::revocation_endpoint) is spoken to.
    pub revocation_shape: RevocationShape,
}

/// The two forms of upstream revocation the gate speaks (R66).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevocationShape {
    /// RFC 7009: `POST` of `token`, `token_type_hint` and our client credentials as a
    /// form (Google, discovered OpenID providers). The upstream refresh token is sent
    /// where the grant holds one (it ends the upstream grant), else the access token.
    #[default]
    Rfc7009,
    /// GitHub's OAuth-app token deletion: `DELETE /applications/{client_id}/token` with
    /// HTTP Basic `client_id:client_secret` and `{"access_token": …}` as JSON, answered
    /// `204` (docs/upstreams.md#github-revocation). It revokes that one token, not the
    /// user's whole authorization of our app (`…/grant` would end every other sign-in
    /// of the same user through this server too).
    GithubToken,
}

/// GitHub's token deletion endpoint for our OAuth app: the client id percent-encoded as
/// one path segment (an id is `[A-Za-z0-9]`, so in practice unchanged).
fn github_token_endpoint(client_id: &str) -> String {
    let mut url = String::from("https://api.github.com/applications/");
    for b in client_id.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                url.push(char::from(b))
            }
            _ => url.push_str(&format!("%{b:02X}")),
        }
    }
    url.push_str("/token");
    url
}

impl UpstreamConfig {
    /// github.com with the endpoints from GitHub's documentation
    /// (docs/upstreams.md#github-endpoints).
    pub fn github(client_id: impl Into<String>, client_secret: ClientSecret) -> Self {
        let client_id = client_id.into();
        Self {
            display_name: "GitHub".into(),
            issuer: Some("https://github.com/login/oauth".into()),
            authorize_endpoint: "https://github.com/login/oauth/authorize".into(),
            token_endpoint: "https://github.com/login/oauth/access_token".into(),
            user_endpoint: "https://api.github.com/user".into(),
            client_secret,
            scopes: vec!["read:user".into()],
            subject_prefix: "github:".into(),
            id_token: None,
            require_callback_issuer: false,
            authorize_params: Vec::new(),
            revocation_endpoint: Some(github_token_endpoint(&client_id)),
            revocation_shape: RevocationShape::GithubToken,
            client_id,
        }
    }

    /// Google, as an OpenID provider with its published endpoints (docs/upstreams.md#google):
    /// scopes `openid email profile`; `access_type=offline` and `prompt=consent`, so that
    /// every sign-in yields an upstream refresh token (R68); ID tokens from
    /// `https://accounts.google.com` or the legacy `accounts.google.com`. Subjects are
    /// `google:` + `sub`.
    pub fn google(client_id: impl Into<String>, client_secret: ClientSecret) -> Self {
        let issuer = "https://accounts.google.com";
        let mut policy = IdTokenPolicy::new(issuer);
        policy.issuers.push("accounts.google.com".into());
        Self {
            display_name: "Google".into(),
            // Google sends `iss` on callbacks without advertising it: checked when
            // present, not required (docs/upstreams.md#google).
            issuer: Some(issuer.into()),
            authorize_endpoint: "https://accounts.google.com/o/oauth2/v2/auth".into(),
            token_endpoint: "https://oauth2.googleapis.com/token".into(),
            user_endpoint: "https://openidconnect.googleapis.com/v1/userinfo".into(),
            client_id: client_id.into(),
            client_secret,
            scopes: vec!["openid".into(), "email".into(), "profile".into()],
            subject_prefix: "google:".into(),
            id_token: Some(policy),
            require_callback_issuer: false,
            authorize_params: vec![
                ("access_type".into(), "offline".into()),
                ("prompt".into(), "consent".into()),
            ],
            revocation_endpoint: Some("https://oauth2.googleapis.com/revoke".into()),
            revocation_shape: RevocationShape::Rfc7009,
        }
    }

    /// Restricts sign-in to one Google Workspace domain: `hd` is sent as a hint, and the
    /// ID token's `hd` claim must equal it (the hint alone restricts nothing; R68).
    pub fn hosted_domain(mut self, domain: impl Into<String>) -> Self {
        let domain = domain.into();
        self.authorize_params.retain(|(k, _)| k != "hd");
        self.authorize_params.push(("hd".into(), domain.clone()));
        if let Some(policy) = &mut self.id_token {
            policy.hosted_domain = Some(domain);
        }
        self
    }

    /// Any OpenID provider, from its checked discovery document
    /// ([`ProviderMetadata::parse`]): scopes `openid`; the callback must carry `iss` when
    /// the document says the provider sends it; its revocation endpoint, if any, receives
    /// the upstream tokens of a grant we revoke (R66). Subjects are the issuer's host, `:`,
    /// and `sub`.
    pub fn openid(
        provider: &ProviderMetadata,
        client_id: impl Into<String>,
        client_secret: ClientSecret,
    ) -> Self {
        let host = url::Url::parse(&provider.issuer)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        Self {
            display_name: host.clone(),
            issuer: Some(provider.issuer.clone()),
            authorize_endpoint: provider.authorization_endpoint.clone(),
            token_endpoint: provider.token_endpoint.clone(),
            user_endpoint: provider.userinfo_endpoint.clone(),
            client_id: client_id.into(),
            client_secret,
            scopes: vec!["openid".into()],
            subject_prefix: format!("{host}:"),
            id_token: Some(IdTokenPolicy::new(provider.issuer.clone())),
            require_callback_issuer: provider.iss_parameter_supported,
            authorize_params: Vec::new(),
            revocation_endpoint: provider.revocation_endpoint.clone(),
            revocation_shape: RevocationShape::Rfc7009,
        }
    }

    /// Any provider that speaks the authorization-code flow with PKCE S256.
    pub fn custom(
        display_name: impl Into<String>,
        authorize_endpoint: impl Into<String>,
        token_endpoint: impl Into<String>,
        user_endpoint: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: ClientSecret,
    ) -> Self {
        Self {
            display_name: display_name.into(),
            issuer: None,
            authorize_endpoint: authorize_endpoint.into(),
            token_endpoint: token_endpoint.into(),
            user_endpoint: user_endpoint.into(),
            client_id: client_id.into(),
            client_secret,
            scopes: Vec::new(),
            subject_prefix: String::new(),
            id_token: None,
            require_callback_issuer: false,
            authorize_params: Vec::new(),
            revocation_endpoint: None,
            revocation_shape: RevocationShape::Rfc7009,
        }
    }

    /// Who this upstream is, for the transaction record (R67: mix-up): its issuer, or its
    /// token endpoint when it names none.
    pub(crate) fn identity(&self) -> &str {
        self.issuer.as_deref().unwrap_or(&self.token_endpoint)
    }
}

/// The fault switches: each re-creates a known bypass, so that every checker (the attack
/// tests, the model check, the refinement test, the fuzzers, the example's smoke walk) can
/// prove that it catches it.
///
/// They exist only in builds with `RUSTFLAGS="--cfg consent_gate_faults"`: a compiler flag
/// that no `Cargo.toml` in the build graph can set, unlike a feature, which any crate that
/// depends on this one could turn on for every other crate in the same build. In any other
/// build this type is private and the gate's switches are the constant [`Faults::NONE`], so
/// the optimizer removes every fault branch; neither the switches nor their names reach
/// the binary.
// Without the cfg the type is `pub` in a private module and not re-exported: crate-private.
#[cfg_attr(not(consent_gate_faults), allow(unreachable_pub))]
#[cfg_attr(consent_gate_faults, derive(Debug))]
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Faults {
    /// A1/A4: a remembered consent counts for every client, not just the approved one.
    pub consent_per_browser: bool,
    /// A3: the consent CSRF token is checked against the server record only.
    pub csrf_unbound: bool,
    /// A2: the callback does not check the binding cookie.
    pub callback_unbound: bool,
    /// A7: the callback hands the transaction back to the store.
    pub state_reusable: bool,
    /// A8: a redeemed code is stored back as unredeemed.
    pub code_reusable: bool,
    /// A10: `redirect_uri` is matched by prefix.
    pub redirect_prefix_match: bool,
    /// A13: the callback's RFC 9207 `iss` is not compared with the upstream's issuer (nor
    /// required where the provider advertises it), and the transaction's upstream hash is
    /// not checked.
    pub issuer_unchecked: bool,
}

#[cfg_attr(not(consent_gate_faults), allow(unreachable_pub))]
impl Faults {
    /// Every switch, by name, for checkers that must catch each one.
    #[cfg(consent_gate_faults)]
    pub const ALL: [(&'static str, Faults); 7] = [
        (
            "consent_per_browser",
            Faults {
                consent_per_browser: true,
                ..Faults::NONE
            },
        ),
        (
            "csrf_unbound",
            Faults {
                csrf_unbound: true,
                ..Faults::NONE
            },
        ),
        (
            "callback_unbound",
            Faults {
                callback_unbound: true,
                ..Faults::NONE
            },
        ),
        (
            "state_reusable",
            Faults {
                state_reusable: true,
                ..Faults::NONE
            },
        ),
        (
            "code_reusable",
            Faults {
                code_reusable: true,
                ..Faults::NONE
            },
        ),
        (
            "redirect_prefix_match",
            Faults {
                redirect_prefix_match: true,
                ..Faults::NONE
            },
        ),
        (
            "issuer_unchecked",
            Faults {
                issuer_unchecked: true,
                ..Faults::NONE
            },
        ),
    ];

    /// No fault.
    pub const NONE: Faults = Faults {
        consent_per_browser: false,
        csrf_unbound: false,
        callback_unbound: false,
        state_reusable: false,
        code_reusable: false,
        redirect_prefix_match: false,
        issuer_unchecked: false,
    };
}

/// Everything the gate needs to know, validated.
#[derive(Clone, Debug)]
pub struct Config {
    pub(crate) issuer: String,
    pub(crate) resource: String,
    pub(crate) callback_uri: String,
    pub(crate) upstream: UpstreamConfig,
    /// What the consent page shows of the upstream (escaped once) and its origin (the
    /// page's CSP allows it); shared by every prompt.
    pub(crate) upstream_piece: Arc<UpstreamPiece>,
    /// The start of every upstream authorization URL: the endpoint with `response_type`,
    /// `client_id`, `redirect_uri` and `scope`, encoded once.
    pub(crate) upstream_authorize_prefix: String,
    /// The token audience's hash, computed once (every bearer check compares it).
    pub(crate) audience: [u8; 16],
    pub(crate) scopes_supported: ScopeSet,
    pub(crate) keys: Keys,
    pub(crate) lifetimes: Lifetimes,
    pub(crate) cookie_mode: CookieMode,
    pub(crate) consent_policy: ConsentPolicy,
    /// Whether the host fetches Client ID Metadata Documents (R57).
    pub(crate) metadata_documents: bool,
    #[cfg(consent_gate_faults)]
    pub(crate) faults: Faults,
}

/// Builds a [`Config`].
#[derive(Clone, Debug)]
#[must_use]
pub struct ConfigBuilder {
    issuer: String,
    resource: String,
    upstream: UpstreamConfig,
    keys: Keys,
    scopes: Vec<String>,
    lifetimes: Lifetimes,
    dev_loopback_http: bool,
    consent_policy: ConsentPolicy,
    callback_path: String,
    metadata_documents: bool,
    #[cfg(consent_gate_faults)]
    faults: Faults,
}

impl Config {
    /// Starts a configuration.
    ///
    /// * `issuer`: our issuer identifier, e.g. `https://mcp.example.com` (no path is
    ///   recommended: MCP 2025-03-26 clients look for metadata at the origin root, R9).
    /// * `resource`: the canonical URI of the MCP endpoint, e.g.
    ///   `https://mcp.example.com/mcp`, exactly as clients use it (R4).
    pub fn builder(
        issuer: impl Into<String>,
        resource: impl Into<String>,
        upstream: UpstreamConfig,
        keys: Keys,
    ) -> ConfigBuilder {
        ConfigBuilder {
            issuer: issuer.into(),
            resource: resource.into(),
            upstream,
            keys,
            scopes: vec!["mcp".into()],
            lifetimes: Lifetimes::default(),
            dev_loopback_http: false,
            consent_policy: ConsentPolicy::Always,
            callback_path: "/callback".into(),
            metadata_documents: false,
            #[cfg(consent_gate_faults)]
            faults: Faults::NONE,
        }
    }

    /// Our issuer identifier.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The canonical MCP resource URI (also the token audience, R4/R21/R49).
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// Whether Client ID Metadata Documents are accepted (R57).
    pub fn metadata_documents(&self) -> bool {
        self.metadata_documents
    }

    /// The upstream redirect URI: where the upstream sends the browser back.
    pub fn callback_uri(&self) -> &str {
        &self.callback_uri
    }

    /// The upstream provider.
    pub fn upstream(&self) -> &UpstreamConfig {
        &self.upstream
    }

    /// The lifetimes in force.
    pub fn lifetimes(&self) -> &Lifetimes {
        &self.lifetimes
    }

    /// The scopes this server offers to MCP clients.
    pub fn scopes_supported(&self) -> &ScopeSet {
        &self.scopes_supported
    }

    /// The fault switches in force (see [`Faults`]).
    #[cfg(consent_gate_faults)]
    pub(crate) fn faults(&self) -> Faults {
        self.faults
    }

    /// No fault switch exists in this build: a constant, so that every fault branch is
    /// dead code.
    #[cfg(not(consent_gate_faults))]
    #[inline(always)]
    pub(crate) const fn faults(&self) -> Faults {
        Faults::NONE
    }
}

fn check_url(value: &str, what: &'static str, dev: bool) -> Result<url::Url, ConfigError> {
    let url = url::Url::parse(value).map_err(|_| ConfigError::InvalidUrl(what))?;
    if url.fragment().is_some() || url.cannot_be_a_base() {
        return Err(ConfigError::InvalidUrl(what));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http"
            if dev
                && url
                    .host()
                    .is_some_and(|h| crate::redirect::is_loopback_host(&h)) =>
        {
            Ok(url)
        }
        "http" => Err(ConfigError::InsecureUrl(what)),
        _ => Err(ConfigError::InvalidUrl(what)),
    }
}

impl ConfigBuilder {
    /// The scopes offered to MCP clients (default `["mcp"]`).
    pub fn scopes(mut self, scopes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Lifetimes other than the defaults.
    pub fn lifetimes(mut self, lifetimes: Lifetimes) -> Self {
        self.lifetimes = lifetimes;
        self
    }

    /// Allows `http://` issuer, resource and upstream on loopback hosts only, with cookies
    /// that drop `Secure` and the `__Host-` prefix (which plain HTTP forbids). For
    /// development on a laptop; refused for any non-loopback host (R48).
    pub fn dev_loopback_http(mut self, on: bool) -> Self {
        self.dev_loopback_http = on;
        self
    }

    /// The consent policy (default [`ConsentPolicy::Always`]).
    pub fn consent_policy(mut self, policy: ConsentPolicy) -> Self {
        self.consent_policy = policy;
        self
    }

    /// Client ID Metadata Documents (R57, off by default): an `https` URL client id is a
    /// document the host fetches under its SSRF policy (R58) and hands to
    /// [`Gate::accept_metadata_document`](crate::Gate::accept_metadata_document); the
    /// metadata says `client_id_metadata_document_supported: true`. Turn it on only in a
    /// host that fetches them (`consent-gate-axum` does).
    pub fn client_metadata_documents(mut self, on: bool) -> Self {
        self.metadata_documents = on;
        self
    }

    /// The path of the upstream callback under the issuer (default `/callback`).
    pub fn callback_path(mut self, path: impl Into<String>) -> Self {
        self.callback_path = path.into();
        self
    }

    /// Turns fault switches on (tests, model checking and fuzzing only: builds with
    /// `--cfg consent_gate_faults`).
    #[cfg(consent_gate_faults)]
    pub fn faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// Validates and builds.
    pub fn build(self) -> Result<Config, ConfigError> {
        let dev = self.dev_loopback_http;
        let issuer_url = check_url(&self.issuer, "issuer", dev)?;
        if issuer_url.query().is_some() {
            return Err(ConfigError::InvalidUrl("issuer"));
        }
        check_url(&self.resource, "resource", dev)?;
        let upstream_origin = check_url(
            &self.upstream.authorize_endpoint,
            "upstream.authorize_endpoint",
            dev,
        )?
        .origin()
        .ascii_serialization();
        let audience = crate::crypto::audience_hash(&self.resource);
        check_url(
            &self.upstream.token_endpoint,
            "upstream.token_endpoint",
            dev,
        )?;
        check_url(&self.upstream.user_endpoint, "upstream.user_endpoint", dev)?;
        if let Some(endpoint) = &self.upstream.revocation_endpoint {
            check_url(endpoint, "upstream.revocation_endpoint", dev)?;
        }
        if !self.callback_path.starts_with('/') {
            return Err(ConfigError::InvalidUrl("callback_path"));
        }
        let issuer = self.issuer.trim_end_matches('/').to_owned();
        let callback_uri = format!("{issuer}{}", self.callback_path);
        check_url(&callback_uri, "callback_path", dev)?;
        let scopes_supported =
            ScopeSet::parse(&self.scopes.join(" ")).ok_or(ConfigError::InvalidScope)?;
        let upstream_scope = self.upstream.scopes.join(" ");
        if ScopeSet::parse(&upstream_scope).is_none() {
            return Err(ConfigError::InvalidScope);
        }
        let l = self.lifetimes;
        for (v, name, max) in [
            (l.consent, "consent", 24 * 3600),
            (l.transaction, "transaction", 24 * 3600),
            (l.code, "code", 600),
            (l.access_token, "access_token", 7 * 24 * 3600),
            (l.refresh_token, "refresh_token", 400 * 24 * 3600),
            (l.remembered_consent, "remembered_consent", 400 * 24 * 3600),
        ] {
            if v == 0 || v > max {
                return Err(ConfigError::InvalidLifetime(name));
            }
        }
        if l.refresh_grace > 300 {
            return Err(ConfigError::InvalidLifetime("refresh_grace"));
        }
        let cookie_mode = if issuer_url.scheme() == "https" {
            CookieMode::Secure
        } else {
            CookieMode::DevLoopback
        };
        let upstream_piece = Arc::new(UpstreamPiece::new(
            &self.upstream.display_name,
            &self.upstream.scopes,
            upstream_origin,
        ));
        let mut upstream_authorize_prefix = self.upstream.authorize_endpoint.clone();
        start_query(&mut upstream_authorize_prefix);
        append_pair(&mut upstream_authorize_prefix, "response_type", "code");
        append_pair(
            &mut upstream_authorize_prefix,
            "client_id",
            &self.upstream.client_id,
        );
        append_pair(
            &mut upstream_authorize_prefix,
            "redirect_uri",
            &callback_uri,
        );
        if !upstream_scope.is_empty() {
            append_pair(&mut upstream_authorize_prefix, "scope", &upstream_scope);
        }
        for (name, value) in &self.upstream.authorize_params {
            // The gate's own parameters, and `resource`: the MCP client's resource is ours,
            // never the upstream's (R68: Azure refuses one it does not know).
            const OURS: [&str; 9] = [
                "response_type",
                "client_id",
                "redirect_uri",
                "scope",
                "state",
                "code_challenge",
                "code_challenge_method",
                "nonce",
                "resource",
            ];
            if name.is_empty() || OURS.contains(&name.as_str()) {
                return Err(ConfigError::InvalidUpstream("authorize_params"));
            }
            append_pair(&mut upstream_authorize_prefix, name, value);
        }
        if self
            .upstream
            .id_token
            .as_ref()
            .is_some_and(|p| p.issuers.is_empty())
        {
            return Err(ConfigError::InvalidUpstream("id_token.issuers"));
        }
        Ok(Config {
            issuer,
            resource: self.resource,
            callback_uri,
            upstream: self.upstream,
            scopes_supported,
            keys: self.keys,
            lifetimes: l,
            cookie_mode,
            consent_policy: self.consent_policy,
            metadata_documents: self.metadata_documents,
            #[cfg(consent_gate_faults)]
            faults: self.faults,
            upstream_piece,
            upstream_authorize_prefix,
            audience,
        })
    }
}
