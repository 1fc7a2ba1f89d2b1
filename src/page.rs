//! The default consent and error pages: every value escaped (R23), no external resources
//! (R56), inline style only (the CSP allows nothing else), one form. The consent page
//! (R69) makes the host that receives access its headline, labels the client's own name
//! as unverified, has landmarks and a labelled form, a dark mode by
//! `prefers-color-scheme`, colours with AA contrast, and speaks the browser's language.

use crate::messages::Language;
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

/// Everything before the language tag, and from it to the title.
const HEAD: [&str; 2] = [
    "<!doctype html><html lang=\"",
    "\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<meta name=\"color-scheme\" content=\"light dark\"><title>",
];

fn head(b: &mut String, language: Language) {
    b.push_str(HEAD[0]);
    b.push_str(language.tag());
    b.push_str(HEAD[1]);
}

/// Between the title and the body's content. Text and background pairs meet WCAG AA
/// (4.5:1) in both schemes; the focus ring is always visible.
const AFTER_TITLE: &str = concat!(
    "</title><style>",
    ":root{--fg:#1b1b1b;--bg:#fff;--muted:#4a4a4a;--line:#8a8a8a;--warn-bg:#fff4e5;",
    "--warn-line:#b35c00;--accent:#0b57d0;--accent-fg:#fff}",
    "@media (prefers-color-scheme:dark){:root{--fg:#ececec;--bg:#151515;--muted:#c4c4c4;",
    "--line:#8c8c8c;--warn-bg:#3a2600;--warn-line:#f0a020;--accent:#8ab4f8;--accent-fg:#0b0b0b}}",
    "body{font:16px/1.5 system-ui,sans-serif;max-width:38rem;margin:3rem auto;padding:0 1rem;",
    "color:var(--fg);background:var(--bg)}",
    "h1{font-size:1.5rem;line-height:1.3}h1 .uri{font-size:1.15em}",
    "code,.uri{font-family:ui-monospace,monospace;word-break:break-all}",
    ".muted{color:var(--muted)}",
    ".box{border:1px solid var(--line);border-radius:8px;padding:1rem;margin:1rem 0}",
    ".warn{background:var(--warn-bg);border-color:var(--warn-line)}",
    "button{font:inherit;padding:.6rem 1.4rem;margin-right:.8rem;border-radius:6px;",
    "border:1px solid var(--line);background:var(--bg);color:var(--fg);cursor:pointer}",
    "button[value=approve]{background:var(--accent);color:var(--accent-fg);border-color:var(--accent)}",
    "button:focus-visible{outline:3px solid var(--accent);outline-offset:2px}",
    "</style></head><body><main>"
);

const TAIL: &str = "</main></body></html>";

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
    /// The "This server will ask … for:" list in each language, or nothing when no scope
    /// is asked.
    scopes_html: [String; Language::ALL.len()],
}

