//! Client registration (RFC 7591): the [`ClientRecord`] a registration creates and the
//! redirect-URI matching every later step asks it for (R17, R18).

use serde::{Deserialize, Serialize};

use crate::client_document::{
    MAX_METADATA_DOCUMENT, document_expiry, is_metadata_document_url, metadata_document_host,
};
use crate::cookie::CookieMode;
use crate::crypto::{
    MacWriter, RecordMac, Sealed, StoreKey, UNSEALED, b64, ct_eq, fresh32, sha256_labeled,
};
use crate::error::RegistrationError;
use crate::redirect::RedirectUri;
use crate::reply::Reply;
use crate::step::{Kind, Op, Record, Step};
use crate::{Entropy, Gate, UnixTime};

/// Most redirect URIs per client.
const MAX_REDIRECT_URIS: usize = 10;
/// Longest client name.
const MAX_CLIENT_NAME: usize = 100;
/// Largest registration body.
pub const MAX_REGISTRATION_BODY: usize = 16 * 1024;

/// How a client authenticates at the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenAuthMethod {
    /// A public client (every MCP client on a user's machine).
    None,
    /// `client_secret` in the form body.
    ClientSecretPost,
    /// HTTP Basic.
    ClientSecretBasic,
}

impl TokenAuthMethod {
    fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ClientSecretPost => "client_secret_post",
            Self::ClientSecretBasic => "client_secret_basic",
        }
    }
}

/// A registered client: store it under [`ClientRecord::client_id`]. It carries a MAC, so
/// an edited record (say, a swapped redirect URI, A16) is refused when used.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClientRecord {
    client_id: String,
    secret_hash: Option<[u8; 32]>,
    auth_method: TokenAuthMethod,
    client_name: Option<String>,
    redirect_uris: Vec<RedirectUri>,
    refresh_allowed: bool,
    native: bool,
    issued_at: UnixTime,
    /// Set for a Client ID Metadata Document's client: until when the fetched document
    /// stands in for a registration (R57). A registration has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<UnixTime>,
    mac: RecordMac,
}

impl Sealed for ClientRecord {
    const LABEL: &'static str = "client record v1";
    fn feed(&self, w: &mut MacWriter) {
        w.str(&self.client_id)
            .bytes(self.secret_hash.as_ref().map_or(&[][..], |h| &h[..]))
            .str(self.auth_method.as_str())
            .opt_str(self.client_name.as_deref())
            .u64(self.redirect_uris.len() as u64);
        for r in &self.redirect_uris {
            w.str(r.as_str());
        }
        w.u64(u64::from(self.refresh_allowed))
            .u64(u64::from(self.native))
            .u64(self.issued_at.0);
        // Only documents have it, so registrations keep the MACs they were stored with.
        if let Some(expires_at) = self.expires_at {
            w.str("document until").u64(expires_at.0);
        }
    }
    fn mac(&self) -> &RecordMac {
        &self.mac
    }
}

impl ClientRecord {
    /// The client id (the store key of this record; not a secret).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The store key of this record.
    pub fn key(&self) -> StoreKey {
        StoreKey::client(&self.client_id)
    }

    /// The self-asserted name (R12: never shown without the redirect host).
    pub fn client_name(&self) -> Option<&str> {
        self.client_name.as_deref()
    }

    /// The registered redirect URIs.
    pub fn redirect_uris(&self) -> &[RedirectUri] {
        &self.redirect_uris
    }

    /// How the client authenticates at the token endpoint.
    pub fn auth_method(&self) -> TokenAuthMethod {
        self.auth_method
    }

    /// When the client registered, or its metadata document was fetched (hosts choose
    /// how long to keep registrations).
    pub fn issued_at(&self) -> UnixTime {
        self.issued_at
    }

    /// The domain that published the client's metadata document (the host of its URL
    /// client id), for a Client ID Metadata Document's client; `None` for a registered
    /// client, whose every detail is its own claim (R59).
    pub fn verified_domain(&self) -> Option<String> {
        metadata_document_host(&self.client_id)
    }

    /// Whether the client registered the `refresh_token` grant.
    pub fn refresh_allowed(&self) -> bool {
        self.refresh_allowed
    }

    /// Whether `presented` matches a registered redirect URI: exactly (R17), or for an
    /// `http` loopback registration with any port (R18). The A10 fault switch turns this
    /// into prefix matching.
    pub(crate) fn redirect_matches(&self, presented: &str, prefix_fault: bool) -> bool {
        self.redirect_uris.iter().any(|r| {
            if prefix_fault {
                r.matches_by_prefix(presented)
            } else {
                r.matches(presented)
            }
        })
    }

