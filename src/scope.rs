//! Scope sets (RFC 6749 §3.3): space-delimited, order-free, bounded.

use core::fmt;

use serde::{Deserialize, Serialize};

/// At most this many scope tokens in one request.
const MAX_SCOPES: usize = 32;
/// At most this many bytes per scope token.
const MAX_SCOPE_LEN: usize = 128;

/// A sorted, de-duplicated set of scope tokens.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ScopeSet(Vec<String>);

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
        let mut v: Vec<String> = Vec::new();
        for tok in s.split(' ').filter(|t| !t.is_empty()) {
            if !is_scope_token(tok) || v.len() == MAX_SCOPES {
                return None;
            }
            v.push(tok.to_owned());
        }
        v.sort_unstable();
        v.dedup();
        Some(Self(v))
    }

    /// Whether every scope of `self` is in `other`.
    pub fn is_subset_of(&self, other: &ScopeSet) -> bool {
        self.0.iter().all(|s| other.0.binary_search(s).is_ok())
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The scope tokens, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// The space-delimited form.
    pub fn to_scope_string(&self) -> String {
        self.0.join(" ")
    }
}

impl fmt::Debug for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ScopeSet({:?})", self.to_scope_string())
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_scope_string())
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
