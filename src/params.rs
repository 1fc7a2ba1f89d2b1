//! Strict `application/x-www-form-urlencoded` parsing for queries and form bodies.
//!
//! OAuth 2.1 §3.1 and R22: a parameter sent twice is an error (not "first wins" or "last
//! wins", the ambiguity parameter-pollution attacks live in); an empty value is the same as
//! an absent one; unknown parameters are ignored. Percent-escapes must be well formed and
//! decode to UTF-8. Every size is bounded so that arbitrary input costs linear time.

use crate::error::ParamError;

/// Upper bound of a whole query string or form body.
pub(crate) const MAX_INPUT: usize = 16 * 1024;
/// Upper bound of the number of parameters.
pub(crate) const MAX_PARAMS: usize = 48;
/// Upper bound of a parameter name.
const MAX_NAME: usize = 64;

/// A parsed parameter list (small: linear lookups are faster than a map here).
#[derive(Debug)]
pub(crate) struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub(crate) fn parse(input: &[u8]) -> Result<Self, ParamError> {
        if input.len() > MAX_INPUT {
            return Err(ParamError::TooLarge);
        }
        let mut pairs: Vec<(String, String)> = Vec::new();
        for part in input.split(|b| *b == b'&') {
            if part.is_empty() {
                continue;
            }
            let (name, value) = match part.iter().position(|b| *b == b'=') {
                Some(i) => (&part[..i], &part[i + 1..]),
                None => (part, &[][..]),
            };
            if name.len() > MAX_NAME * 3 {
                return Err(ParamError::TooLarge);
            }
            let name = decode(name)?;
            if name.len() > MAX_NAME {
                return Err(ParamError::TooLarge);
            }
            let value = decode(value)?;
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
            .map(|(_, v)| v.as_str())
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
/// or not UTF-8 is an error rather than a replacement character.
pub(crate) fn decode(raw: &[u8]) -> Result<String, ParamError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = raw.get(i + 1).copied().and_then(hex);
                let lo = raw.get(i + 2).copied().and_then(hex);
                match (hi, lo) {
                    (Some(h), Some(l)) => out.push(h << 4 | l),
                    _ => return Err(ParamError::Malformed),
                }
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ParamError::Malformed)
}

/// Appends `name=value` to a query string or form body, percent-encoding the value.
pub(crate) fn append_pair(out: &mut String, name: &str, value: &str) {
    if !out.is_empty() && !out.ends_with('?') && !out.ends_with('&') {
        out.push('&');
    }
    out.extend(url::form_urlencoded::byte_serialize(name.as_bytes()));
    out.push('=');
    out.extend(url::form_urlencoded::byte_serialize(value.as_bytes()));
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
