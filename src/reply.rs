//! The runtime-neutral response: status, headers, body. Hosts copy it onto their HTTP
//! library's response type verbatim; the core decides every header (docs/design.md#sans-io).

use core::fmt;
use std::borrow::Cow;

use crate::crypto::UpstreamToken;
use crate::params::{append_pair, start_query};
use crate::redirect::RedirectUri;

/// An HTTP response decided by the core.
#[derive(Clone, PartialEq, Eq)]
#[must_use = "a reply does nothing until the host sends it"]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// Header names (lowercase) and values, in order; `set-cookie` may repeat. Fixed
    /// values are borrowed (`Cow::Borrowed`), so hosts can copy them without allocating.
    pub headers: Vec<(&'static str, Cow<'static, str>)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Locations and cookies carry codes and binding secrets: show only their names.
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| *n).collect();
        f.debug_struct("Reply")
            .field("status", &self.status)
            .field("headers", &names)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// Headers on every JSON document (R46: token replies must not be cached).
const JSON_HEADERS: [(&str, &str); 3] = [
    ("content-type", "application/json"),
    ("cache-control", "no-store"),
    ("pragma", "no-cache"),
];

/// Headers on every HTML page besides the CSP: no framing (R29, A5), no referrer (R56),
/// no caching, no sniffing.
const HTML_SECURITY_HEADERS: [(&str, &str); 5] = [
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
    ("cross-origin-opener-policy", "same-origin"),
];

impl Reply {
    /// An HTML page with the security headers and the given `Content-Security-Policy`.
    /// Its `form-action` must list every origin the form's answer redirects to: browsers
    /// enforce it on the redirects that follow a form submission too (FastMCP #2305), so
    /// the consent page allows the upstream and the client's redirect origin besides
    /// `'self'`.
    pub(crate) fn html(status: u16, body: String, csp: String) -> Self {
        let mut headers: Vec<(&'static str, Cow<'static, str>)> = Vec::with_capacity(9);
        headers.push(("content-type", Cow::Borrowed("text/html; charset=utf-8")));
        headers.push(("content-security-policy", Cow::Owned(csp)));
        headers.extend(
            HTML_SECURITY_HEADERS
                .iter()
                .map(|(n, v)| (*n, Cow::Borrowed(*v))),
        );
        Self {
            status,
            headers,
            body: body.into_bytes(),
        }
    }

    /// A JSON document that must not be cached (R46).
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self::json_bytes(status, serde_json::to_vec(value).unwrap_or_default())
    }

    /// A JSON document written by the caller (fixed shapes, such as the token reply, skip
    /// the `serde_json::Value` tree).
    pub fn json_bytes(status: u16, body: Vec<u8>) -> Self {
        Self {
            status,
            headers: JSON_HEADERS
                .iter()
                .map(|(n, v)| (*n, Cow::Borrowed(*v)))
                .collect(),
            body,
        }
    }

    /// A 303 See Other (R24: never 307 after a POST).
    pub(crate) fn see_other(location: String) -> Self {
        Self {
            status: 303,
            headers: {
                // Room for the cookies most redirects carry.
                let mut h = Vec::with_capacity(6);
                h.push(("location", Cow::Owned(location)));
                h.push(("cache-control", Cow::Borrowed("no-store")));
                h.push(("referrer-policy", Cow::Borrowed("no-referrer")));
                h
            },
            body: Vec::new(),
        }
    }

    /// A plain-text answer of the host's own (404, 405, 413, 429, 503, …), never cached,
    /// never sniffed; a non-empty message gets a final newline.
    pub fn text(status: u16, message: &str) -> Self {
        let mut body = message.as_bytes().to_vec();
        if !body.is_empty() {
            body.push(b'\n');
        }
        let headers = vec![
            ("content-type", Cow::Borrowed("text/plain; charset=utf-8")),
            ("cache-control", Cow::Borrowed("no-store")),
            ("x-content-type-options", Cow::Borrowed("nosniff")),
        ];
        Self {
            status,
            headers,
            body,
        }
    }

    /// Adds a header. `name` is lowercase and `value` a valid header value (visible ASCII):
    /// a host copying the reply refuses one that is not.
    pub fn with_header(mut self, name: &'static str, value: impl Into<Cow<'static, str>>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Adds a `Set-Cookie` header.
    pub(crate) fn with_cookie(mut self, cookie: String) -> Self {
        self.headers.push(("set-cookie", Cow::Owned(cookie)));
        self
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| &**v)
    }

    /// Every `Set-Cookie` value.
    pub fn set_cookies(&self) -> impl Iterator<Item = &str> {
        self.headers
            .iter()
            .filter(|(n, _)| *n == "set-cookie")
            .map(|(_, v)| &**v)
    }
}

