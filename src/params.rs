//! Strict `application/x-www-form-urlencoded` parsing for queries and form bodies.
//!
//! OAuth 2.1 §3.1 and R22: a parameter sent twice is an error (not "first wins" or "last
//! wins", the ambiguity parameter-pollution attacks live in); an empty value is the same as
//! an absent one; unknown parameters are ignored. Percent-escapes must be well formed and
//! decode to UTF-8. Every size is bounded so that arbitrary input costs linear time.

use std::borrow::Cow;

use thiserror::Error;

/// A query string or form body that is not a well-formed, unambiguous parameter list.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParamError {
    /// The input is longer than the parser accepts.
    #[error("request too large")]
    TooLarge,
    /// More parameters than the parser accepts.
    #[error("too many parameters")]
    TooMany,
    /// A parameter appeared twice (OAuth 2.1 §3.1, R22).
    #[error("parameter `{0}` is repeated")]
    Repeated(String),
    /// A malformed percent-escape or a value that is not UTF-8.
    #[error("malformed encoding")]
    Malformed,
    /// A required parameter is absent or empty.
    #[error("parameter `{0}` is missing")]
    Missing(&'static str),
    /// A parameter's value is not acceptable (too long or wrong characters).
    #[error("parameter `{0}` is invalid")]
    Invalid(&'static str),
}

/// Upper bound of a whole query string or form body.
pub(crate) const MAX_INPUT: usize = 16 * 1024;
/// Upper bound of the number of parameters.
pub(crate) const MAX_PARAMS: usize = 48;
/// Upper bound of a parameter name.
const MAX_NAME: usize = 64;

/// A parsed parameter list (small: linear lookups are faster than a map here). Names
/// and values borrow the input unless they had escapes to decode.
#[derive(Debug)]
pub(crate) struct Params<'a> {
    pairs: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl<'a> Params<'a> {
    pub(crate) fn parse(input: &'a [u8]) -> Result<Self, ParamError> {
        if input.len() > MAX_INPUT {
            return Err(ParamError::TooLarge);
        }
        // One UTF-8 check for the whole input: pieces cut at ASCII `&` and `=` are then
        // UTF-8 too, and only percent-decoded pieces need checking again.
        let input = core::str::from_utf8(input).map_err(|_| ParamError::Malformed)?;
        let mut pairs: Vec<(Cow<'a, str>, Cow<'a, str>)> = Vec::with_capacity(8);
        for part in input.split('&') {
            if part.is_empty() {
                continue;
            }
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            if name.len() > MAX_NAME * 3 {
                return Err(ParamError::TooLarge);
            }
            let name = decode_str(name)?;
            if name.len() > MAX_NAME {
                return Err(ParamError::TooLarge);
            }
            let value = decode_str(value)?;
            if pairs.iter().any(|(n, _)| *n == name) {
                return Err(ParamError::Repeated(truncate_name(&name)));
            }
            if pairs.len() == MAX_PARAMS {
                return Err(ParamError::TooMany);
            }
            pairs.push((name, value));
        }
        Ok(Self { pairs })
    }

    /// The value of `name`; an empty value counts as absent (R22).
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| &**v)
            .filter(|v| !v.is_empty())
    }

    /// The value of `name`, required and at most `max` bytes long.
    pub(crate) fn required(&self, name: &'static str, max: usize) -> Result<&str, ParamError> {
        match self.get(name) {
            None => Err(ParamError::Missing(name)),
            Some(v) if v.len() > max => Err(ParamError::Invalid(name)),
            Some(v) => Ok(v),
        }
    }

    /// The value of `name` if present, at most `max` bytes long.
    pub(crate) fn optional(
        &self,
        name: &'static str,
        max: usize,
    ) -> Result<Option<&str>, ParamError> {
        match self.get(name) {
            Some(v) if v.len() > max => Err(ParamError::Invalid(name)),
            other => Ok(other),
        }
    }
}

fn truncate_name(name: &str) -> String {
    // The name goes into an error message: keep it short and printable.
    name.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(32)
        .collect()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes one form component: `+` is a space, `%XX` an escaped byte; anything malformed
/// or not UTF-8 is an error rather than a replacement character. Borrows when there is
/// nothing to decode (the common case: handles and codes are base64url).
pub(crate) fn decode(raw: &[u8]) -> Result<Cow<'_, str>, ParamError> {
    decode_str(core::str::from_utf8(raw).map_err(|_| ParamError::Malformed)?)
}

/// [`decode`] of text already known to be UTF-8.
fn decode_str(text: &str) -> Result<Cow<'_, str>, ParamError> {
    let raw = text.as_bytes();
    // A full scan without an early exit: it vectorizes, and values are short.
    let escaped = raw
        .iter()
        .fold(false, |seen, b| seen | (*b == b'+') | (*b == b'%'));
    if !escaped {
        return Ok(Cow::Borrowed(text));
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut rest = raw;
    // Copy the runs between escapes whole.
    while let Some(i) = rest.iter().position(|b| *b == b'+' || *b == b'%') {
        out.extend_from_slice(&rest[..i]);
        if rest[i] == b'+' {
            out.push(b' ');
            rest = &rest[i + 1..];
            continue;
        }
        let hi = rest.get(i + 1).copied().and_then(hex);
        let lo = rest.get(i + 2).copied().and_then(hex);
        match (hi, lo) {
            (Some(h), Some(l)) => out.push(h << 4 | l),
            _ => return Err(ParamError::Malformed),
        }
        rest = &rest[i + 3..];
    }
    out.extend_from_slice(rest);
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| ParamError::Malformed)
}

