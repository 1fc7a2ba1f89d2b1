//! `Set-Cookie` building and `Cookie` header parsing.
//!
//! Every cookie is `HttpOnly; SameSite=Lax; Path=/` and, on https, `Secure` with the
//! `__Host-` prefix (R30; RFC 6265bis §4.1.3.2: no `Domain`, so a sibling subdomain cannot
//! plant one). Lax, not Strict: the upstream callback is a cross-site top-level GET that
//! must carry the binding cookie. Plain-HTTP loopback development mode drops only what
//! HTTP forces it to drop: `Secure` and the prefix.

use std::borrow::Cow;

/// Cookie attributes: `__Host-` + `Secure` on https; plain names without `Secure` only in
/// the explicit loopback development mode (R30).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum CookieMode {
    Secure,
    DevLoopback,
}

/// Longest `Cookie` header we read. A longer one is refused with its own error page
/// by every step that reads a cookie ([`BrowserContext::cookies_oversized`]), never
/// taken as "no cookies" (A21).
pub(crate) const MAX_COOKIE_HEADER: usize = 8 * 1024;

/// What the host knows about the browser request beyond its query or body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BrowserContext<'a> {
    /// The `Cookie` header (several headers joined with `"; "`), or `""`.
    pub cookies: &'a str,
    /// The `Origin` header, if any.
    pub origin: Option<&'a str>,
    /// The `Sec-Fetch-Site` header, if any.
    pub sec_fetch_site: Option<&'a str>,
}

impl<'a> BrowserContext<'a> {
    /// Whether the `Cookie` header is longer than the parser reads (8 KiB). A sibling
    /// subdomain can set cookies on our domain until it is (A21): the steps that read
    /// a cookie then answer with a page that says so, and a host should log it as a
    /// security event.
    pub fn cookies_oversized(&self) -> bool {
        self.cookies.len() > MAX_COOKIE_HEADER
    }

    /// A context with only a cookie header.
    pub fn with_cookies(cookies: &'a str) -> Self {
        Self {
            cookies,
            origin: None,
            sec_fetch_site: None,
        }
    }
}

/// The name of one of our cookies in the given mode.
pub(crate) fn name(mode: CookieMode, base: &'static str) -> Cow<'static, str> {
    match mode {
        CookieMode::Secure => Cow::Owned(format!("__Host-{base}")),
        CookieMode::DevLoopback => Cow::Borrowed(base),
    }
}

/// [`name`] as an owned string with room to append to (the per-transaction binding
/// cookie's name is `cg-bind-` plus a digest).
pub(crate) fn name_owned(mode: CookieMode, base: &str) -> String {
    let mut s = String::with_capacity(32);
    if mode == CookieMode::Secure {
        s.push_str("__Host-");
    }
    s.push_str(base);
    s
}

/// A `Set-Cookie` value with the fixed attributes.
pub(crate) fn set(mode: CookieMode, name: &str, value: &str, max_age: u64) -> String {
    let secure = match mode {
        CookieMode::Secure => "; Secure",
        CookieMode::DevLoopback => "",
    };
    let mut s = String::with_capacity(name.len() + value.len() + 64);
    s.push_str(name);
    s.push('=');
    s.push_str(value);
    s.push_str("; Path=/; Max-Age=");
    s.push_str(itoa::Buffer::new().format(max_age));
    s.push_str(secure);
    s.push_str("; HttpOnly; SameSite=Lax");
    s
}

/// A `Set-Cookie` that deletes `name`.
pub(crate) fn clear(mode: CookieMode, name: &str) -> String {
    set(mode, name, "", 0)
}

/// Finds cookie `name` in a `Cookie` header. Returns `None` when it is absent, when it
/// appears twice (ambiguous: refuse rather than guess), or when the header is oversized.
pub(crate) fn find<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    if header.len() > MAX_COOKIE_HEADER {
        return None;
    }
    let mut found = None;
    for pair in header.split(';') {
        let pair = pair.trim_matches(|c| c == ' ' || c == '\t');
        let Some((n, v)) = pair.split_once('=') else {
            continue;
        };
        if n == name {
            if found.is_some() {
                return None;
            }
            found = Some(v.trim_matches('"'));
        }
    }
    found.filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_cookie_has_every_attribute_r30() {
        let n = name(CookieMode::Secure, "cg-bind");
        assert_eq!(
            set(CookieMode::Secure, &n, "v", 600),
            "__Host-cg-bind=v; Path=/; Max-Age=600; Secure; HttpOnly; SameSite=Lax"
        );
        assert_eq!(
            set(CookieMode::DevLoopback, "cg-bind", "v", 600),
            "cg-bind=v; Path=/; Max-Age=600; HttpOnly; SameSite=Lax"
        );
    }

    #[test]
    fn finds_exactly_one() {
        assert_eq!(find("a=1; b=2", "b"), Some("2"));
        assert_eq!(find("a=1;b=2", "a"), Some("1"));
        assert_eq!(find("a=1; a=2", "a"), None);
        assert_eq!(find("a=", "a"), None);
        assert_eq!(find("xa=1", "a"), None);
        assert_eq!(find(&"a=1; ".repeat(5000), "a"), None);
    }
}
