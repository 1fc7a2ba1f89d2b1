//! The one reference oracle for redirect matching, for every checker that needs it (the
//! property tests' differential check, the fuzz crate's `redirect_uri` target and its
//! worlds' redirect checks).

/// R17/R18 and R61 restated: `presented` is acceptable for `registered` iff the bytes are
/// equal, or `registered` is `http` on a loopback literal (`localhost`, 127.0.0.0/8,
/// `[::1]`) and `presented` is the registration's `http://host` prefix and path/query
/// suffix around nothing or around `:` + a port written as a browser writes it (digits
/// without a leading zero, value ≤ 65535, not http's default 80, not empty).
///
/// Written from the requirements against the raw strings, with no URL parser, so that it
/// cannot share a normalisation bug with the code under test.
pub fn redirect_acceptable(registered: &str, presented: &str) -> bool {
    if registered.as_bytes() == presented.as_bytes() {
        return true;
    }
    let Some(after) = registered.strip_prefix("http://") else {
        return false;
    };
    let host_len = if after.starts_with('[') {
        after.find(']').map_or(after.len(), |i| i + 1)
    } else {
        after.find([':', '/', '?']).unwrap_or(after.len())
    };
    let host = &after[..host_len];
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback())
        || host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .and_then(|h| h.parse::<std::net::Ipv6Addr>().ok())
            .is_some_and(|a| a.is_loopback());
    if !loopback {
        return false;
    }
    let rest_len = after[host_len..]
        .find(['/', '?'])
        .map_or(after.len(), |i| host_len + i);
    let (prefix, suffix) = (
        &registered.as_bytes()[..7 + host_len],
        &after.as_bytes()[rest_len..],
    );
    let p = presented.as_bytes();
    if p.len() < prefix.len() + suffix.len() || !p.starts_with(prefix) || !p.ends_with(suffix) {
        return false;
    }
    match &p[prefix.len()..p.len() - suffix.len()] {
        [] => true,
        [b':', digits @ ..] => {
            !digits.is_empty()
                && digits.len() <= 5
                && digits.iter().all(u8::is_ascii_digit)
                && (digits[0] != b'0' || digits.len() == 1)
                && std::str::from_utf8(digits)
                    .unwrap()
                    .parse::<u32>()
                    .is_ok_and(|n| n <= 65_535 && n != 80)
        }
        _ => false,
    }
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
}
