//! What a record carries of the user, encrypted at rest under keys the store never holds
//! (R65; docs/design.md#at-rest).
//!
//! A code and a grant carry the user: the upstream subject, the display name, the
//! upstream access token and, where the upstream issued one, its refresh token (R66). Each is sealed with AES-256-GCM under a key derived from a secret
//! that only the client holds:
//!
//! * a code's user data under its code (the client presents it once, at the token endpoint);
//! * a grant's user data under the grant secret, a fresh 256-bit value that every access
//!   token of the grant carries and that each refresh record keeps *wrapped* under its own
//!   refresh token.
//!
//! The store holds only hashes of those secrets (store keys) and ciphertexts. A dump of the
//! store, even with the server key, yields no user's upstream token or identity: the server
//! decrypts a grant only while serving a request that presents one of its tokens.
//!
//! Every key here encrypts exactly one plaintext: it is derived from a fresh 256-bit secret
//! under a label that names the one thing it seals. So the nonce is a constant (zero), which
//! keeps the steps deterministic for a given entropy source (the model checker relies on
//! it). The associated data binds each ciphertext to its record, so a ciphertext copied to
//! another record does not open there (A16).

use core::fmt;

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256Enc;
use aes_gcm::{AesGcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::crypto::{UpstreamRefreshToken, UpstreamToken};

/// Longest ciphertext we decode (a user document with a 4 KiB upstream token fits).
const MAX_CIPHERTEXT: usize = 16 * 1024;

/// Sealed bytes (ciphertext and tag), stored as base64url text.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct Ciphertext(Vec<u8>);

impl fmt::Debug for Ciphertext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ciphertext({} bytes)", self.0.len())
    }
}

impl Ciphertext {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl Serialize for Ciphertext {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&URL_SAFE_NO_PAD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Ciphertext {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        if text.len() > MAX_CIPHERTEXT * 4 / 3 + 4 {
            return Err(serde::de::Error::custom("ciphertext too long"));
        }
        URL_SAFE_NO_PAD
            .decode(text.as_bytes())
            .map(Ciphertext)
            .map_err(|_| serde::de::Error::custom("ciphertext is not base64url"))
    }
}

/// A grant's secret: carried by its access tokens, wrapped in its refresh records, never
/// stored in the clear.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct GrantSecret(pub(crate) [u8; 32]);

impl fmt::Debug for GrantSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GrantSecret([redacted])")
    }
}

impl Drop for GrantSecret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// What a code or grant carries of the user, in the clear only in memory.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct UserData {
    pub(crate) subject: String,
    pub(crate) display_name: Option<String>,
    pub(crate) upstream_token: Option<UpstreamToken>,
    /// The upstream's refresh token, for renewing `upstream_token` (R66).
    pub(crate) upstream_refresh: Option<UpstreamRefreshToken>,
}

impl fmt::Debug for UserData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserData")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// The one-use key for `purpose` under `secret`: SHA-256 of the label and the secret. The
/// secrets are 256 uniformly random bits, so a labelled hash is a sound key derivation, and
/// one compression where HMAC takes four (it runs on every seal and open).
fn derive(secret: &[u8], purpose: &str) -> Zeroizing<[u8; 32]> {
    let mut h = Sha256::new();
    h.update(b"consent-gate at rest\0");
    h.update(purpose.as_bytes());
    h.update([0]);
    h.update(secret);
    Zeroizing::new(h.finalize().into())
}

// AES-256-GCM rather than ChaCha20-Poly1305: every key here is used once, so the key
// set-up is paid on every seal and open, and for records of ~100 bytes it dominates. With
// AES-NI a key set-up and a seal cost 0.57 µs; ChaCha20-Poly1305 took 2.6 µs on the same
// machine (its vector Poly1305 precomputes per key), which tripled the token endpoint.
//
// GCM only ever runs the block cipher forward (CTR mode and the hash key), so the cipher
// is AES-256 with its encryption key schedule alone: `Aes256Gcm` also expands the
// decryption schedule, unused, on every one of these one-use keys. The same algorithm, so
// what either seals the other opens (test `encryption_only_schedule_is_aes_256_gcm`).
type Cipher = AesGcm<Aes256Enc, U12>;

fn cipher(secret: &[u8], purpose: &str) -> Cipher {
    Cipher::new(Key::<Cipher>::from_slice(&derive(secret, purpose)[..]))
}

