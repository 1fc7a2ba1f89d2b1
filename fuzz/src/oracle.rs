//! Independent checks the targets assert, and the input framing of the byte targets.
//!
//! The oracles here are written from the requirements, not from the code under test: the
//! redirect rule is R17/R18 restated over raw strings, the reply rules are R16/R32 (an
//! error before consent is a page, never a redirect) and R24 (303 only to a registered
//! redirect URI or the upstream).

use consent_gate::{ClientRecord, RedirectUri, Reply};

/// Splits `data` into `N` header lines (each up to a `\n`) and the rest, which may hold
/// anything, newlines included. Missing lines are empty. Human-readable seeds are the
/// point: `corpus/*/` files are written as `header\nheader\nbody`.
pub fn lines<const N: usize>(data: &[u8]) -> ([&[u8]; N], &[u8]) {
    let mut out = [&[][..]; N];
    let mut rest = data;
    for slot in &mut out {
        match rest.iter().position(|b| *b == b'\n') {
            Some(i) => {
                *slot = &rest[..i];
                rest = &rest[i + 1..];
            }
            None => {
                *slot = rest;
                rest = &[];
            }
        }
    }
    (out, rest)
}

/// A header line as the host would hand it over: `None` when empty, else the (lossily
/// decoded: hosts reject or replace invalid bytes) text.
pub fn header(line: &[u8]) -> Option<String> {
    (!line.is_empty()).then(|| String::from_utf8_lossy(line).into_owned())
}

/// R17/R18 restated: `presented` is acceptable for `registered` iff it is the same string,
/// or `registered` is `http://` on a loopback host and `presented` differs from it only in
/// the port, written as a browser writes it (R61): absent, or 1–5 digits up to 65535 with
/// no leading zero and not http's default 80.
///
/// Written against the raw strings with no URL parser, so it cannot share a normalisation
/// bug with the code under test.
pub fn redirect_acceptable(registered: &str, presented: &str) -> bool {
    if registered == presented {
        return true;
    }
    let Some((host, rest)) = loopback_parts(registered) else {
        return false;
    };
    let Some(tail) = presented
        .strip_prefix("http://")
        .and_then(|p| p.strip_prefix(host))
    else {
        return false;
    };
    let Some(port) = tail.strip_suffix(rest) else {
        return false;
    };
    port.is_empty() || port.strip_prefix(':').is_some_and(port_ok)
}

fn port_ok(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 5
        && p.bytes().all(|b| b.is_ascii_digit())
        && (!p.starts_with('0') || p == "0")
        && p.parse::<u32>().is_ok_and(|n| n <= 65_535 && n != 80)
}

/// For an `http://` registration: (host without port, path+query). `registered` has
/// passed `RedirectUri::parse`, which admits `http` only on loopback hosts (R11; the
/// `redirect_uri` target checks that separately), so any `http://` registration here is
/// a loopback one.
fn loopback_parts(registered: &str) -> Option<(&str, &str)> {
    let after = registered.strip_prefix("http://")?;
    let end = after.find(['/', '?']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    let host = match authority.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    };
    Some((host, rest))
}

/// Whether a redirect `location` goes to one of `client`'s registered redirect URIs (up to
/// the loopback port), followed by the query the core appends (`?` or `&` then params).
pub fn location_targets_client(location: &str, client: &ClientRecord) -> bool {
    client
        .redirect_uris()
        .iter()
        .any(|r| location_targets(location, r))
}

/// See [`location_targets_client`].
pub fn location_targets(location: &str, registered: &RedirectUri) -> bool {
    let r = registered.as_str();
    let sep = if r.contains('?') { '&' } else { '?' };
    // Every split point at a separator is a candidate for "the URI ends here".
    location
        .match_indices(sep)
        .any(|(i, _)| redirect_acceptable(r, &location[..i]))
}

/// An error reply that must not redirect anywhere (R16, R32, A15).
pub fn assert_page_not_redirect(reply: &Reply, what: &str) {
    assert!(
        reply.header("location").is_none(),
        "{what}: an error that must not redirect carries a Location"
    );
    assert_ne!(
        reply.status / 100,
        3,
        "{what}: error reply has a 3xx status"
    );
    if reply
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/html"))
    {
        // R29: every page of ours refuses framing.
        assert_eq!(
            reply.header("x-frame-options"),
            Some("DENY"),
            "{what}: framable page"
        );
    }
}

/// A redirect reply: a 303 whose Location goes to `client`'s registered redirect URI.
pub fn assert_client_redirect(reply: &Reply, client: &ClientRecord, what: &str) {
    assert_eq!(
        reply.status, 303,
        "{what}: client redirect is not a 303 (R24)"
    );
    let loc = reply
        .header("location")
        .unwrap_or_else(|| panic!("{what}: 303 without Location"));
    assert!(
        location_targets_client(loc, client),
        "{what}: Location {loc:?} is not a registered redirect URI of {:?}",
        client.redirect_uris()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oracle_follows_r17_r18() {
        let ok = [
            ("https://a.example/cb", "https://a.example/cb"),
            ("http://127.0.0.1/cb", "http://127.0.0.1:8080/cb"),
            ("http://127.0.0.1:3000/cb", "http://127.0.0.1/cb"),
            ("http://localhost:3000/cb?x=1", "http://localhost:1/cb?x=1"),
            ("http://[::1]/cb", "http://[::1]:65535/cb"),
            ("http://127.0.0.1", "http://127.0.0.1:9"),
        ];
        for (r, p) in ok {
            assert!(redirect_acceptable(r, p), "{r} vs {p}");
        }
        let bad = [
            ("https://a.example/cb", "https://a.example/cb/"),
            ("https://a.example", "https://a.example.evil.example"),
            ("https://a.example:443/cb", "https://a.example/cb"),
            ("http://127.0.0.1/cb", "http://127.0.0.1:65536/cb"),
            ("http://127.0.0.1/cb", "http://127.0.0.1:8x/cb"),
            ("http://127.0.0.1/cb", "http://127.0.0.1.evil.example/cb"),
            ("http://127.0.0.1", "http://127.0.0.1.evil.example"),
            ("http://localhost/cb", "http://localhost:80@evil.example/cb"),
        ];
        for (r, p) in bad {
            assert!(!redirect_acceptable(r, p), "{r} vs {p}");
        }
    }

    #[test]
    fn framing_keeps_the_rest_whole() {
        let (h, rest) = lines::<2>(b"a\n\nbody\nmore");
        assert_eq!(h, [&b"a"[..], &b""[..]]);
        assert_eq!(rest, b"body\nmore");
        let (h, rest) = lines::<2>(b"only");
        assert_eq!(h, [&b"only"[..], &b""[..]]);
        assert!(rest.is_empty());
    }
}