/// A browser redirect to an MCP client's *validated* redirect URI: success with a code, or
/// an error. It always carries the client's `state` and our `iss` (R47, RFC 9207).
///
/// It can only be made from a [`RedirectUri`] that came out of registration validation and
/// was matched against the request, after the user saw our consent page (R16, R32, R38).
#[derive(Clone, PartialEq, Eq)]
#[must_use = "the client is waiting for this redirect"]
pub struct ClientRedirect {
    location: String,
    redirect_uri: String,
    error: Option<&'static str>,
}

impl fmt::Debug for ClientRedirect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The location carries the authorization code: never print it.
        f.debug_struct("ClientRedirect")
            .field("redirect_uri", &self.redirect_uri)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl ClientRedirect {
    fn build(uri: &RedirectUri, pairs: &[(&str, &str)], state: Option<&str>, iss: &str) -> String {
        let mut location = String::with_capacity(uri.as_str().len() + 128);
        location.push_str(uri.as_str());
        start_query(&mut location);
        for (n, v) in pairs {
            append_pair(&mut location, n, v);
        }
        if let Some(s) = state {
            append_pair(&mut location, "state", s);
        }
        append_pair(&mut location, "iss", iss);
        location
    }

    pub(crate) fn success(uri: &RedirectUri, code: &str, state: Option<&str>, iss: &str) -> Self {
        Self {
            location: Self::build(uri, &[("code", code)], state, iss),
            redirect_uri: uri.as_str().to_owned(),
            error: None,
        }
    }

    pub(crate) fn error(
        uri: &RedirectUri,
        error: &'static str,
        state: Option<&str>,
        iss: &str,
    ) -> Self {
        Self {
            location: Self::build(uri, &[("error", error)], state, iss),
            redirect_uri: uri.as_str().to_owned(),
            error: Some(error),
        }
    }

    /// The full `Location` (contains the code on success: treat as secret).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The validated redirect URI it goes to.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// The OAuth error it carries, if it is an error redirect.
    pub fn error_code(&self) -> Option<&'static str> {
        self.error
    }

    /// The 303 to send.
    pub fn response(&self) -> Reply {
        Reply::see_other(self.location.clone())
    }

    /// The 303 to send, without copying the location.
    pub fn into_response(self) -> Reply {
        Reply::see_other(self.location)
    }
}

/// An HTTP request the host must send for the core (back channel).
#[derive(Clone, PartialEq, Eq)]
#[must_use]
pub struct HttpRequest {
    /// `GET`, `POST`, or `DELETE` (GitHub's token revocation).
    pub method: &'static str,
    /// The absolute URL.
    pub url: String,
    /// Headers to send (fixed values borrowed, as in [`Reply`]).
    pub headers: Vec<(&'static str, Cow<'static, str>)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// `GET` the upstream's user API with the user's upstream token (R41: it goes to the
    /// upstream only).
    pub(crate) fn upstream_user(user_endpoint: &str, token: &UpstreamToken) -> Self {
        HttpRequest {
            method: "GET",
            url: user_endpoint.to_owned(),
            headers: vec![
                (
                    "authorization",
                    Cow::Owned(format!("Bearer {}", token.secret())),
                ),
                ("accept", Cow::Borrowed("application/json")),
                ("user-agent", Cow::Borrowed("consent-gate")),
            ],
            body: Vec::new(),
        }
    }
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