/// Seals `plaintext` under the key for `purpose` derived from `secret`, bound to `aad`.
pub(crate) fn seal(secret: &[u8], purpose: &str, aad: &[u8], plaintext: &[u8]) -> Ciphertext {
    // The key is used once (see the module documentation): a constant nonce is safe.
    let sealed = cipher(secret, purpose).encrypt(
        &Nonce::default(),
        Payload {
            msg: plaintext,
            aad,
        },
    );
    // Encryption fails only for plaintexts over 256 GiB.
    Ciphertext(sealed.unwrap_or_default())
}

/// Opens what [`seal`] made with the same secret, purpose and associated data.
pub(crate) fn open(
    secret: &[u8],
    purpose: &str,
    aad: &[u8],
    sealed: &Ciphertext,
) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.0.len() > MAX_CIPHERTEXT {
        return None;
    }
    cipher(secret, purpose)
        .decrypt(
            &Nonce::default(),
            Payload {
                msg: &sealed.0,
                aad,
            },
        )
        .ok()
        .map(Zeroizing::new)
}

/// The version byte that starts a sealed user document without an upstream refresh token.
const USER_DATA_V1: u8 = 1;
/// The version byte of a document that ends with an upstream refresh token (R66): a
/// version of its own rather than a fourth presence byte everywhere, so that every
/// document sealed before R66 still opens, and reads the same.
const USER_DATA_V2: u8 = 2;

impl UserData {
    /// Sealed under `secret` for `purpose`, bound to `aad`.
    pub(crate) fn seal(&self, secret: &[u8], purpose: &str, aad: &[u8]) -> Ciphertext {
        seal(secret, purpose, aad, &self.encode())
    }

    /// The user data, if `sealed` opens under `secret` for `purpose` and `aad`.
    pub(crate) fn open(
        secret: &[u8],
        purpose: &str,
        aad: &[u8],
        sealed: &Ciphertext,
    ) -> Option<Self> {
        Self::decode(&open(secret, purpose, aad, sealed)?)
    }

    /// The plaintext: a version byte, then the subject, and each optional field as a
    /// presence byte and, when present, the field; every string as a big-endian `u32`
    /// length and its UTF-8. Version 2 adds the upstream refresh token as a last field,
    /// always present. A binary form rather than JSON: it is opened on every MCP
    /// request, and JSON parsing was a third of the cost of opening (benches/RESULTS.md).
    fn encode(&self) -> Zeroizing<Vec<u8>> {
        fn field(out: &mut Vec<u8>, s: &str) {
            // Every field is far shorter than 4 GiB: the upstream answer is bounded.
            let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        fn optional(out: &mut Vec<u8>, s: Option<&str>) {
            out.push(u8::from(s.is_some()));
            if let Some(s) = s {
                field(out, s);
            }
        }
        let token = self.upstream_token.as_ref().map(|t| t.secret());
        let refresh = self.upstream_refresh.as_ref().map(|t| t.secret());
        let len = 19
            + self.subject.len()
            + self.display_name.as_ref().map_or(0, String::len)
            + token.map_or(0, str::len)
            + refresh.map_or(0, str::len);
        let mut out = Zeroizing::new(Vec::with_capacity(len));
        out.push(if refresh.is_some() {
            USER_DATA_V2
        } else {
            USER_DATA_V1
        });
        field(&mut out, &self.subject);
        optional(&mut out, self.display_name.as_deref());
        optional(&mut out, token);
        if let Some(refresh) = refresh {
            field(&mut out, refresh);
        }
        out
    }

    /// The inverse of [`UserData::encode`], strict: the version, each presence byte 0 or 1,
    /// UTF-8 strings, and nothing after the last field.
    fn decode(plain: &[u8]) -> Option<Self> {
        struct Reader<'a>(&'a [u8]);
        impl<'a> Reader<'a> {
            fn byte(&mut self) -> Option<u8> {
                let (&b, rest) = self.0.split_first()?;
                self.0 = rest;
                Some(b)
            }
            fn field(&mut self) -> Option<&'a str> {
                let (len, rest) = self.0.split_first_chunk::<4>()?;
                let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
                let (s, rest) = rest.split_at_checked(len)?;
                self.0 = rest;
                core::str::from_utf8(s).ok()
            }
            fn optional(&mut self) -> Option<Option<&'a str>> {
                match self.byte()? {
                    0 => Some(None),
                    1 => self.field().map(Some),
                    _ => None,
                }
            }
        }
        let mut r = Reader(plain);
        let version = r.byte()?;
        if version != USER_DATA_V1 && version != USER_DATA_V2 {
            return None;
        }
        let subject = r.field()?.to_owned();
        let display_name = r.optional()?.map(str::to_owned);
        let upstream_token = r.optional()?.map(UpstreamToken::new);
        let upstream_refresh = match version {
            USER_DATA_V2 => Some(UpstreamRefreshToken::new(r.field()?)),
            _ => None,
        };
        r.0.is_empty().then_some(UserData {
            subject,
            display_name,
            upstream_token,
            upstream_refresh,
        })
    }
}

