//! The default consent and error pages: every value escaped (R23), no external resources
//! (R56), inline style only (the CSP allows nothing else), one form.

use crate::redirect::RedirectUri;
use crate::reply::Reply;
use crate::scope::ScopeSet;

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

/// What the consent page shows of the authorization being decided.
pub(crate) struct ConsentPageFields<'a> {
    pub(crate) client_name: Option<&'a str>,
    pub(crate) client_id: &'a str,
    pub(crate) redirect_uri: &'a RedirectUri,
    pub(crate) scope: &'a ScopeSet,
    pub(crate) resource: &'a str,
}

/// The consent page (R27): the client's name *and* the exact redirect URI and its host,
/// the MCP scopes, the upstream and its scopes, the resource, and a loopback warning.
/// Written in one pass into one buffer (it is on every `/authorize`).
pub(crate) fn consent_page(
    d: &ConsentPageFields<'_>,
    form_tx: &str,
    form_csrf: &str,
    upstream: &UpstreamPiece,
) -> Reply {
    let name = d.client_name.unwrap_or("An unnamed application");
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
    escape_into(&mut b, d.resource);
    b.push_str("</span>.</p><p>Access will be sent to <strong class=\"uri\" id=\"redirect-host\">");
    escape_into(&mut b, d.redirect_uri.host());
    b.push_str("</strong>:<br><span class=\"uri\" id=\"redirect-uri\">");
    escape_into(&mut b, uri);
    b.push_str("</span></p><p>Client id: <code>");
    escape_into(&mut b, d.client_id);
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
