//! Keys, MACs, hashes, encodings and the secret newtypes.
//!
//! Everything secret is a newtype whose `Debug` prints `[redacted]` and whose equality is
//! constant time. Stores are keyed by [`StoreKey`], a SHA-256 of the secret under a
//! domain label, never by the secret itself (a dump of the store yields no usable handle).

use core::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

type HmacSha256 = Hmac<Sha256>;

/// A source of cryptographically secure random bytes, supplied by the host.
///
/// The core never draws randomness itself (sans-IO, docs/conventions.md#randomness-is-an-argument):
/// every value that must be unguessable (consent transaction handles, upstream `state`, binding
/// cookies, authorization codes, refresh tokens, client ids and secrets) is filled from this trait
/// by the step that creates it. Production hosts back it with the operating system's
/// generator; tests, the model checker and the fuzzer back it with a deterministic
/// sequence so that every run can be replayed.
pub trait Entropy {
    /// Fills `dest` with fresh random bytes.
    fn fill(&mut self, dest: &mut [u8]);
}

impl<F: FnMut(&mut [u8])> Entropy for F {
    fn fill(&mut self, dest: &mut [u8]) {
        self(dest)
    }
}

/// 256 fresh bits (R33, R42: guessability at most 2^-128).
pub(crate) fn fresh32(entropy: &mut (impl Entropy + ?Sized)) -> [u8; 32] {
    let mut out = [0u8; 32];
    entropy.fill(&mut out);
    out
}

/// Base64url without padding, the alphabet of every handle we mint.
pub(crate) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Base64url without padding, appended to `out`.
pub(crate) fn b64_into(bytes: &[u8], out: &mut String) {
    URL_SAFE_NO_PAD.encode_string(bytes, out);
}

/// Strict base64url decoding (no padding, no whitespace).
pub(crate) fn unb64(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// 32 bytes in base64url without padding (43 characters), on the stack: the handles,
/// PKCE values and MAC tags we compare or embed need no heap string.
#[derive(Clone, Copy)]
pub(crate) struct B64x32([u8; 43]);

impl B64x32 {
    pub(crate) fn encode(bytes: &[u8; 32]) -> Self {
        let mut out = [0u8; 43];
        // 32 bytes are exactly 43 unpadded characters; the length cannot be wrong.
        let n = URL_SAFE_NO_PAD.encode_slice(bytes, &mut out).unwrap_or(0);
        debug_assert_eq!(n, 43);
        Self(out)
    }

    pub(crate) fn as_str(&self) -> &str {
        // base64url's alphabet is ASCII.
        core::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// Strict base64url decoding of a 32-byte value, without a heap buffer.
pub(crate) fn unb64_32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 43 {
        return None;
    }
    let mut buf = [0u8; 33];
    match URL_SAFE_NO_PAD.decode_slice(text, &mut buf) {
        Ok(32) => {
            let mut out = [0u8; 32];
            out.copy_from_slice(&buf[..32]);
            Some(out)
        }
        _ => None,
    }
}

/// SHA-256 of `label || 0x00 || data`.
pub(crate) fn sha256_labeled(label: &str, data: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(label.as_bytes());
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// The short hash of the token audience (the MCP resource) that access tokens carry.
pub(crate) fn audience_hash(resource: &str) -> [u8; 16] {
    let h = sha256_labeled("audience", resource.as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&h[..16]);
    out
}

/// The RFC 7636 S256 transform: `BASE64URL(SHA256(ASCII(verifier)))`.
pub(crate) fn pkce_s256(verifier: &str) -> B64x32 {
    B64x32::encode(&Sha256::digest(verifier.as_bytes()).into())
}

/// Constant-time equality of two byte strings (length is not secret).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// The key of a stored record: a SHA-256 of a secret handle under a domain label.
///
/// Hosts use it as the key of their store; it reveals nothing usable about the handle.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StoreKey(pub(crate) [u8; 32]);

impl StoreKey {
    pub(crate) fn derive(label: &str, secret: &[u8]) -> Self {
        Self(sha256_labeled(label, secret))
    }

    /// The store key of a client registration (client ids are not secret, but hashing
    /// gives every key one shape).
    pub fn client(client_id: &str) -> Self {
        Self::derive("client", client_id.as_bytes())
    }

    /// The key as lowercase hex, for stores that want text keys.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not secret, but long: the first 8 hex digits identify a record in logs.
        write!(f, "StoreKey({}…)", &self.to_hex()[..8])
    }
}

macro_rules! secret_string {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a secret value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The secret itself.
            ///
            /// Security: never log it, never put it in an error message or a URL that a
            /// third party sees.
            pub fn secret(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }

        // The secret's bytes do not outlive the value in freed heap memory.
        impl Drop for $name {
            fn drop(&mut self) {
                self.0.zeroize();
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                ct_eq(self.0.as_bytes(), other.0.as_bytes())
            }
        }

        impl Eq for $name {}

        impl core::hash::Hash for $name {
            fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
                self.0.hash(state)
            }
        }
    };
}