impl GrantSecret {
    /// The secret under which a grant's user data is sealed again after an upstream
    /// refresh (R66): the grant secret with a fresh salt the grant record keeps. Each
    /// sealing then has a key of its own, so the constant nonce stays safe, even if two
    /// servers renewed the same grant at once and both wrote (docs/design.md#at-rest).
    pub(crate) fn salted(&self, salt: &[u8; 16]) -> Zeroizing<[u8; 48]> {
        let mut out = Zeroizing::new([0u8; 48]);
        out[..32].copy_from_slice(&self.0);
        out[32..].copy_from_slice(salt);
        out
    }

    /// The grant secret wrapped under a refresh token, bound to that token's record.
    pub(crate) fn wrap(&self, refresh_token: &str, aad: &[u8]) -> Ciphertext {
        seal(refresh_token.as_bytes(), "refresh wrap", aad, &self.0)
    }

    /// The grant secret a refresh record wraps, given its refresh token.
    pub(crate) fn unwrap(refresh_token: &str, aad: &[u8], wrapped: &Ciphertext) -> Option<Self> {
        let plain = open(refresh_token.as_bytes(), "refresh wrap", aad, wrapped)?;
        let bytes: [u8; 32] = plain.as_slice().try_into().ok()?;
        Some(GrantSecret(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encryption_only_schedule_is_aes_256_gcm() {
        use aes_gcm::Aes256Gcm;
        let secret = [7u8; 32];
        let key = derive(&secret, "purpose");
        let full = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key[..]));
        for len in [0usize, 1, 15, 16, 17, 100, 1000] {
            let msg = vec![0xa5u8; len];
            let payload = || Payload {
                msg: &msg,
                aad: b"aad",
            };
            let ours = seal(&secret, "purpose", b"aad", &msg);
            assert_eq!(ours.0, full.encrypt(&Nonce::default(), payload()).unwrap());
            let back = open(&secret, "purpose", b"aad", &ours).unwrap();
            assert_eq!(back.as_slice(), &msg[..]);
        }
    }

    fn user() -> UserData {
        UserData {
            subject: "github:1".into(),
            display_name: Some("octocat".into()),
            upstream_token: Some(UpstreamToken::new("gho_secret")),
            upstream_refresh: None,
        }
    }

    #[test]
    fn sealed_user_data_opens_only_with_its_secret_purpose_and_record() {
        let secret = [7u8; 32];
        let sealed = user().seal(&secret, "grant user data", b"grant-1");
        let text = serde_json::to_string(&sealed).unwrap();
        for leak in ["github:1", "octocat", "gho_secret"] {
            assert!(!text.contains(leak), "{leak} in {text}");
        }
        let back: Ciphertext = serde_json::from_str(&text).unwrap();
        assert_eq!(
            UserData::open(&secret, "grant user data", b"grant-1", &back),
            Some(user())
        );
        assert!(UserData::open(&[8u8; 32], "grant user data", b"grant-1", &back).is_none());
        assert!(UserData::open(&secret, "code user data", b"grant-1", &back).is_none());
        assert!(UserData::open(&secret, "grant user data", b"grant-2", &back).is_none());
        let mut flipped = back.clone();
        flipped.0[0] ^= 1;
        assert!(UserData::open(&secret, "grant user data", b"grant-1", &flipped).is_none());
    }

    #[test]
    fn a_wrapped_grant_secret_unwraps_only_with_its_refresh_token() {
        let gs = GrantSecret([9u8; 32]);
        let wrapped = gs.wrap("refresh-token", b"record");
        assert_eq!(
            GrantSecret::unwrap("refresh-token", b"record", &wrapped),
            Some(gs.clone())
        );
        assert!(GrantSecret::unwrap("other-token", b"record", &wrapped).is_none());
        assert!(GrantSecret::unwrap("refresh-token", b"other", &wrapped).is_none());
        assert_eq!(format!("{gs:?}"), "GrantSecret([redacted])");
        let u = user();
        assert_eq!(
            format!("{u:?}"),
            "UserData { subject: \"github:1\", .. }",
            "the subject for logs, never the token"
        );
        assert_eq!(
            format!("{:?}", u.seal(&[1; 32], "p", b"")),
            format!(
                "Ciphertext({} bytes)",
                u.seal(&[1; 32], "p", b"").as_bytes().len()
            )
        );
    }

    #[test]
    fn user_documents_round_trip_and_decode_strictly() {
        let mut all = vec![user()];
        for (name, token) in [(None, None), (Some("é"), None), (None, Some("t"))] {
            for refresh in [None, Some("1//0g"), Some("")] {
                all.push(UserData {
                    subject: String::new(),
                    display_name: name.map(Into::into),
                    upstream_token: token.map(UpstreamToken::new),
                    upstream_refresh: refresh.map(UpstreamRefreshToken::new),
                });
            }
        }
        for u in all {
            let plain = u.encode();
            assert_eq!(UserData::decode(&plain), Some(u.clone()));
            // Every strict prefix is refused, and so is a trailing byte.
            for cut in 0..plain.len() {
                assert_eq!(UserData::decode(&plain[..cut]), None, "{cut}");
            }
            let mut longer = plain.to_vec();
            longer.push(0);
            assert_eq!(UserData::decode(&longer), None);
        }
        // The exact bytes: version, u32 lengths, presence bytes.
        let plain = user().encode();
        let mut want = vec![1, 0, 0, 0, 8];
        want.extend_from_slice(b"github:1");
        want.extend_from_slice(&[1, 0, 0, 0, 7]);
        want.extend_from_slice(b"octocat");
        want.extend_from_slice(&[1, 0, 0, 0, 10]);
        want.extend_from_slice(b"gho_secret");
        assert_eq!(plain.as_slice(), want.as_slice());
        for (at, bad) in [(0, 2), (0, 0), (0, 3), (13, 2), (25, 2), (5, 0xff)] {
            let mut edited = want.clone();
            edited[at] = bad;
            assert_eq!(UserData::decode(&edited), None, "byte {at} = {bad}");
        }
        // Version 2: the same, then the refresh token's length and bytes (R66).
        let with_refresh = UserData {
            upstream_refresh: Some(UpstreamRefreshToken::new("r1")),
            ..user()
        };
        let mut want2 = want.clone();
        want2[0] = 2;
        want2.extend_from_slice(&[0, 0, 0, 2]);
        want2.extend_from_slice(b"r1");
        assert_eq!(with_refresh.encode().as_slice(), want2.as_slice());
        assert_eq!(UserData::decode(&want2), Some(with_refresh));
    }

    #[test]
    fn a_ciphertext_of_exactly_the_bound_opens() {
        let plain = vec![b'x'; MAX_CIPHERTEXT - 16];
        let sealed = seal(&[3; 32], "p", b"", &plain);
        assert_eq!(sealed.as_bytes().len(), MAX_CIPHERTEXT);
        assert_eq!(open(&[3; 32], "p", b"", &sealed).as_deref(), Some(&plain));
        // And it survives the store's text form.
        let text = serde_json::to_string(&sealed).unwrap();
        let back: Ciphertext = serde_json::from_str(&text).unwrap();
        assert_eq!(open(&[3; 32], "p", b"", &back).as_deref(), Some(&plain));
    }

    #[test]
    fn oversized_or_malformed_ciphertexts_are_refused() {
        let long = format!("\"{}\"", "A".repeat(MAX_CIPHERTEXT * 2));
        assert!(serde_json::from_str::<Ciphertext>(&long).is_err());
        assert!(serde_json::from_str::<Ciphertext>("\"not base64!\"").is_err());
        let big = Ciphertext(vec![0; MAX_CIPHERTEXT + 1]);
        assert!(open(&[1; 32], "p", b"", &big).is_none());
    }
}
