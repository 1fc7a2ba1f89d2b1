//! The one gate builder: the real [`Gate`] in every configuration a checker needs, with the
//! [`FakeGithub`] it talks to.

use consent_gate::{
    ClientSecret, Config, ConsentPolicy, Gate, IdTokenPolicy, Keys, Lifetimes, RevocationShape,
    ServerKey, UnixTime, UpstreamConfig,
};

use super::github::{FakeGithub, UPSTREAM_CLIENT_ID, UPSTREAM_SECRET};
use super::google::GoogleShapes;

/// The core's fault switches, each re-creating a known bypass. They exist only in builds
/// with `RUSTFLAGS="--cfg consent_gate_faults"`.
#[cfg(consent_gate_faults)]
pub use consent_gate::Faults;

/// A build without `--cfg consent_gate_faults` has no fault switches: this stand-in has
/// one value, [`Faults::NONE`], so that a [`GateSetup`] (and the World's `Setup`) is written the same in every
/// build.
#[cfg(not(consent_gate_faults))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Faults;

#[cfg(not(consent_gate_faults))]
impl Faults {
    /// No fault (the only value in this build).
    pub const NONE: Faults = Faults;
}

/// Our issuer in the loopback development configuration.
pub const ISSUER: &str = "http://127.0.0.1:8080";
/// The MCP resource in the loopback development configuration.
pub const RESOURCE: &str = "http://127.0.0.1:8080/mcp";
/// Our issuer in the https configuration: cookies carry `__Host-` and `Secure` (R30).
pub const HTTPS_ISSUER: &str = "https://mcp.example";
/// The start of every clock of the kit.
pub const T0: UnixTime = UnixTime(1_700_000_000);
/// The server's HMAC key (a second gate with the same key mints tokens the first verifies).
pub const SERVER_KEY: [u8; 32] = [7; 32];

/// How to configure the gate under test.
#[derive(Clone, Debug)]
pub struct GateSetup {
    /// https issuer with `__Host-` cookies instead of the loopback development mode.
    pub https: bool,
    /// Another canonical MCP resource than `{issuer}/mcp`.
    pub resource: Option<&'static str>,
    /// The scopes offered to MCP clients.
    pub scopes: Vec<&'static str>,
    /// The consent policy.
    pub policy: ConsentPolicy,
    /// The lifetimes.
    pub lifetimes: Lifetimes,
    /// Whether the gate knows the upstream's RFC 9207 issuer (`UpstreamConfig::issuer`).
    pub upstream_issuer: bool,
    /// The upstream's name on the consent page (configured text, escaped too: R23).
    pub upstream_name: &'static str,
    /// The real `UpstreamConfig::github` preset (github.com's endpoints and issuer) instead
    /// of the double's: for checkers that feed the gate GitHub's recorded answers by hand
    /// (the fuzz crate's surface fixture), never its [`FakeGithub`].
    pub github_com: bool,
    /// The server key.
    pub key: [u8; 32],
    /// A retired key, kept for verification only (`Keys::with_previous`).
    pub previous_key: Option<[u8; 32]>,
    /// Fault switches (only `Faults::NONE` without `--cfg consent_gate_faults`).
    pub faults: Faults,
    /// Client ID Metadata Documents accepted (`ConfigBuilder::client_metadata_documents`).
    pub metadata_documents: bool,
    /// The upstream is an OpenID provider in Google's shapes (`UpstreamConfig::google`'s
    /// settings on the double's endpoints): nonce, ID token, userinfo (R67, R68).
    pub openid: bool,
    /// With `openid`: the Workspace domain sign-in is restricted to (`hd`).
    pub hosted_domain: Option<&'static str>,
}

impl Default for GateSetup {
    fn default() -> Self {
        Self {
            https: false,
            resource: None,
            scopes: vec!["mcp"],
            policy: ConsentPolicy::Always,
            lifetimes: Lifetimes::default(),
            upstream_issuer: true,
            upstream_name: "GitHub",
            github_com: false,
            key: SERVER_KEY,
            previous_key: None,
            metadata_documents: false,
            openid: false,
            hosted_domain: None,
            faults: Faults::NONE,
        }
    }
}