    /// The presented redirect URI, validated, if one of the registered ones matches it
    /// (R17 exactly; R18 for loopback, any port). The match is the presented string
    /// itself, so it is kept rather than copied.
    pub(crate) fn match_redirect(
        &self,
        presented: String,
        prefix_fault: bool,
    ) -> Option<RedirectUri> {
        if prefix_fault {
            return self
                .redirect_matches(&presented, true)
                .then(|| RedirectUri::unvalidated(presented));
        }
        self.redirect_uris
            .iter()
            .find_map(|r| r.matching(&presented))
    }

    /// Verifies a presented secret in constant time.
    pub(crate) fn secret_matches(&self, secret: &str) -> bool {
        match &self.secret_hash {
            Some(h) => ct_eq(h, &sha256_labeled("client secret", secret.as_bytes())),
            None => false,
        }
    }
}

#[derive(Deserialize)]
struct RegistrationRequest {
    /// Ignored in a registration; a metadata document's own URL (R57).
    client_id: Option<String>,
    redirect_uris: Option<Vec<String>>,
    client_name: Option<String>,
    token_endpoint_auth_method: Option<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    application_type: Option<String>,
    scope: Option<String>,
}

/// A successful registration: the record to store and the `201 Created` to send.
#[derive(Debug)]
#[must_use = "store the record, then send the reply"]
pub struct Registered {
    /// The record to store under its client id.
    pub record: ClientRecord,
    /// The RFC 7591 §3.2.1 response (echoes the registered metadata).
    pub reply: Reply,
}

/// Client metadata that passed validation, from a registration or a metadata document.
struct Metadata {
    redirect_uris: Vec<RedirectUri>,
    client_name: Option<String>,
    auth_method: TokenAuthMethod,
    grant_types: Vec<String>,
    native: bool,
}

impl Gate {
    /// The rules every client's metadata meets, registered or published (R11, R15, R61).
    fn validate_metadata(&self, req: &RegistrationRequest) -> Result<Metadata, RegistrationError> {
        use RegistrationError::InvalidClientMetadata as Bad;
        let raw_uris = req.redirect_uris.as_deref().unwrap_or_default();
        if raw_uris.is_empty() {
            return Err(RegistrationError::InvalidRedirectUri(
                "redirect_uris is required",
            ));
        }
        if raw_uris.len() > MAX_REDIRECT_URIS {
            return Err(RegistrationError::InvalidRedirectUri(
                "too many redirect_uris",
            ));
        }
        let mut redirect_uris = Vec::with_capacity(raw_uris.len());
        for raw in raw_uris {
            let uri = RedirectUri::parse(raw)?;
            if !redirect_uris.contains(&uri) {
                redirect_uris.push(uri);
            }
        }
        let client_name = match req.client_name.clone() {
            Some(n) if n.chars().count() > MAX_CLIENT_NAME => {
                return Err(Bad("client_name too long"));
            }
            Some(n) if n.chars().any(char::is_control) => {
                return Err(Bad("client_name has control characters"));
            }
            Some(n) if n.trim().is_empty() => None,
            other => other,
        };
        let auth_method = match req.token_endpoint_auth_method.as_deref() {
            Some("none") => TokenAuthMethod::None,
            Some("client_secret_post") => TokenAuthMethod::ClientSecretPost,
            // RFC 7591 §2: the default is client_secret_basic.
            Some("client_secret_basic") | None => TokenAuthMethod::ClientSecretBasic,
            Some(_) => return Err(Bad("unsupported token_endpoint_auth_method")),
        };
        let grant_types = req
            .grant_types
            .clone()
            .unwrap_or_else(|| vec!["authorization_code".into()]);
        if grant_types
            .iter()
            .any(|g| g != "authorization_code" && g != "refresh_token")
            || !grant_types.iter().any(|g| g == "authorization_code")
        {
            return Err(Bad(
                "grant_types must be authorization_code and optionally refresh_token",
            ));
        }
        if let Some(rt) = &req.response_types {
            if rt.iter().any(|t| t != "code") {
                return Err(Bad("response_types must be [\"code\"]"));
            }
        }
        let native = match req.application_type.as_deref() {
            None | Some("web") => false,
            Some("native") => true,
            Some(_) => return Err(Bad("unsupported application_type")),
        };
        if let Some(s) = &req.scope {
            match crate::scope::ScopeSet::parse(s) {
                Some(set) if set.is_subset_of(&self.config.scopes_supported) => {}
                _ => return Err(Bad("scope not offered by this server")),
            }
        }
        Ok(Metadata {
            redirect_uris,
            client_name,
            auth_method,
            grant_types,
            native,
        })
    }

