//! The validated [`RedirectUri`]: what registration accepts (R11, R61, A17, A19) and how a
//! presented `redirect_uri` is matched against a registered one (R17, R18).

use core::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Longest redirect URI we accept.
pub(crate) const MAX_REDIRECT_URI: usize = 2000;

/// Why a redirect URI was refused (R11, R61, A17, A19). Registration answers it as
/// `invalid_redirect_uri` (RFC 7591 §3.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("invalid redirect_uri: {0}")]
pub struct RedirectUriError(pub &'static str);

/// A redirect URI that passed registration validation (R11, R61): `https`, or `http` on a
/// loopback host; no fragment, no userinfo, no whitespace, control characters or
/// backslashes, no other scheme in any spelling (A17), and written exactly as a WHATWG
/// browser serializes it (A19), so the host a reader sees in the text is the host the
/// browser goes to. Only registration (or a stored record, re-validated on load) makes
/// one; only [`RedirectUri::matching`] hands one out for a request (R17, R18).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RedirectUri {
    uri: String,
    /// Where the host is in `uri`, as the WHATWG parser found it (R61: the page and the
    /// CSP show the parsed host, never a scan of the raw text).
    host: (u16, u16),
    /// The end of `scheme://host[:port]` in `uri`.
    origin_end: u16,
}

impl fmt::Debug for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.uri, f)
    }
}

impl fmt::Display for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri)
    }
}

impl Serialize for RedirectUri {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.uri)
    }
}