impl GateSetup {
    /// The https configuration (`__Host-` cookies), otherwise the defaults.
    pub fn https() -> Self {
        Self {
            https: true,
            ..Self::default()
        }
    }

    /// Our issuer.
    pub fn issuer(&self) -> &'static str {
        if self.https { HTTPS_ISSUER } else { ISSUER }
    }

    /// The GitHub this gate is configured for, with our callback registered there.
    pub fn github(&self) -> FakeGithub {
        let (base, api) = if self.https {
            ("https://github.example", "https://api.github.example")
        } else {
            ("http://127.0.0.1:8080/up", "http://127.0.0.1:8080/up/api")
        };
        let mut github = FakeGithub::new(base, api, format!("{}/callback", self.issuer()));
        if !self.upstream_issuer {
            github.send_iss = None;
        }
        if self.openid {
            let mut google = GoogleShapes::new();
            google.hosted_domain = self.hosted_domain.map(str::to_owned);
            github.openid = Some(google);
        }
        github
    }

    /// The gate, configured for `github` (from [`GateSetup::github`]).
    pub fn gate(&self, github: &FakeGithub) -> Gate {
        let issuer = self.issuer();
        let resource = self.resource.map_or(format!("{issuer}/mcp"), str::to_owned);
        let mut upstream = if self.github_com {
            UpstreamConfig::github(UPSTREAM_CLIENT_ID, ClientSecret::new(UPSTREAM_SECRET))
        } else {
            let mut custom = UpstreamConfig::custom(
                "GitHub",
                github.authorize_endpoint.clone(),
                github.token_endpoint.clone(),
                github.user_endpoint.clone(),
                UPSTREAM_CLIENT_ID,
                ClientSecret::new(UPSTREAM_SECRET),
            );
            custom.issuer = github.issuer.clone().into();
            custom.scopes = vec!["read:user".into()];
            custom.subject_prefix = "github:".into();
            // As the preset: revoking our grant deletes the GitHub token (R66).
            custom.revocation_endpoint = Some(github.token_deletion_endpoint.clone());
            custom.revocation_shape = RevocationShape::GithubToken;
            custom
        };
        if self.openid {
            // Google's preset, on the double's endpoints and issuer.
            let mut google =
                UpstreamConfig::google(UPSTREAM_CLIENT_ID, ClientSecret::new(UPSTREAM_SECRET));
            if let Some(domain) = self.hosted_domain {
                google = google.hosted_domain(domain);
            }
            let mut policy = IdTokenPolicy::new(github.issuer.clone());
            policy.hosted_domain = self.hosted_domain.map(str::to_owned);
            upstream.scopes = google.scopes;
            upstream.revocation_endpoint = Some(github.revocation_endpoint.clone());
            upstream.revocation_shape = RevocationShape::Rfc7009;
            upstream.subject_prefix = google.subject_prefix;
            upstream.authorize_params = google.authorize_params;
            upstream.id_token = Some(policy);
        }
        upstream.display_name = self.upstream_name.into();
        if !self.upstream_issuer {
            upstream.issuer = None;
        }
        let server_key = |bytes: &[u8; 32]| match ServerKey::new(bytes) {
            Some(key) => key,
            None => unreachable!("a 32-byte key is always accepted"),
        };
        let mut keys = Keys::new(server_key(&self.key));
        if let Some(previous) = &self.previous_key {
            keys = keys.with_previous(server_key(previous));
        }
        let builder = Config::builder(issuer, resource, upstream, keys)
            .dev_loopback_http(!self.https)
            .consent_policy(self.policy)
            .lifetimes(self.lifetimes)
            .scopes(self.scopes.iter().copied())
            .client_metadata_documents(self.metadata_documents);
        // Without `--cfg consent_gate_faults` the setup's `Faults` has nothing to switch on.
        #[cfg(consent_gate_faults)]
        let builder = builder.faults(self.faults);
        match builder.build() {
            Ok(config) => Gate::new(config),
            Err(e) => panic!("the kit's configuration is valid: {e}"),
        }
    }

    /// The gate and its GitHub.
    pub fn build(&self) -> (Gate, FakeGithub) {
        let github = self.github();
        (self.gate(&github), github)
    }
}
