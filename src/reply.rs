//! The runtime-neutral response: status, headers, body. Hosts copy it onto their HTTP
//! library's response type verbatim; the core decides every header (DESIGN §2).

use core::fmt;

use crate::client::RedirectUri;
use crate::request::params::{append_pair, start_query};

/// An HTTP response decided by the core.
#[derive(Clone, PartialEq, Eq)]
#[must_use = "a reply does nothing until the host sends it"]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// Header names (lowercase) and values, in order; `set-cookie` may repeat.
    pub headers: Vec<(&'static str, String)>,
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
    /// An HTML page with the security headers. `form_action` lists the CSP `form-action`
    /// sources: browsers enforce it on the redirects that follow a form submission too
    /// (FastMCP #2305), so the consent page must allow the upstream and the client's
    /// redirect origin besides `'self'`.
    pub(crate) fn html(status: u16, body: String, form_action: &str) -> Self {
        let csp = format!(
            "default-src 'none'; style-src 'unsafe-inline'; form-action {form_action}; \
             frame-ancestors 'none'; base-uri 'none'"
        );
        let mut headers: Vec<(&'static str, String)> = vec![
            ("content-type", "text/html; charset=utf-8".into()),
            ("content-security-policy", csp),
        ];
        headers.extend(
            HTML_SECURITY_HEADERS
                .iter()
                .map(|(n, v)| (*n, (*v).to_string())),
        );
        Self {
            status,
            headers,
            body: body.into_bytes(),
        }
    }

    /// A JSON document that must not be cached (R46).
    pub(crate) fn json(status: u16, value: &serde_json::Value) -> Self {
        Self {
            status,
            headers: vec![
                ("content-type", "application/json".into()),
                ("cache-control", "no-store".into()),
                ("pragma", "no-cache".into()),
            ],
            body: serde_json::to_vec(value).unwrap_or_default(),
        }
    }

    /// A 303 See Other (R24: never 307 after a POST).
    pub(crate) fn see_other(location: String) -> Self {
        Self {
            status: 303,
            headers: vec![
                ("location", location),
                ("cache-control", "no-store".into()),
                ("referrer-policy", "no-referrer".into()),
            ],
            body: Vec::new(),
        }
    }

    /// Adds a `Set-Cookie` header.
    pub(crate) fn with_cookie(mut self, cookie: String) -> Self {
        self.headers.push(("set-cookie", cookie));
        self
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every `Set-Cookie` value.
    pub fn set_cookies(&self) -> impl Iterator<Item = &str> {
        self.headers
            .iter()
            .filter(|(n, _)| *n == "set-cookie")
            .map(|(_, v)| v.as_str())
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
}

pub(crate) mod html {
    //! The default consent and error pages: every value escaped (R23), no external resources
    //! (R56), inline style only (the CSP allows nothing else), one form.

    use core::fmt::Write as _;

    use crate::consent::ConsentView;
    use crate::reply::Reply;

    /// Escapes text for HTML element content and double-quoted attributes.
    pub(crate) fn escape(s: &str) -> String {
        let mut out = String::with_capacity(s.len() + 8);
        for c in s.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '"' => out.push_str("&quot;"),
                '\'' => out.push_str("&#39;"),
                c if c.is_control() => out.push('\u{fffd}'),
                c => out.push(c),
            }
        }
        out
    }

    const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;color:#1b1b1b}\
    h1{font-size:1.4rem}code,.uri{font-family:ui-monospace,monospace;word-break:break-all}\
    .box{border:1px solid #ccc;border-radius:8px;padding:1rem;margin:1rem 0}\
    .warn{background:#fff4e5;border-color:#f0a020}\
    button{font-size:1rem;padding:.6rem 1.4rem;margin-right:.8rem;border-radius:6px;border:1px solid #888;cursor:pointer}\
    button[value=approve]{background:#1f6feb;color:#fff;border-color:#1f6feb}";

    fn page(title: &str, body: &str) -> String {
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
    <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
    <title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>",
            escape(title)
        )
    }

    /// The consent page (R27): the client's name *and* the exact redirect URI and its host,
    /// the MCP scopes, the upstream and its scopes, the resource, and a loopback warning.
    pub(crate) fn consent_page(v: &ConsentView, form_action: &str) -> Reply {
        let name = v.client_name.as_deref().unwrap_or("An unnamed application");
        let mut b = String::with_capacity(2048);
        let _ = write!(
            b,
            "<h1>Allow <strong>{name}</strong> to use your account?</h1>\
    <div class=\"box\"><p>If you approve, you will sign in with {up} and \
    <strong>{name}</strong> will receive access to <span class=\"uri\">{resource}</span>.</p>\
    <p>Access will be sent to <strong class=\"uri\" id=\"redirect-host\">{host}</strong>:<br>\
    <span class=\"uri\" id=\"redirect-uri\">{uri}</span></p>\
    <p>Client id: <code>{client_id}</code></p>",
            name = escape(name),
            up = escape(&v.upstream_name),
            resource = escape(&v.resource),
            host = escape(&v.redirect_host),
            uri = escape(&v.redirect_uri),
            client_id = escape(&v.client_id),
        );
        if !v.scopes.is_empty() {
            b.push_str("<p>Permissions on this server:</p><ul>");
            for s in &v.scopes {
                let _ = write!(b, "<li><code>{}</code></li>", escape(s));
            }
            b.push_str("</ul>");
        }
        if !v.upstream_scopes.is_empty() {
            let _ = write!(
                b,
                "<p>This server will ask {} for:</p><ul>",
                escape(&v.upstream_name)
            );
            for s in &v.upstream_scopes {
                let _ = write!(b, "<li><code>{}</code></li>", escape(s));
            }
            b.push_str("</ul>");
        }
        b.push_str("</div>");
        if v.loopback_warning {
            b.push_str(
                "<div class=\"box warn\"><p><strong>Local application.</strong> Access goes to a program \
    on this computer. Only approve if you just started connecting an application here yourself.</p></div>",
            );
        }
        b.push_str("<p>If you did not just ask to connect this application, choose Deny.</p>");
        let _ = write!(
            b,
            "<form method=\"post\"><input type=\"hidden\" name=\"tx\" value=\"{tx}\">\
    <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
    <button type=\"submit\" name=\"decision\" value=\"approve\">Approve</button>\
    <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form>",
            tx = escape(&v.form_tx),
            csrf = escape(&v.form_csrf),
        );
        Reply::html(200, page(&format!("Allow {name}?"), &b), form_action)
    }

    /// A plain error page (R16: errors before validation are pages, never redirects).
    pub(crate) fn error_page(status: u16, title: &str, detail: &str) -> Reply {
        let body = format!(
            "<h1>{}</h1><div class=\"box\"><p>{}</p></div>",
            escape(title),
            escape(detail)
        );
        Reply::html(status, page(title, &body), "'none'")
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn escapes_markup() {
            assert_eq!(
                escape("<script>\"x\"&'"),
                "&lt;script&gt;&quot;x&quot;&amp;&#39;"
            );
        }
    }
}