secret_string!(
    /// The upstream OAuth client secret (GitHub, Google, …).
    ClientSecret
);
secret_string!(
    /// An access token issued by the upstream provider. It never leaves the server (R41).
    UpstreamToken
);
secret_string!(
    /// An authorization code issued by the upstream provider.
    UpstreamCode
);
secret_string!(
    /// A refresh token issued by the upstream provider (RFC 6749 §6). It never leaves the
    /// server and is stored only encrypted inside its grant's user data (R65, R66).
    UpstreamRefreshToken
);

/// The server's HMAC key material (at least 32 bytes), with a short fingerprint id so that
/// records and tokens made under a previous key can still be verified during rotation.
#[derive(Clone)]
pub struct ServerKey {
    id: u32,
    mac: HmacSha256,
}

impl fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl ServerKey {
    /// Makes a key from secret bytes. Returns `None` when fewer than 32 bytes are given.
    pub fn new(secret: &[u8]) -> Option<Self> {
        if secret.len() < 32 {
            return None;
        }
        let fp = sha256_labeled("consent-gate key id", secret);
        let mac = HmacSha256::new_from_slice(secret).ok()?;
        Some(Self {
            id: u32::from_be_bytes([fp[0], fp[1], fp[2], fp[3]]),
            mac,
        })
    }

    /// The key's public fingerprint.
    pub fn id(&self) -> u32 {
        self.id
    }
}

/// The current signing key plus the previous ones still accepted for verification.
#[derive(Clone, Debug)]
pub struct Keys {
    current: ServerKey,
    previous: Vec<ServerKey>,
}

impl Keys {
    /// One key, no rotation.
    pub fn new(current: ServerKey) -> Self {
        Self {
            current,
            previous: Vec::new(),
        }
    }

    /// Adds a retired key that still verifies (but never signs).
    pub fn with_previous(mut self, key: ServerKey) -> Self {
        self.previous.push(key);
        self
    }

    pub(crate) fn current_id(&self) -> u32 {
        self.current.id
    }

    /// The ids of every key, the current first.
    pub(crate) fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        core::iter::once(self.current.id).chain(self.previous.iter().map(|k| k.id))
    }

    pub(crate) fn by_id(&self, id: u32) -> Option<&ServerKey> {
        if self.current.id == id {
            return Some(&self.current);
        }
        self.previous.iter().find(|k| k.id == id)
    }

    /// Starts a MAC under the current key with a domain-separation label.
    pub(crate) fn mac(&self, label: &str) -> MacWriter {
        MacWriter::start(&self.current, label)
    }

    /// Starts a MAC under the key `id`, if it is known.
    pub(crate) fn mac_with(&self, id: u32, label: &str) -> Option<MacWriter> {
        self.by_id(id).map(|k| MacWriter::start(k, label))
    }
}

/// Feeds length-prefixed fields into an HMAC so that no two field lists collide.
///
/// Fields are fed in place (`&mut self`): a by-value chained builder copied the ~200-byte
/// HMAC state on every field (a tenth of a flow's time in the profile). Gathering the
/// fields in a buffer of our own first measured slower than the HMAC's own buffering.
pub(crate) struct MacWriter {
    mac: HmacSha256,
}

impl MacWriter {
    fn start(key: &ServerKey, label: &str) -> Self {
        let mut mac = key.mac.clone();
        mac.update(label.as_bytes());
        mac.update(&[0]);
        MacWriter { mac }
    }

    fn put(&mut self, data: &[u8]) {
        self.mac.update(data);
    }

    fn len_prefix(&mut self, mut len: usize) {
        let mut out = [0u8; 10];
        let mut n = 0;
        loop {
            let low = (len & 0x7f) as u8;
            len >>= 7;
            if len == 0 {
                out[n] = low;
                n += 1;
                break;
            }
            out[n] = low | 0x80;
            n += 1;
        }
        self.put(&out[..n]);
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.len_prefix(b.len());
        self.put(b);
        self
    }

    pub(crate) fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    pub(crate) fn opt_str(&mut self, s: Option<&str>) -> &mut Self {
        match s {
            None => self.bytes(&[0]),
            Some(s) => self.bytes(&[1]).str(s),
        }
    }

    /// A field whose length is fixed by its type (a store key, a hash, a grant id): the
    /// record layout fixes where it ends, so it needs no length prefix.
    pub(crate) fn fixed<const N: usize>(&mut self, b: &[u8; N]) -> &mut Self {
        self.put(b);
        self
    }

    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.put(&v.to_be_bytes());
        self
    }

    pub(crate) fn finish(self) -> [u8; 32] {
        self.mac.finalize().into_bytes().into()
    }

    pub(crate) fn verify(self, tag: &[u8]) -> bool {
        self.mac.verify_slice(tag).is_ok()
    }
}

/// The MAC a record carries, with the id of the key that made it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RecordMac {
    pub(crate) key_id: u32,
    pub(crate) tag: [u8; 32],
}

