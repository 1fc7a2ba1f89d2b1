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
