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
