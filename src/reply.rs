//! The runtime-neutral response: status, headers, body. Hosts copy it onto their HTTP
//! library's response type verbatim; the core decides every header (docs/design.md#sans-io).

use core::fmt;
use std::borrow::Cow;

use crate::client::RedirectUri;
use crate::request::params::{append_pair, start_query};

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
    pub(crate) fn json(status: u16, value: &serde_json::Value) -> Self {
        Self::json_bytes(status, serde_json::to_vec(value).unwrap_or_default())
    }

    /// A JSON document written by the caller (fixed shapes, such as the token reply, skip
    /// the `serde_json::Value` tree).
    pub(crate) fn json_bytes(status: u16, body: Vec<u8>) -> Self {
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

/// Appends a decimal number without going through `fmt`.
pub(crate) fn push_u64(out: &mut String, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend(digits[i..].iter().map(|d| char::from(*d)));
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

pub(crate) mod html {
    //! The default consent and error pages: every value escaped (R23), no external resources
    //! (R56), inline style only (the CSP allows nothing else), one form.

    use crate::authorize::AuthorizationDetails;
    use crate::reply::Reply;

    /// Appends `s` escaped for HTML element content and double-quoted attributes; control
    /// characters become U+FFFD. Runs that need no escaping are copied whole.
    pub(crate) fn escape_into(out: &mut String, s: &str) {
        let bytes = s.as_bytes();
        let mut start = 0;
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if !SPECIAL[usize::from(b)] {
                i += 1;
                continue;
            }
            // `char::is_control` is C0, DEL and C1; C1 (U+0080–U+009F) is 0xC2 0x80–0x9F.
            let (replacement, len) = match b {
                b'&' => ("&amp;", 1),
                b'<' => ("&lt;", 1),
                b'>' => ("&gt;", 1),
                b'"' => ("&quot;", 1),
                b'\'' => ("&#39;", 1),
                0xc2 if matches!(bytes.get(i + 1), Some(0x80..=0x9f)) => ("\u{fffd}", 2),
                0xc2 => {
                    i += 1;
                    continue;
                }
                _ => ("\u{fffd}", 1),
            };
            // Special bytes are ASCII or the lead byte of a two-byte character, so both
            // ends of these slices fall on character boundaries.
            out.push_str(&s[start..i]);
            out.push_str(replacement);
            i += len;
            start = i;
        }
        out.push_str(&s[start..]);
    }

    /// The bytes [`escape_into`] must look at: markup characters, ASCII controls, and the
    /// lead byte of the two-byte C1 controls.
    const SPECIAL: [bool; 256] = {
        let mut t = [false; 256];
        let mut b = 0;
        while b < 256 {
            t[b] = b < 0x20
                || b == 0x7f
                || b == 0xc2
                || matches!(b as u8, b'&' | b'<' | b'>' | b'"' | b'\'');
            b += 1;
        }
        t
    };

    /// `s` escaped, as a new string.
    pub(crate) fn escape(s: &str) -> String {
        let mut out = String::with_capacity(s.len() + 8);
        escape_into(&mut out, s);
        out
    }

    /// Everything before the title.
    const HEAD: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
    <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>";

    /// Between the title and the body's content.
    const AFTER_TITLE: &str = concat!(
        "</title><style>",
        "body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;color:#1b1b1b}",
        "h1{font-size:1.4rem}code,.uri{font-family:ui-monospace,monospace;word-break:break-all}",
        ".box{border:1px solid #ccc;border-radius:8px;padding:1rem;margin:1rem 0}",
        ".warn{background:#fff4e5;border-color:#f0a020}",
        "button{font-size:1rem;padding:.6rem 1.4rem;margin-right:.8rem;border-radius:6px;border:1px solid #888;cursor:pointer}",
        "button[value=approve]{background:#1f6feb;color:#fff;border-color:#1f6feb}",
        "</style></head><body>"
    );

    const TAIL: &str = "</body></html>";

    /// The CSP of every page; `form_action` is the list of `form-action` sources.
    fn csp(form_action: &[&str]) -> String {
        let mut csp = String::with_capacity(160);
        csp.push_str("default-src 'none'; style-src 'unsafe-inline'; form-action");
        for source in form_action {
            csp.push(' ');
            csp.push_str(source);
        }
        csp.push_str("; frame-ancestors 'none'; base-uri 'none'");
        csp
    }

    /// What the consent page shows of the upstream, escaped once per [`Config`] rather than
    /// on every page.
    ///
    /// [`Config`]: crate::Config
    #[derive(Debug)]
    pub(crate) struct UpstreamPiece {
        /// The upstream's display name, as configured.
        pub(crate) name: String,
        /// The upstream scopes our server asks for, as configured.
        pub(crate) scopes: Vec<String>,
        /// The upstream authorization endpoint's origin (the approve answer goes there).
        pub(crate) origin: String,
        name_html: String,
        /// The "This server will ask … for:" list, or nothing when no scope is asked.
        scopes_html: String,
    }

    impl UpstreamPiece {
        pub(crate) fn new(name: &str, scopes: &[String], origin: String) -> Self {
            let mut scopes_html = String::new();
            if !scopes.is_empty() {
                scopes_html.push_str("<p>This server will ask ");
                escape_into(&mut scopes_html, name);
                scopes_html.push_str(" for:</p><ul>");
                push_items(&mut scopes_html, scopes.iter().map(String::as_str));
                scopes_html.push_str("</ul>");
            }
            Self {
                name: name.to_owned(),
                scopes: scopes.to_vec(),
                origin,
                name_html: escape(name),
                scopes_html,
            }
        }
    }

    fn push_items<'s>(out: &mut String, items: impl Iterator<Item = &'s str>) {
        for item in items {
            out.push_str("<li><code>");
            escape_into(out, item);
            out.push_str("</code></li>");
        }
    }

    /// The consent page (R27): the client's name *and* the exact redirect URI and its host,
    /// the MCP scopes, the upstream and its scopes, the resource, and a loopback warning.
    /// Written in one pass into one buffer (it is on every `/authorize`).
    pub(crate) fn consent_page(
        d: &AuthorizationDetails,
        form_tx: &str,
        form_csrf: &str,
        upstream: &UpstreamPiece,
    ) -> Reply {
        let name = d.client_name.as_deref().unwrap_or("An unnamed application");
        let uri = d.redirect_uri.as_str();
        let mut b = String::with_capacity(4096);
        b.push_str(HEAD);
        b.push_str("Allow ");
        escape_into(&mut b, name);
        b.push('?');
        b.push_str(AFTER_TITLE);
        b.push_str("<h1>Allow <strong>");
        escape_into(&mut b, name);
        b.push_str("</strong> to use your account?</h1><div class=\"box\"><p>If you approve, you will sign in with ");
        b.push_str(&upstream.name_html);
        b.push_str(" and <strong>");
        escape_into(&mut b, name);
        b.push_str("</strong> will receive access to <span class=\"uri\">");
        escape_into(&mut b, &d.resource);
        b.push_str(
            "</span>.</p><p>Access will be sent to <strong class=\"uri\" id=\"redirect-host\">",
        );
        escape_into(&mut b, d.redirect_uri.host());
        b.push_str("</strong>:<br><span class=\"uri\" id=\"redirect-uri\">");
        escape_into(&mut b, uri);
        b.push_str("</span></p><p>Client id: <code>");
        escape_into(&mut b, &d.client_id);
        b.push_str("</code></p>");
        if !d.scope.is_empty() {
            b.push_str("<p>Permissions on this server:</p><ul>");
            push_items(&mut b, d.scope.iter());
            b.push_str("</ul>");
        }
        b.push_str(&upstream.scopes_html);
        b.push_str("</div>");
        if d.redirect_uri.is_loopback() {
            b.push_str(
                "<div class=\"box warn\"><p><strong>Local application.</strong> Access goes to a program \
    on this computer. Only approve if you just started connecting an application here yourself.</p></div>",
            );
        }
        b.push_str("<p>If you did not just ask to connect this application, choose Deny.</p>");
        b.push_str("<form method=\"post\"><input type=\"hidden\" name=\"tx\" value=\"");
        escape_into(&mut b, form_tx);
        b.push_str("\"><input type=\"hidden\" name=\"csrf\" value=\"");
        escape_into(&mut b, form_csrf);
        b.push_str(
            "\"><button type=\"submit\" name=\"decision\" value=\"approve\">Approve</button>\
    <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form>",
        );
        b.push_str(TAIL);
        // The approve answer redirects to the upstream, the deny answer to the client.
        let csp = csp(&["'self'", &upstream.origin, d.redirect_uri.origin()]);
        Reply::html(200, b, csp)
    }

    /// A plain error page (R16: errors before validation are pages, never redirects).
    pub(crate) fn error_page(status: u16, title: &str, detail: &str) -> Reply {
        let mut b = String::with_capacity(2048);
        b.push_str(HEAD);
        escape_into(&mut b, title);
        b.push_str(AFTER_TITLE);
        b.push_str("<h1>");
        escape_into(&mut b, title);
        b.push_str("</h1><div class=\"box\"><p>");
        escape_into(&mut b, detail);
        b.push_str("</p></div>");
        b.push_str(TAIL);
        Reply::html(status, b, csp(&["'none'"]))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn escapes_exactly_what_the_char_definition_says() {
            // The byte-level escaper against its definition, over every character up to
            // U+0250 (ASCII, C1 controls, Latin-1, and two-byte letters starting with 0xC2).
            let mut all = String::new();
            for c in (0u32..0x250).filter_map(char::from_u32) {
                all.push(c);
                all.push('a');
            }
            let mut want = String::new();
            for c in all.chars() {
                match c {
                    '&' => want.push_str("&amp;"),
                    '<' => want.push_str("&lt;"),
                    '>' => want.push_str("&gt;"),
                    '"' => want.push_str("&quot;"),
                    '\'' => want.push_str("&#39;"),
                    c if c.is_control() => want.push('\u{fffd}'),
                    c => want.push(c),
                }
            }
            assert_eq!(escape(&all), want);
            assert_eq!(
                escape("\u{85}é✓\u{1F600}\u{9f}"),
                "\u{fffd}é✓\u{1F600}\u{fffd}"
            );
        }

        #[test]
        fn escapes_markup() {
            assert_eq!(
                escape("<script>\"x\"&'"),
                "&lt;script&gt;&quot;x&quot;&amp;&#39;"
            );
        }
    }
}
