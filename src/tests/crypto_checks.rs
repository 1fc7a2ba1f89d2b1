//! Checks of the constant-time compare, the MAC verification, the encodings and the key
//! lookup (issue 10, item 7).

use super::*;

fn keys(byte: u8) -> Keys {
    Keys::new(ServerKey::new(&[byte; 32]).expect("32 bytes"))
}

#[test]
fn ct_eq_is_equality_of_length_and_every_byte() {
    assert!(ct_eq(b"", b""));
    assert!(ct_eq(b"abc", b"abc"));
    for (a, b) in [
        (&b"abc"[..], &b"abd"[..]),
        (b"abc", b"xbc"),
        (b"abc", b"ab"),
        (b"ab", b"abc"),
        (b"", b"a"),
    ] {
        assert!(!ct_eq(a, b), "{a:?} {b:?}");
    }
    // The secret newtypes compare through it.
    assert_eq!(UpstreamToken::new("t"), UpstreamToken::new("t"));
    assert_ne!(UpstreamToken::new("t"), UpstreamToken::new("u"));
}

#[test]
fn a_mac_verifies_only_its_own_tag() {
    let k = keys(1);
    let tag = |label: &str, data: &[u8]| {
        let mut w = k.mac(label);
        w.bytes(data);
        w.finish()
    };
    let good = tag("l", b"data");
    let check = |label: &str, data: &[u8], t: &[u8]| {
        let mut w = k.mac(label);
        w.bytes(data);
        w.verify(t)
    };
    assert!(check("l", b"data", &good));
    let mut flipped = good;
    flipped[31] ^= 1;
    assert!(!check("l", b"data", &flipped));
    assert!(!check("l", b"data", &good[..31]));
    assert!(!check("l", b"data", &[]));
    assert!(!check("l", b"datb", &good));
    assert!(!check("m", b"data", &good));
    // Another key.
    let mut w = keys(2).mac("l");
    w.bytes(b"data");
    assert!(!w.verify(&good));
    // Fixed-width and integer fields are fed too.
    let with = |n: u64, f: [u8; 2]| {
        let mut w = k.mac("l");
        w.u64(n).fixed(&f).opt_str(None).opt_str(Some(""));
        w.finish()
    };
    assert_ne!(with(1, [0, 0]), with(2, [0, 0]));
    assert_ne!(with(1, [0, 0]), with(1, [0, 1]));
}

#[test]
fn keys_are_found_by_id_current_first_then_previous() {
    let (a, b, c) = (
        ServerKey::new(&[1; 32]).unwrap(),
        ServerKey::new(&[2; 32]).unwrap(),
        ServerKey::new(&[3; 32]).unwrap(),
    );
    assert_ne!(a.id(), b.id());
    let ks = Keys::new(a.clone()).with_previous(b.clone());
    assert_eq!(ks.current_id(), a.id());
    assert_eq!(ks.by_id(a.id()).map(ServerKey::id), Some(a.id()));
    assert_eq!(ks.by_id(b.id()).map(ServerKey::id), Some(b.id()));
    assert!(ks.by_id(c.id()).is_none());
    assert!(ks.mac_with(c.id(), "l").is_none());
    // A key's id is a fingerprint of its secret.
    let fp = sha256_labeled("consent-gate key id", &[1; 32]);
    assert_eq!(a.id(), u32::from_be_bytes([fp[0], fp[1], fp[2], fp[3]]));
    let dbg = format!("{a:?}");
    assert!(
        dbg.starts_with("ServerKey") && dbg.contains(&a.id().to_string()),
        "{dbg}"
    );
}

#[test]
fn store_keys_are_labelled_hashes_written_in_lowercase_hex() {
    let k = StoreKey::client("abc");
    assert_eq!(k, StoreKey::derive("client", b"abc"));
    assert_ne!(k, StoreKey::derive("code", b"abc"));
    let expected: String = sha256_labeled("client", b"abc")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(k.to_hex(), expected);
    assert_eq!(format!("{k:?}"), format!("StoreKey({}…)", &expected[..8]));
    // The label and the data are separated: no shift between them collides.
    assert_ne!(sha256_labeled("ab", b"c"), sha256_labeled("a", b"bc"));
    let mut h = Sha256::new();
    h.update(b"client\0abc");
    assert_eq!(<[u8; 32]>::from(h.finalize()), *k.as_bytes());
}

#[test]
fn encodings_round_trip() {
    let bytes = [0xfbu8, 0xff, 0x00, 0x41];
    assert_eq!(b64(&bytes), "-_8AQQ");
    let mut s = String::from("x");
    b64_into(&bytes, &mut s);
    assert_eq!(s, "x-_8AQQ");
    assert_eq!(unb64("-_8AQQ"), Some(bytes.to_vec()));
    assert_eq!(unb64(""), Some(Vec::new()));
    for bad in ["-_8AQQ=", "+/8AQQ", "-_8A QQ", "-_8AQ"] {
        assert_eq!(unb64(bad), None, "{bad}");
    }
    let k: [u8; 32] = core::array::from_fn(|i| i as u8);
    assert_eq!(unb64_32(&b64(&k)), Some(k));
    assert_eq!(unb64_32(&b64(&k[..31])), None);
    assert_eq!(unb64_32(&format!("{}A", b64(&k))), None);
}

#[test]
fn closures_are_entropy_and_fill_every_byte() {
    let mut n = 0u8;
    let mut e = |buf: &mut [u8]| {
        n += 1;
        buf.fill(n)
    };
    assert_eq!(fresh32(&mut e), [1; 32]);
    assert_eq!(fresh32(&mut e), [2; 32]);
}

#[test]
fn record_mac_debug_shows_the_key_id_not_the_tag() {
    let m = RecordMac {
        key_id: 77,
        tag: [0xab; 32],
    };
    let dbg = format!("{m:?}");
    assert!(dbg.contains("RecordMac") && dbg.contains("77"), "{dbg}");
    assert!(!dbg.contains("171"), "{dbg}");
}
