//! What a request carries, parsed strictly and within bounds: form and query parameters,
//! the `Cookie` header (and the `Set-Cookie` values we answer with), and scope sets. Every
//! surface of the gate reads its input through these three.

pub(crate) mod params {
    //! Strict `application/x-www-form-urlencoded` parsing for queries and form bodies.
    //!
    //! OAuth 2.1 §3.1 and R22: a parameter sent twice is an error (not "first wins" or "last
    //! wins", the ambiguity parameter-pollution attacks live in); an empty value is the same as
    //! an absent one; unknown parameters are ignored. Percent-escapes must be well formed and
    //! decode to UTF-8. Every size is bounded so that arbitrary input costs linear time.

    use std::borrow::Cow;

    use crate::error::ParamError;

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
}

pub(crate) mod cookie {
    //! `Set-Cookie` building and `Cookie` header parsing.
    //!
    //! Every cookie is `HttpOnly; SameSite=Lax; Path=/` and, on https, `Secure` with the
    //! `__Host-` prefix (R30; RFC 6265bis §4.1.3.2: no `Domain`, so a sibling subdomain cannot
    //! plant one). Lax, not Strict: the upstream callback is a cross-site top-level GET that
    //! must carry the binding cookie. Plain-HTTP loopback development mode drops only what
    //! HTTP forces it to drop: `Secure` and the prefix.

    use std::borrow::Cow;

    use crate::config::CookieMode;

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
        crate::reply::push_u64(&mut s, max_age);
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
}

pub(crate) mod scope {
    //! Scope sets (RFC 6749 §3.3): space-delimited, order-free, bounded.

    use core::fmt;

    use serde::{Deserialize, Serialize};

    /// At most this many scope tokens in one request.
    const MAX_SCOPES: usize = 32;
    /// At most this many bytes per scope token.
    const MAX_SCOPE_LEN: usize = 128;

    /// A sorted, de-duplicated set of scope tokens.
    ///
    /// Held in its canonical space-delimited form: one allocation per set, and the form
    /// that token replies, access tokens and MACs use anyway. Serialized as a JSON array
    /// of tokens; deserializing re-validates and re-canonicalizes.
    #[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub struct ScopeSet(String);

    fn is_scope_token(s: &str) -> bool {
        // scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
        !s.is_empty()
            && s.len() <= MAX_SCOPE_LEN
            && s.bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
    }

    impl ScopeSet {
        /// Parses a space-delimited scope string; `None` when a token is invalid or there are
        /// too many. The empty string is the empty set.
        pub fn parse(s: &str) -> Option<Self> {
            Self::from_tokens(s.split(' '))
        }

        fn from_tokens<'t>(tokens: impl Iterator<Item = &'t str>) -> Option<Self> {
            let mut v: [&str; MAX_SCOPES] = [""; MAX_SCOPES];
            let mut n = 0;
            for tok in tokens.filter(|t| !t.is_empty()) {
                if !is_scope_token(tok) || n == MAX_SCOPES {
                    return None;
                }
                v[n] = tok;
                n += 1;
            }
            let v = &mut v[..n];
            v.sort_unstable();
            let mut out = String::with_capacity(v.iter().map(|t| t.len() + 1).sum());
            let mut last = None;
            for tok in v.iter() {
                if last == Some(*tok) {
                    continue;
                }
                if last.is_some() {
                    out.push(' ');
                }
                out.push_str(tok);
                last = Some(*tok);
            }
            Some(Self(out))
        }

        /// Whether every scope of `self` is in `other`.
        pub fn is_subset_of(&self, other: &ScopeSet) -> bool {
            self.iter().all(|s| other.iter().any(|o| o == s))
        }

        /// Whether the set is empty.
        pub fn is_empty(&self) -> bool {
            self.0.is_empty()
        }

        /// The scope tokens, sorted.
        pub fn iter(&self) -> impl Iterator<Item = &str> + Clone {
            self.0.split(' ').filter(|t| !t.is_empty())
        }

        /// The space-delimited form.
        pub fn to_scope_string(&self) -> String {
            self.0.clone()
        }

        /// The space-delimited form, borrowed.
        pub(crate) fn as_str(&self) -> &str {
            &self.0
        }
    }

    impl Serialize for ScopeSet {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(self.iter())
        }
    }

    impl<'de> Deserialize<'de> for ScopeSet {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let tokens = Vec::<String>::deserialize(d)?;
            Self::from_tokens(tokens.iter().map(String::as_str))
                .ok_or_else(|| serde::de::Error::custom("invalid scope token"))
        }
    }

    impl fmt::Debug for ScopeSet {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "ScopeSet({:?})", self.0)
        }
    }

    impl fmt::Display for ScopeSet {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(&self.0)
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn parses_sorts_and_dedups() {
            let s = ScopeSet::parse("b a  b").unwrap();
            assert_eq!(s.to_scope_string(), "a b");
            assert!(ScopeSet::parse("a\"b").is_none());
            assert!(ScopeSet::parse("a\\b").is_none());
            assert!(ScopeSet::parse("é").is_none());
            assert!(ScopeSet::parse("").unwrap().is_empty());
        }

        #[test]
        fn serializes_as_a_token_array_and_revalidates() {
            let s = ScopeSet::parse("mcp read").unwrap();
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, r#"["mcp","read"]"#);
            assert_eq!(serde_json::from_str::<ScopeSet>(&json).unwrap(), s);
            assert_eq!(
                serde_json::from_str::<ScopeSet>(r#"["read","mcp","read"]"#).unwrap(),
                s
            );
            assert!(serde_json::from_str::<ScopeSet>(r#"["a b"]"#).is_err());
            assert!(serde_json::from_str::<ScopeSet>(r#"["a\"b"]"#).is_err());
            assert_eq!(ScopeSet::parse("").unwrap().iter().count(), 0);
        }

        #[test]
        fn subset() {
            let ab = ScopeSet::parse("a b").unwrap();
            let a = ScopeSet::parse("a").unwrap();
            assert!(a.is_subset_of(&ab));
            assert!(!ab.is_subset_of(&a));
        }

        #[test]
        fn bounded() {
            let many: Vec<String> = (0..=MAX_SCOPES).map(|i| format!("s{i}")).collect();
            assert!(ScopeSet::parse(&many.join(" ")).is_none());
        }
    }
}