    /// Registers a client (RFC 7591, R10, R11, R15). The server assigns the client id; a
    /// `client_id` in the request is ignored. Unknown metadata is ignored.
    pub fn register(
        &self,
        body: &[u8],
        now: UnixTime,
        entropy: &mut (impl Entropy + ?Sized),
    ) -> Result<Registered, RegistrationError> {
        use RegistrationError::InvalidClientMetadata as Bad;
        if body.len() > MAX_REGISTRATION_BODY {
            return Err(Bad("request too large"));
        }
        let req: RegistrationRequest = serde_json::from_slice(body)
            .map_err(|_| Bad("not a JSON object of the expected shape"))?;
        let Metadata {
            redirect_uris,
            client_name,
            auth_method,
            grant_types,
            native,
        } = self.validate_metadata(&req)?;
        let id_bytes = fresh32(entropy);
        let client_id = b64(&id_bytes[..16]);
        let secret = (auth_method != TokenAuthMethod::None).then(|| b64(&fresh32(entropy)));
        let mut record = ClientRecord {
            client_id,
            secret_hash: secret
                .as_ref()
                .map(|s| sha256_labeled("client secret", s.as_bytes())),
            auth_method,
            client_name,
            redirect_uris,
            refresh_allowed: grant_types.iter().any(|g| g == "refresh_token"),
            native,
            issued_at: now,
            expires_at: None,
            mac: UNSEALED,
        };
        record.mac = record.compute_mac(&self.config.keys);
        let mut body = serde_json::json!({
            "client_id": record.client_id,
            "client_id_issued_at": now.0,
            "redirect_uris": record.redirect_uris,
            "token_endpoint_auth_method": auth_method.as_str(),
            "grant_types": grant_types,
            "response_types": ["code"],
            "application_type": if native { "native" } else { "web" },
        });
        if let Some(name) = &record.client_name {
            body["client_name"] = name.clone().into();
        }
        if let Some(s) = &req.scope {
            body["scope"] = s.clone().into();
        }
        if let Some(secret) = secret {
            body["client_secret"] = secret.into();
            body["client_secret_expires_at"] = 0.into();
        }
        Ok(Registered {
            record,
            reply: Reply::json(201, &body),
        })
    }
}

impl Gate {
    /// A Client ID Metadata Document the host fetched from `url` (the client id): the
    /// client it describes, to store until its expiry (its `Cache-Control: max-age`
    /// between five minutes and a day) and to use like a registration (R57). The document
    /// must be a JSON object whose `client_id` is `url` byte for byte, with redirect URIs
    /// under the registration rules (exact, canonical, R11, R61) and no client
    /// authentication (`token_endpoint_auth_method` absent or `none`: no secret is shared
    /// with a document).
    pub fn accept_metadata_document(
        &self,
        url: &str,
        document: &[u8],
        cache_control: Option<&str>,
        now: UnixTime,
    ) -> Result<ClientRecord, RegistrationError> {
        use RegistrationError::InvalidClientMetadata as Bad;
        if !self.config.metadata_documents {
            return Err(Bad("client metadata documents are not accepted here"));
        } else if !is_metadata_document_url(url) {
            return Err(Bad("not a client metadata document URL"));
        } else if url.starts_with("http://") && self.config.cookie_mode != CookieMode::DevLoopback {
            return Err(Bad("a plain-http document only in development mode"));
        } else if document.len() > MAX_METADATA_DOCUMENT {
            return Err(Bad("document too large"));
        }
        let req: RegistrationRequest = serde_json::from_slice(document)
            .map_err(|_| Bad("not a JSON object of the expected shape"))?;
        if req.client_id.as_deref() != Some(url) {
            return Err(Bad("the document's client_id is not its URL"));
        }
        match req.token_endpoint_auth_method.as_deref() {
            None | Some("none") => {}
            Some(_) => return Err(Bad("a document's client authenticates with none")),
        }
        let meta = self.validate_metadata(&RegistrationRequest {
            token_endpoint_auth_method: Some("none".into()),
            ..req
        })?;
        let mut record = ClientRecord {
            client_id: url.to_owned(),
            secret_hash: None,
            auth_method: TokenAuthMethod::None,
            client_name: meta.client_name,
            redirect_uris: meta.redirect_uris,
            refresh_allowed: meta.grant_types.iter().any(|g| g == "refresh_token"),
            native: meta.native,
            issued_at: now,
            expires_at: Some(document_expiry(cache_control, now)),
            mac: UNSEALED,
        };
        record.mac = record.compute_mac(&self.config.keys);
        Ok(record)
    }
}

impl Record for ClientRecord {
    const KIND: Kind = Kind::Client;
    fn store_key(&self) -> StoreKey {
        self.key()
    }
    fn expiry(&self) -> Option<UnixTime> {
        // A registration has no lifetime of its own: the host decides how long it keeps
        // clients that are not used (docs/design.md#store-contract). A metadata
        // document's client lives as long as the document may be cached (R57).
        self.expires_at
    }
}

impl From<Registered> for Step {
    fn from(r: Registered) -> Self {
        Step {
            ops: vec![Op::put(&r.record)],
            reply: r.reply,
        }
    }
}
