//! RFC 8414 authorization-server metadata and RFC 9728 protected-resource metadata, derived
//! from the configuration so that they cannot drift from what the gate does (R1–R9).

use crate::Gate;
use crate::reply::Reply;

/// The endpoint paths the gate's documents advertise, relative to the issuer.
pub mod paths {
    /// `GET` consent page, `POST` decision.
    pub const AUTHORIZE: &str = "/authorize";
    /// Token endpoint.
    pub const TOKEN: &str = "/token";
    /// Dynamic client registration.
    pub const REGISTER: &str = "/register";
    /// Token revocation (RFC 7009).
    pub const REVOKE: &str = "/revoke";
    /// RFC 8414 document (root form).
    pub const AS_METADATA: &str = "/.well-known/oauth-authorization-server";
    /// RFC 9728 document (root form).
    pub const PRM: &str = "/.well-known/oauth-protected-resource";
}

/// Splits an absolute URL into (origin, path without trailing slash).
fn origin_and_path(url: &str) -> (&str, &str) {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => {
            let (o, p) = url.split_at(after_scheme + i);
            (o, p.trim_end_matches('/'))
        }
        None => (url, ""),
    }
}

impl Gate {
    /// Our issuer's origin (`scheme://host[:port]`), for the consent POST's `Origin` check.
    pub(crate) fn issuer_origin(&self) -> &str {
        origin_and_path(&self.config.issuer).0
    }

    /// The absolute URL of an endpoint under the issuer.
    pub fn endpoint_url(&self, path: &str) -> String {
        format!("{}{}", self.config.issuer, path)
    }

    /// Where the RFC 9728 document lives for our resource: the well-known path inserted
    /// before the resource's path (`/.well-known/oauth-protected-resource/mcp`, R3). The
    /// 401 challenge points here.
    pub fn protected_resource_metadata_url(&self) -> String {
        let (origin, path) = origin_and_path(&self.config.resource);
        format!("{origin}{}{path}", paths::PRM)
    }

    /// The paths (on the resource's origin) that serve the RFC 9728 document: the
    /// path-inserted one and the root one (R3).
    pub fn protected_resource_metadata_paths(&self) -> Vec<String> {
        let (_, path) = origin_and_path(&self.config.resource);
        let mut v = vec![format!("{}{path}", paths::PRM)];
        if !path.is_empty() {
            v.push(paths::PRM.to_owned());
        }
        v
    }

    /// The paths (on the issuer's origin) that serve the RFC 8414 document: path-inserted
    /// when the issuer has a path, and the root (R6, R9).
    pub fn authorization_server_metadata_paths(&self) -> Vec<String> {
        let (_, path) = origin_and_path(&self.config.issuer);
        let mut v = vec![format!("{}{path}", paths::AS_METADATA)];
        if !path.is_empty() {
            v.push(paths::AS_METADATA.to_owned());
        }
        v
    }

    /// The RFC 9728 document. `resource` is the canonical URI byte for byte (R4) and
    /// `authorization_servers[0]` our issuer byte for byte (R1, R6).
    pub fn protected_resource_metadata(&self) -> Reply {
        let scopes: Vec<&str> = self.config.scopes_supported.iter().collect();
        Reply::json(
            200,
            &serde_json::json!({
                "resource": self.config.resource,
                "authorization_servers": [self.config.issuer],
                "scopes_supported": scopes,
                "bearer_methods_supported": ["header"],
            }),
        )
    }

    /// The RFC 8414 document with every field real MCP clients read (R6–R8,
    /// docs/http-contract.md#what-clients-read).
    pub fn authorization_server_metadata(&self) -> Reply {
        let scopes: Vec<&str> = self.config.scopes_supported.iter().collect();
        Reply::json(
            200,
            &serde_json::json!({
                "issuer": self.config.issuer,
                "authorization_endpoint": self.endpoint_url(paths::AUTHORIZE),
                "token_endpoint": self.endpoint_url(paths::TOKEN),
                "registration_endpoint": self.endpoint_url(paths::REGISTER),
                "revocation_endpoint": self.endpoint_url(paths::REVOKE),
                "revocation_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
                "scopes_supported": scopes,
                "response_types_supported": ["code"],
                "response_modes_supported": ["query"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
                "code_challenge_methods_supported": ["S256"],
                "authorization_response_iss_parameter_supported": true,
                "client_id_metadata_document_supported": self.config.metadata_documents,
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::origin_and_path;

    #[test]
    fn splits_origin_and_path() {
        assert_eq!(
            origin_and_path("https://a.example/mcp"),
            ("https://a.example", "/mcp")
        );
        assert_eq!(
            origin_and_path("https://a.example/"),
            ("https://a.example", "")
        );
        assert_eq!(
            origin_and_path("http://127.0.0.1:8080"),
            ("http://127.0.0.1:8080", "")
        );
    }
}