impl fmt::Debug for RecordMac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordMac")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// A record whose fields are covered by a MAC under the server key, so that a forged or
/// edited store entry is rejected rather than trusted (docs/design.md#records; A16).
pub(crate) trait Sealed {
    /// The domain label of this record type.
    const LABEL: &'static str;
    /// Feeds every field except the MAC itself.
    fn feed(&self, w: &mut MacWriter);
    /// The stored MAC.
    fn mac(&self) -> &RecordMac;

    fn compute_mac(&self, keys: &Keys) -> RecordMac {
        RecordMac {
            key_id: keys.current_id(),
            tag: {
                let mut w = keys.mac(Self::LABEL);
                self.feed(&mut w);
                w.finish()
            },
        }
    }

    fn mac_is_valid(&self, keys: &Keys) -> bool {
        let m = self.mac();
        match keys.mac_with(m.key_id, Self::LABEL) {
            Some(mut w) => {
                self.feed(&mut w);
                w.verify(&m.tag)
            }
            None => false,
        }
    }
}

/// A placeholder MAC, replaced by `seal` before a record leaves the core.
pub(crate) const UNSEALED: RecordMac = RecordMac {
    key_id: 0,
    tag: [0; 32],
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc7636_appendix_b() {
        assert_eq!(
            pkce_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").as_str(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn stack_base64_matches_the_heap_one() {
        let bytes: [u8; 32] = core::array::from_fn(|i| (i * 37 + 250) as u8);
        let s = B64x32::encode(&bytes);
        assert_eq!(s.as_str(), b64(&bytes));
        assert_eq!(unb64_32(s.as_str()), Some(bytes));
        assert_eq!(unb64_32(&s.as_str()[..42]), None);
        assert_eq!(unb64_32(&format!("{}=", &s.as_str()[..42])), None);
        // A 43-character string whose last character has non-zero trailing bits is not
        // canonical base64url and is refused, like the heap decoder does.
        let mut odd = s.as_str().to_owned();
        odd.pop();
        odd.push('B');
        assert_eq!(unb64_32(&odd), unb64(&odd).and_then(|v| v.try_into().ok()));
    }

    #[test]
    fn secrets_are_redacted() {
        let s = UpstreamToken::new("gho_16C7e42F292c6912E7710c838347Ae178B4a");
        assert_eq!(format!("{s:?}"), "UpstreamToken([redacted])");
        let r = UpstreamRefreshToken::new("1//0gsecret");
        assert_eq!(format!("{r:?}"), "UpstreamRefreshToken([redacted])");
        let k = ServerKey::new(&[7; 32]).unwrap();
        assert!(!format!("{k:?}").contains("07"));
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(ServerKey::new(&[1; 31]).is_none());
    }

    #[test]
    fn mac_fields_do_not_collide() {
        let keys = Keys::new(ServerKey::new(&[9; 32]).unwrap());
        let tag = |label: &str, fields: &[&str]| {
            let mut w = keys.mac(label);
            fields.iter().for_each(|f| {
                w.str(f);
            });
            w.finish()
        };
        let a = tag("t", &["ab", "c"]);
        assert_ne!(a, tag("t", &["a", "bc"]));
        assert_ne!(a, tag("u", &["ab", "c"]));
        // Lengths across the one- and two-byte prefix boundary.
        let long = "x".repeat(300);
        assert_ne!(
            tag("t", &[&long[..127], &long[..73]]),
            tag("t", &[&long[..128], &long[..72]])
        );
        // The writer hashes exactly the label, the LEB128 prefixes and the fields, in
        // order, whatever their sizes.
        for sizes in [
            &[0usize, 1, 126][..],
            &[127, 1, 300],
            &[128, 128],
            &[5, 250, 3, 129],
        ] {
            let mut w = keys.mac("t");
            let mut expected = b"t\0".to_vec();
            for n in sizes {
                w.bytes(&long.as_bytes()[..*n]);
                let mut n2 = *n;
                loop {
                    let low = (n2 & 0x7f) as u8;
                    n2 >>= 7;
                    if n2 == 0 {
                        expected.push(low);
                        break;
                    }
                    expected.push(low | 0x80);
                }
                expected.extend_from_slice(&long.as_bytes()[..*n]);
            }
            let mut one_shot = keys.current.mac.clone();
            one_shot.update(&expected);
            assert_eq!(
                w.finish(),
                <[u8; 32]>::from(one_shot.finalize().into_bytes())
            );
        }
    }

    #[test]
    fn rotated_key_still_verifies() {
        let old = ServerKey::new(&[1; 32]).unwrap();
        let new = ServerKey::new(&[2; 32]).unwrap();
        let old_keys = Keys::new(old.clone());
        let mut w = old_keys.mac("x");
        w.str("v");
        let tag = w.finish();
        let keys = Keys::new(new).with_previous(old.clone());
        let mut w = keys.mac_with(old.id(), "x").unwrap();
        w.str("v");
        assert!(w.verify(&tag));
        let mut w = keys.mac("x");
        w.str("v");
        assert!(!w.verify(&tag));
    }
}

#[cfg(test)]
#[path = "tests/crypto_checks.rs"]
mod checks;