impl UpstreamPiece {
    pub(crate) fn new(name: &str, scopes: &[String], origin: String) -> Self {
        let scopes_html = Language::ALL.map(|language| {
            let mut html = String::new();
            if !scopes.is_empty() {
                let [before, after] = language.messages().upstream_scopes;
                html.push_str("<p>");
                html.push_str(before);
                escape_into(&mut html, name);
                html.push_str(after);
                html.push_str("</p><ul>");
                push_items(&mut html, scopes.iter().map(String::as_str));
                html.push_str("</ul>");
            }
            html
        });
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
    /// The domain that published a metadata document client's document (R59).
    pub(crate) verified_domain: Option<String>,
    pub(crate) redirect_uri: &'a RedirectUri,
    pub(crate) scope: &'a ScopeSet,
    pub(crate) resource: &'a str,
}

/// The consent page (R27, R69): the host that receives access as the headline, the exact
/// redirect URI, the client's own name labelled as unverified, its id, the MCP scopes,
/// the upstream and its scopes, the resource, and a loopback warning. Written in one pass
/// into one buffer (it is on every `/authorize`).
pub(crate) fn consent_page(
    d: &ConsentPageFields<'_>,
    form_tx: &str,
    form_csrf: &str,
    upstream: &UpstreamPiece,
    language: Language,
) -> Reply {
    let m = language.messages();
    let host = d.redirect_uri.host();
    let mut b = String::with_capacity(4096);
    head(&mut b, language);
    b.push_str(m.title);
    b.push_str(AFTER_TITLE);
    b.push_str("<h1>");
    b.push_str(m.headline[0]);
    b.push_str("<span class=\"uri\" id=\"redirect-host\">");
    escape_into(&mut b, host);
    b.push_str("</span>");
    b.push_str(m.headline[1]);
    b.push_str("</h1><div class=\"box\"><p>");
    b.push_str(m.lead[0]);
    b.push_str(&upstream.name_html);
    b.push_str(m.lead[1]);
    b.push_str("<strong class=\"uri\">");
    escape_into(&mut b, host);
    b.push_str("</strong>");
    b.push_str(m.lead[2]);
    b.push_str("<span class=\"uri\">");
    escape_into(&mut b, d.resource);
    b.push_str("</span>");
    b.push_str(m.lead[3]);
    b.push_str("</p><p>");
    b.push_str(m.full_address);
    b.push_str("<br><span class=\"uri\" id=\"redirect-uri\">");
    escape_into(&mut b, d.redirect_uri.as_str());
    b.push_str("</span></p><p>");
    match (d.client_name, &d.verified_domain) {
        (Some(name), domain) => {
            b.push_str(m.name_label);
            b.push_str(" <strong id=\"client-name\">");
            escape_into(&mut b, name);
            b.push_str("</strong>");
            match domain {
                Some(_) => b.push('.'),
                None => {
                    b.push_str(" <span class=\"muted\">");
                    b.push_str(m.unverified);
                    b.push_str("</span>");
                }
            }
        }
        (None, _) => b.push_str(m.unnamed),
    }
    if let Some(domain) = &d.verified_domain {
        b.push(' ');
        b.push_str(m.published[0]);
        b.push_str("<strong class=\"uri\" id=\"client-domain\">");
        escape_into(&mut b, domain);
        b.push_str("</strong>");
        b.push_str(m.published[1]);
    }
    b.push_str("<br><span class=\"muted\">");
    b.push_str(m.client_id);
    b.push_str("</span> <code>");
    escape_into(&mut b, d.client_id);
    b.push_str("</code></p>");
    if !d.scope.is_empty() {
        b.push_str("<p>");
        b.push_str(m.scopes);
        b.push_str("</p><ul>");
        push_items(&mut b, d.scope.iter());
        b.push_str("</ul>");
    }
    b.push_str(&upstream.scopes_html[language_index(language)]);
    b.push_str("</div>");
    if d.redirect_uri.is_loopback() {
        b.push_str("<div class=\"box warn\" role=\"note\"><p><strong>");
        b.push_str(m.loopback[0]);
        b.push_str("</strong> ");
        b.push_str(m.loopback[1]);
        b.push_str("</p></div>");
    }
    b.push_str("<p>");
    b.push_str(m.deny_hint);
    b.push_str("</p><form method=\"post\" aria-label=\"");
    b.push_str(m.decision);
    b.push_str("\"><input type=\"hidden\" name=\"tx\" value=\"");
    escape_into(&mut b, form_tx);
    b.push_str("\"><input type=\"hidden\" name=\"csrf\" value=\"");
    escape_into(&mut b, form_csrf);
    b.push_str("\"><button type=\"submit\" name=\"decision\" value=\"approve\">");
    b.push_str(m.approve);
    b.push_str("</button><button type=\"submit\" name=\"decision\" value=\"deny\">");
    b.push_str(m.deny);
    b.push_str("</button></form>");
    b.push_str(TAIL);
    Reply::html(200, b, consent_csp(&upstream.origin, d.redirect_uri))
}

/// The consent page's CSP: the approve answer redirects to the upstream, the deny answer
/// to the client, and browsers check `form-action` on those redirects too.
pub(crate) fn consent_csp(upstream_origin: &str, redirect_uri: &RedirectUri) -> String {
    csp(&["'self'", upstream_origin, redirect_uri.origin()])
}

fn language_index(language: Language) -> usize {
    Language::ALL
        .iter()
        .position(|l| *l == language)
        .unwrap_or(0)
}

/// A plain error page (R16: errors before validation are pages, never redirects).
pub(crate) fn error_page(status: u16, title: &str, detail: &str) -> Reply {
    let mut b = String::with_capacity(2048);
    head(&mut b, Language::English);
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