/// The bytes that go into a form-urlencoded component as themselves (the WHATWG
/// `application/x-www-form-urlencoded` byte serializer's set: alphanumerics and `*-._`).
const FORM_SAFE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || matches!(c, b'*' | b'-' | b'.' | b'_');
        b += 1;
    }
    t
};

fn form_safe(b: u8) -> bool {
    FORM_SAFE[usize::from(b)]
}

/// Appends `value` form-urlencoded (space as `+`, everything else outside
/// [`form_safe`] as `%XX`), copying runs of safe bytes whole.
pub(crate) fn push_encoded(out: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = value.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if form_safe(b) {
            continue;
        }
        // A non-empty run of safe bytes starts after a complete character (safe bytes are
        // ASCII), so these slices always fall on character boundaries.
        if start < i {
            out.push_str(&value[start..i]);
        }
        if b == b' ' {
            out.push('+');
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
        start = i + 1;
    }
    if start < bytes.len() {
        out.push_str(&value[start..]);
    }
}

/// Appends `name=value` to a query string or form body, percent-encoding the value.
pub(crate) fn append_pair(out: &mut String, name: &str, value: &str) {
    if !out.is_empty() && !out.ends_with('?') && !out.ends_with('&') {
        out.push('&');
    }
    push_encoded(out, name);
    out.push('=');
    push_encoded(out, value);
}

/// Starts the query of `url`: `?` when it has none yet; otherwise the next
/// [`append_pair`] continues the existing query with `&`.
pub(crate) fn start_query(url: &mut String) {
    if !url.contains('?') {
        url.push('?');
    }
}

/// Whether `s` is non-empty and made only of RFC 3986 unreserved characters.
pub(crate) fn is_unreserved(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Whether `s` is printable ASCII (`%x20-7E`), the charset of OAuth `state` and friends.
pub(crate) fn is_vschar_or_space(s: &str) -> bool {
    s.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_errors_r22() {
        assert_eq!(
            Params::parse(b"state=a&state=b").unwrap_err(),
            ParamError::Repeated("state".into())
        );
        assert_eq!(
            Params::parse(b"client_id=a&client%5Fid=b").unwrap_err(),
            ParamError::Repeated("client_id".into())
        );
    }

    #[test]
    fn empty_is_absent_and_unknown_is_ignored() {
        let p = Params::parse(b"a=&b=1&zzz=9&&").unwrap();
        assert_eq!(p.get("a"), None);
        assert_eq!(p.get("b"), Some("1"));
    }

    #[test]
    fn encoding_matches_the_whatwg_serializer() {
        // The hand-written encoder replaced `url::form_urlencoded::byte_serialize` on the
        // hot path; it must stay byte-for-byte identical to it.
        let mut all = String::new();
        for c in (0u32..0x250).filter_map(char::from_u32) {
            all.push(c);
        }
        for v in [
            "",
            "abc",
            "a b+c&d=e%f",
            "https://x.example/cb?q=1#f",
            "é✓\u{1F600}",
            &all,
        ] {
            let mut ours = String::new();
            push_encoded(&mut ours, v);
            let theirs: String = url::form_urlencoded::byte_serialize(v.as_bytes()).collect();
            assert_eq!(ours, theirs, "{v:?}");
            assert_eq!(decode(ours.as_bytes()).unwrap(), v);
        }
    }

    #[test]
    fn decoding_borrows_when_it_can() {
        assert!(matches!(
            decode(b"abc-_.~").unwrap(),
            Cow::Borrowed("abc-_.~")
        ));
        assert!(matches!(decode(b"a%20b").unwrap(), Cow::Owned(_)));
    }

    #[test]
    fn decoding_is_strict() {
        assert_eq!(decode(b"a+b%20c").unwrap(), "a b c");
        assert!(decode(b"%").is_err());
        assert!(decode(b"%4").is_err());
        assert!(decode(b"%zz").is_err());
        assert!(decode(b"%ff").is_err());
        assert!(decode(&[0xc3]).is_err());
    }

    #[test]
    fn sizes_are_bounded() {
        let big = vec![b'a'; MAX_INPUT + 1];
        assert_eq!(Params::parse(&big).unwrap_err(), ParamError::TooLarge);
        let many: Vec<u8> = (0..=MAX_PARAMS)
            .map(|i| format!("p{i}=1"))
            .collect::<Vec<_>>()
            .join("&")
            .into_bytes();
        assert_eq!(Params::parse(&many).unwrap_err(), ParamError::TooMany);
    }

    #[test]
    fn append_encodes() {
        let mut s = String::from("https://x/cb?");
        append_pair(&mut s, "state", "a b&c");
        append_pair(&mut s, "iss", "https://i");
        assert_eq!(s, "https://x/cb?state=a+b%26c&iss=https%3A%2F%2Fi");
        for (base, want) in [
            ("https://x/cb", "https://x/cb?a=1"),
            ("https://x/cb?k=v", "https://x/cb?k=v&a=1"),
            ("https://x/cb?", "https://x/cb?a=1"),
            ("https://x/cb?k=v&", "https://x/cb?k=v&a=1"),
        ] {
            let mut u = base.to_owned();
            start_query(&mut u);
            append_pair(&mut u, "a", "1");
            assert_eq!(u, want);
        }
    }
}