impl<'de> Deserialize<'de> for RedirectUri {
    /// A stored URI is validated again, exactly as at registration: a record is read
    /// before its MAC is checked, and the host spans come from the parse.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        RedirectUri::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// Whether a parsed host is loopback: 127.0.0.0/8, `[::1]` or `localhost` (RFC 8252 §7.3;
/// MCP uses `localhost`).
pub(crate) fn is_loopback_host<S: AsRef<str>>(host: &url::Host<S>) -> bool {
    match host {
        url::Host::Ipv4(a) => a.is_loopback(),
        url::Host::Ipv6(a) => a.is_loopback(),
        url::Host::Domain(d) => d.as_ref().eq_ignore_ascii_case("localhost"),
    }
}

/// Whether `serialized` (a WHATWG serialization) is `raw`, or `raw` with the `/` of an
/// empty path that the serializer writes (`https://app.example` and
/// `https://app.example?x=1` name the same place as `…/` and `…/?x=1`).
fn is_canonical(raw: &str, serialized: &str, origin_end: usize) -> bool {
    if raw == serialized {
        return true;
    }
    // Every slice by `get`: a serialization may be longer or shorter than the text it
    // came from (`http://127.1/` becomes `http://127.0.0.1/`).
    let rest = raw.get(origin_end..);
    raw.get(..origin_end) == serialized.get(..origin_end)
        && serialized.as_bytes().get(origin_end) == Some(&b'/')
        && rest.is_some_and(|r| !r.starts_with('/'))
        && rest == serialized.get(origin_end + 1..)
}

/// Whether `port` is an `http` port as the WHATWG serializer writes it: decimal without
/// leading zeros, at most 65535, and not the default 80 (which it leaves out).
fn is_canonical_port(port: &str) -> bool {
    let canonical_digits = port == "0" || (!port.is_empty() && !port.starts_with('0'));
    canonical_digits && port.len() <= 5 && port.parse::<u32>().is_ok_and(|p| p <= 65535 && p != 80)
}

/// Indices into a serialization (at most [`MAX_REDIRECT_URI`] bytes, so they fit).
fn index(i: usize) -> u16 {
    u16::try_from(i).unwrap_or(u16::MAX)
}

impl RedirectUri {
    /// Validates a redirect URI for registration (R11, R61, A17, A19).
    pub fn parse(raw: &str) -> Result<Self, RedirectUriError> {
        use RedirectUriError as Bad;
        if raw.is_empty() || raw.len() > MAX_REDIRECT_URI {
            return Err(Bad("empty or too long"));
        }
        if raw.bytes().any(|b| b <= 0x20 || b >= 0x7f) {
            return Err(Bad("whitespace, control or non-ASCII characters"));
        }
        // A browser reads `\` as `/` in an http(s) URL: `https://evil.example\@app.example/`
        // goes to evil.example while a reader sees app.example (A19).
        if raw.contains('\\') {
            return Err(Bad("backslash not allowed"));
        }
        // The scheme must be spelled exactly: `JaVaScript:`, ` https:` and friends never
        // reach the URL parser's normalisation (cloudflare/workers-oauth-provider #97).
        if !(raw.starts_with("https://") || raw.starts_with("http://")) {
            return Err(Bad("scheme must be https, or http on a loopback host"));
        }
        if raw.contains('#') {
            return Err(Bad("fragment not allowed"));
        }
        let url = url::Url::parse(raw).map_err(|_| Bad("not an absolute URL"))?;
        // Userinfo in a redirect URI only serves to deceive: `https://app.example@evil.example/`
        // (A19).
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Bad("userinfo not allowed"));
        }
        let Some(host) = url.host() else {
            return Err(Bad("no host"));
        };
        if url.scheme() == "http" && !is_loopback_host(&host) {
            return Err(Bad("http is only allowed on loopback hosts"));
        }
        let origin_end = url[..url::Position::AfterPort].len();
        if !is_canonical(raw, url.as_str(), origin_end) {
            // Upper case, default ports, percent-encoded or IDNA hosts, IPv4 in other
            // notations, dot segments, an empty port: the browser would go somewhere
            // spelled otherwise than what the consent page shows (R61, A19).
            return Err(Bad(
                "not in canonical form (the WHATWG serialization differs)",
            ));
        }
        let host_start = url[..url::Position::BeforeHost].len();
        let host_end = url[..url::Position::AfterHost].len();
        Ok(Self {
            uri: raw.to_owned(),
            host: (index(host_start), index(host_end)),
            origin_end: index(origin_end),
        })
    }

    /// The URI as registered.
    pub fn as_str(&self) -> &str {
        &self.uri
    }

    /// The host the browser will be sent to, as the WHATWG parser reads it, for the
    /// consent page (R12, R27, R61: always shown next to the name).
    pub fn host(&self) -> &str {
        &self.uri[usize::from(self.host.0)..usize::from(self.host.1)]
    }

    /// `scheme://host[:port]`, the origin the browser is sent to (for the consent page's
    /// CSP `form-action`).
    pub(crate) fn origin(&self) -> &str {
        &self.uri[..usize::from(self.origin_end)]
    }

    /// Path and query: everything after the origin.
    fn rest(&self) -> &str {
        &self.uri[usize::from(self.origin_end)..]
    }

    /// Whether this is an `http` loopback URI (the consent page warns, R27/A11).
    pub fn is_loopback(&self) -> bool {
        self.uri.starts_with("http://")
    }

    /// Matches a presented `redirect_uri` against this registration: simple string
    /// comparison (RFC 3986 §6.2.1, R17), except that for loopback `http` only the port
    /// may differ, including a portless registration (RFC 8252 §7.3, R18). Returns the
    /// presented URI as a validated value.
    pub fn matching(&self, presented: &str) -> Option<RedirectUri> {
        if presented == self.uri {
            return Some(self.clone());
        }
        if !self.is_loopback() {
            return None;
        }
        // The presented URI must be this registration with another port (or none): the
        // scheme, host and path and query are this registration's, already validated and
        // canonical, so only the port needs reading. This is what parsing the presented
        // URI with `RedirectUri::parse` and comparing host and rest decides (the test
        // `loopback_port_match_equals_the_full_parse` holds the two together), without a
        // WHATWG parse on every authorization request.
        if presented.len() > MAX_REDIRECT_URI {
            return None;
        }
        let after_host = presented.strip_prefix(&self.uri[..usize::from(self.host.1)])?;
        let rest = match after_host.strip_prefix(':') {
            Some(p) => {
                let (port, rest) =
                    p.split_at(p.find(|c: char| !c.is_ascii_digit()).unwrap_or(p.len()));
                if !is_canonical_port(port) {
                    return None;
                }
                rest
            }
            None => after_host,
        };
        if rest != self.rest() {
            return None;
        }
        let origin_end = presented.len() - rest.len();
        Some(Self {
            uri: presented.to_owned(),
            host: self.host,
            origin_end: index(origin_end),
        })
    }

    pub(crate) fn matches(&self, presented: &str) -> bool {
        presented == self.uri || self.matching(presented).is_some()
    }

    /// The A10 fault: prefix matching (a fault switch; never on in a normal build).
    pub(crate) fn matches_by_prefix(&self, presented: &str) -> bool {
        presented.starts_with(&self.uri)
    }

    /// A presented URI let through by the A10 fault, unvalidated: its spans are whatever
    /// the parser makes of it.
    pub(crate) fn unvalidated(presented: String) -> Self {
        let (host, origin_end) = match url::Url::parse(&presented) {
            Ok(u) => (
                (
                    index(u[..url::Position::BeforeHost].len()),
                    index(u[..url::Position::AfterHost].len()),
                ),
                index(u[..url::Position::AfterPort].len()),
            ),
            Err(_) => ((0, 0), 0),
        };
        let len = index(presented.len());
        Self {
            host: (host.0.min(len), host.1.min(len)),
            origin_end: origin_end.min(len),
            uri: presented,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> RedirectUri {
        RedirectUri::parse(s).unwrap()
    }

    #[test]
    fn registration_refuses_script_schemes_in_any_spelling_a17() {
        for bad in [
            "javascript:alert(1)",
            "JaVaScript:alert(1)",
            " https://a.example/cb",
            "\thttps://a.example/cb",
            "\u{0}https://a.example/cb",
            "data:text/html,x",
            "file:///etc/passwd",
            "vbscript:x",
            "HTTPS://a.example/cb",
            "https://a.example/cb#frag",
            "http://a.example/cb",
            "https://user@a.example/cb",
            "https:a.example",
            "http://127.0.0.1:99999/cb",
            "http://127.0.0.1:8x/cb",
        ] {
            assert!(RedirectUri::parse(bad).is_err(), "{bad:?} must be refused");
        }
        for good in [
            "https://a.example/cb",
            "https://a.example/cb?x=1",
            "http://127.0.0.1/cb",
            "http://127.0.0.1:33418/cb",
            "http://[::1]:8080/cb",
            "http://localhost/callback",
        ] {
            assert!(
                RedirectUri::parse(good).is_ok(),
                "{good:?} must be accepted"
            );
        }
    }

    #[test]
    fn host_and_origin_come_from_the_registered_string() {
        for (raw, host, origin) in [
            (
                "https://app.example/cb",
                "app.example",
                "https://app.example",
            ),
            (
                "https://app.example:8443/cb?x=1",
                "app.example",
                "https://app.example:8443",
            ),
            (
                "https://app.example?x=1",
                "app.example",
                "https://app.example",
            ),
            ("http://[::1]:8080/cb", "[::1]", "http://[::1]:8080"),
            ("http://127.0.0.1/cb", "127.0.0.1", "http://127.0.0.1"),
        ] {
            let u = uri(raw);
            assert_eq!((u.host(), u.origin()), (host, origin), "{raw}");
        }
    }

    #[test]
    fn exact_match_only_for_https_a10() {
        let r = uri("https://app.example/cb");
        assert!(r.matching("https://app.example/cb").is_some());
        for bad in [
            "https://app.example/cb/../evil",
            "https://app.example/cb?x=",
            "https://app.example.evil.com/cb",
            "https://app.example@evil.com/cb",
            "HTTPS://APP.example/cb",
            "https://app.example/cb/",
            "https://app.example:443/cb",
            "https://app.example/%63b",
        ] {
            assert!(r.matching(bad).is_none(), "{bad:?} must not match");
        }
    }

    #[test]
    fn loopback_may_differ_only_in_port_r18() {
        let r = uri("http://127.0.0.1/cb");
        assert_eq!(
            r.matching("http://127.0.0.1:8080/cb").unwrap().as_str(),
            "http://127.0.0.1:8080/cb"
        );
        for bad in [
            "http://127.0.0.1.evil.com:8080/cb",
            "http://localhost.evil.com/cb",
            "http://127.0.0.1:9/other",
            "http://127.0.0.1:80@evil.com/cb",
            "http://127.0.0.2:80/cb",
            "https://127.0.0.1:8080/cb",
            "http://127.0.0.1:8080/cb?x",
            "http://127.0.0.1:/cb/",
        ] {
            assert!(r.matching(bad).is_none(), "{bad:?} must not match");
        }
        let l = uri("http://localhost:3000/callback");
        assert!(l.matching("http://localhost:51234/callback").is_some());
        assert!(l.matching("http://localhost/callback").is_some());
        let v6 = uri("http://[::1]/cb");
        assert!(v6.matching("http://[::1]:1234/cb").is_some());
        assert!(v6.matching("http://[::2]:1234/cb").is_none());
    }

    /// What `matching` decides for a loopback registration, by a full WHATWG parse of the
    /// presented URI: the reference its string-level check must agree with.
    fn matching_by_full_parse(r: &RedirectUri, presented: &str) -> Option<RedirectUri> {
        if presented == r.uri {
            return Some(r.clone());
        }
        let other = RedirectUri::parse(presented).ok()?;
        (other.is_loopback() && other.host() == r.host() && other.rest() == r.rest())
            .then_some(other)
    }

    #[test]
    fn loopback_port_match_equals_the_full_parse() {
        let registered = [
            "http://127.0.0.1/cb",
            "http://127.0.0.1:9/cb",
            "http://localhost:3000/callback",
            "http://localhost?x=1",
            "http://localhost",
            "http://[::1]/cb",
            "http://[::1]:8080/a/b?c=d",
        ];
        let hosts = [
            "127.0.0.1",
            "localhost",
            "[::1]",
            "127.0.0.2",
            "LOCALHOST",
            "127.1",
            "[::2]",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "[0:0:0:0:0:0:0:1]",
            "evil.example@127.0.0.1",
            "127.0.0.1@evil.example",
        ];
        let ports = [
            "", ":", ":0", ":00", ":1", ":9", ":80", ":080", ":8080", ":08080", ":443", ":65535",
            ":65536", ":99999", ":123456", ":+1", ":-1", ": 1", ":1a", ":0x50", ":8080:9",
        ];
        let rests = [
            "",
            "/",
            "/cb",
            "/cb/",
            "/CB",
            "/cb?x",
            "?x=1",
            "/?x=1",
            "/callback",
            "/a/b?c=d",
            "/a/./b?c=d",
            "/cb#f",
            "/cb ",
            "\\cb",
            "/%63b",
            "@evil.example/cb",
        ];
        let mut checked = 0;
        for reg in registered {
            let r = uri(reg);
            for scheme in ["http://", "https://", "HTTP://"] {
                for host in hosts {
                    for port in ports {
                        for rest in rests {
                            let presented = format!("{scheme}{host}{port}{rest}");
                            assert_eq!(
                                r.matching(&presented),
                                matching_by_full_parse(&r, &presented),
                                "{reg} against {presented:?}"
                            );
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(checked, 7 * 3 * 12 * 21 * 16);
    }

    #[test]
    fn deceptive_redirect_uris_are_refused_r61_a19() {
        for bad in [
            // A browser goes to attacker.example; the text reads claude.ai.
            "https://attacker.example\\@claude.ai/cb",
            "https://attacker.example\\.claude.ai/cb",
            "https://claude.ai\\cb",
            // Userinfo, in every place it can hide.
            "https://claude.ai@attacker.example/cb",
            "http://localhost:80@attacker.example/cb",
            "http://127.0.0.1@attacker.example/cb",
            "https://@attacker.example/cb",
            "https://:@attacker.example/cb",
            // Not what the serializer writes.
            "https://CLAUDE.ai/cb",
            "https://claude.ai:443/cb",
            "http://127.0.0.1:80/cb",
            "http://127.0.0.1:/cb",
            "https://claude%2eai/cb",
            "https://%63laude.ai/cb",
            "http://2130706433/cb",
            "http://0x7f.1/cb",
            "http://127.1/cb",
            "https://claude.ai/a/../cb",
            "https://claude.ai/./cb",
            "https://xn--CLAUDE-4ya.example/cb",
            "https://claude.ai/c b",
            "https://claude.ai/cb\t",
            "https://claude.ai/c\u{7f}b",
        ] {
            assert!(RedirectUri::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn canonical_redirect_uris_register_and_show_the_parsed_host_r61() {
        for (raw, host) in [
            ("https://claude.ai/api/mcp/auth_callback", "claude.ai"),
            ("https://app.example", "app.example"),
            ("https://app.example?x=1", "app.example"),
            ("https://app.example:8443/cb?x=%20", "app.example"),
            ("https://xn--bcher-kva.example/cb", "xn--bcher-kva.example"),
            ("http://localhost:33418/callback", "localhost"),
            ("http://[::1]:8080/cb", "[::1]"),
            ("https://app.example/a%2Fb", "app.example"),
        ] {
            let u = RedirectUri::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            let parsed = url::Url::parse(raw).unwrap();
            assert_eq!(u.host(), parsed.host_str().unwrap(), "{raw}");
            assert_eq!(u.host(), host, "{raw}");
            assert_eq!(u.origin(), parsed.origin().ascii_serialization(), "{raw}");
        }
    }

    #[test]
    fn stored_uris_are_validated_again_on_load() {
        let ok: RedirectUri = serde_json::from_str("\"https://app.example/cb\"").unwrap();
        assert_eq!(ok.host(), "app.example");
        for bad in [
            "\"https://app.example\\\\@evil.example/cb\"",
            "\"https://app.example@evil.example/cb\"",
            "\"javascript:alert(1)\"",
        ] {
            assert!(serde_json::from_str::<RedirectUri>(bad).is_err(), "{bad}");
        }
        assert_eq!(
            serde_json::to_string(&ok).unwrap(),
            "\"https://app.example/cb\""
        );
    }
}
