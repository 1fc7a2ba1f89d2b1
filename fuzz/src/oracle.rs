//! Independent checks the targets assert, and the input framing of the byte targets.
//!
//! The oracles here are written from the requirements, not from the code under test: the
//! redirect rule is R17/R18 restated over raw strings (the spec crate's, shared with the
//! property tests), the reply rules are R16/R32 (an
//! error before consent is a page, never a redirect) and R24 (303 only to a registered
//! redirect URI or the upstream).

use consent_gate::{ClientRecord, RedirectUri, Reply};
/// The one redirect-matching oracle (the spec crate's).
pub use consent_gate_spec::oracle::redirect_acceptable;

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
    fn framing_keeps_the_rest_whole() {
        let (h, rest) = lines::<2>(b"a\n\nbody\nmore");
        assert_eq!(h, [&b"a"[..], &b""[..]]);
        assert_eq!(rest, b"body\nmore");
        let (h, rest) = lines::<2>(b"only");
        assert_eq!(h, [&b"only"[..], &b""[..]]);
        assert!(rest.is_empty());
    }
}
