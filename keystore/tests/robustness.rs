//! Hostile and damaged keystores: errors, never panics, and no expensive work when refused.

use eip2335::{Error, Kdf, Keystore, limits};
use serde_json::{Value, json};
use test_support::rng::Rng;

const SECRET: [u8; 32] = [0xc3; 32];
const PASSWORD: &str = "hunter2";

/// A cheap keystore (PBKDF2 with 16 iterations), as JSON.
fn base(kdf: Kdf) -> Value {
    let ks = Keystore::encrypt(&SECRET, PASSWORD, "abcd", "m/12381/3600/0/0/0", kdf, [9; 32], [8; 16], "u")
        .unwrap();
    serde_json::from_str(&ks.to_json()).unwrap()
}

fn decrypt(v: &Value) -> Result<[u8; 32], Error> {
    Keystore::from_json(&v.to_string())?.decrypt(PASSWORD).map(|s| *s)
}

fn edited(kdf: Kdf, edit: impl FnOnce(&mut Value)) -> Result<[u8; 32], Error> {
    let mut v = base(kdf);
    edit(&mut v);
    decrypt(&v)
}

fn field_of(e: &Error) -> &'static str {
    match e {
        Error::Malformed { field, .. } | Error::Unsupported { field, .. } => field,
        Error::KdfTooCostly { param, .. } => param,
        other => panic!("unexpected {other:?}"),
    }
}

/// A base keystore, an edit to it, and the field the error must name.
type Case = (Kdf, fn(&mut Value), &'static str);

const PB: Kdf = Kdf::Pbkdf2 { c: 16 };
const SC: Kdf = Kdf::Scrypt { n: 16, r: 1, p: 1 };

#[test]
fn base_decrypts() {
    assert_eq!(decrypt(&base(PB)).unwrap(), SECRET);
    assert_eq!(decrypt(&base(SC)).unwrap(), SECRET);
}

/// Changing any bit of the checksum, the ciphertext or a KDF input makes the password check fail.
#[test]
fn tampering_is_wrong_password() {
    let flip = |s: &Value, i: usize| {
        let mut b = hex::decode(s.as_str().unwrap()).unwrap();
        let len = b.len();
        b[i % len] ^= 1 << (i % 8);
        Value::from(hex::encode(b))
    };
    for i in [0, 7, 15, 16, 31] {
        let r =
            edited(PB, |v| v["crypto"]["checksum"]["message"] = flip(&v["crypto"]["checksum"]["message"], i));
        assert_eq!(r, Err(Error::WrongPassword));
        let r = edited(PB, |v| v["crypto"]["cipher"]["message"] = flip(&v["crypto"]["cipher"]["message"], i));
        assert_eq!(r, Err(Error::WrongPassword));
        let r = edited(SC, |v| {
            v["crypto"]["kdf"]["params"]["salt"] = flip(&v["crypto"]["kdf"]["params"]["salt"], i)
        });
        assert_eq!(r, Err(Error::WrongPassword));
    }
    assert_eq!(edited(PB, |v| v["crypto"]["kdf"]["params"]["c"] = json!(17)), Err(Error::WrongPassword));
    assert_eq!(edited(SC, |v| v["crypto"]["kdf"]["params"]["n"] = json!(32)), Err(Error::WrongPassword));
    assert_eq!(edited(SC, |v| v["crypto"]["kdf"]["params"]["r"] = json!(2)), Err(Error::WrongPassword));
    assert_eq!(edited(SC, |v| v["crypto"]["kdf"]["params"]["p"] = json!(2)), Err(Error::WrongPassword));
    // The IV is not covered by the checksum: a changed IV decrypts to a different secret. This is
    // how EIP-2335 is specified; the pubkey check belongs to the caller.
    let other = edited(PB, |v| v["crypto"]["cipher"]["params"]["iv"] = json!("00".repeat(16))).unwrap();
    assert_ne!(other, SECRET);
}

#[test]
fn unsupported_values() {
    let cases: [Case; 7] = [
        (PB, |v| v["version"] = json!(3), "version"),
        (PB, |v| v["crypto"]["kdf"]["function"] = json!("argon2id"), "crypto.kdf.function"),
        (PB, |v| v["crypto"]["kdf"]["params"]["prf"] = json!("hmac-sha512"), "crypto.kdf.params.prf"),
        (SC, |v| v["crypto"]["kdf"]["params"]["dklen"] = json!(64), "crypto.kdf.params.dklen"),
        (PB, |v| v["crypto"]["checksum"]["function"] = json!("keccak256"), "crypto.checksum.function"),
        (PB, |v| v["crypto"]["cipher"]["function"] = json!("aes-128-cbc"), "crypto.cipher.function"),
        (PB, |v| v["crypto"]["cipher"]["function"] = json!("x".repeat(1000)), "crypto.cipher.function"),
    ];
    for (kdf, edit, field) in cases {
        let e = edited(kdf, edit).unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }), "{field}: {e:?}");
        assert_eq!(field_of(&e), field);
        if let Error::Unsupported { value, .. } = e {
            assert!(value.len() <= 64);
        }
    }
}

#[test]
fn malformed_values() {
    let cases: [Case; 16] = [
        (SC, |v| v["crypto"]["kdf"]["params"]["n"] = json!(15), "crypto.kdf.params.n"),
        (SC, |v| v["crypto"]["kdf"]["params"]["n"] = json!(0), "crypto.kdf.params.n"),
        (SC, |v| v["crypto"]["kdf"]["params"]["n"] = json!(-16), "crypto.kdf.params.n"),
        (SC, |v| v["crypto"]["kdf"]["params"]["n"] = json!(16.5), "crypto.kdf.params.n"),
        (SC, |v| v["crypto"]["kdf"]["params"]["n"] = json!("16"), "crypto.kdf.params.n"),
        (SC, |v| v["crypto"]["kdf"]["params"]["r"] = json!(0), "crypto.kdf.params.r"),
        (
            SC,
            |v| _ = v["crypto"]["kdf"]["params"].as_object_mut().unwrap().remove("p"),
            "crypto.kdf.params.p",
        ),
        (PB, |v| v["crypto"]["kdf"]["params"]["c"] = json!(0), "crypto.kdf.params.c"),
        (PB, |v| v["crypto"]["kdf"]["params"]["salt"] = json!("xyz0"), "crypto.kdf.params.salt"),
        (PB, |v| v["crypto"]["kdf"]["params"]["salt"] = json!(12), "crypto.kdf.params.salt"),
        (PB, |v| v["crypto"]["checksum"]["message"] = json!("abcd"), "crypto.checksum.message"),
        (PB, |v| v["crypto"]["cipher"]["message"] = json!("00".repeat(33)), "crypto.cipher.message"),
        (PB, |v| v["crypto"]["cipher"]["message"] = json!(""), "crypto.cipher.message"),
        (PB, |v| v["crypto"]["cipher"]["params"]["iv"] = json!("0g".repeat(16)), "crypto.cipher.params.iv"),
        (PB, |v| v["crypto"]["cipher"]["params"]["iv"] = json!(null), "crypto.cipher.params.iv"),
        (
            PB,
            |v| _ = v["crypto"]["cipher"]["params"].as_object_mut().unwrap().remove("iv"),
            "crypto.cipher.params.iv",
        ),
    ];
    for (kdf, edit, field) in cases {
        let e = edited(kdf, edit).unwrap_err();
        assert!(matches!(e, Error::Malformed { .. }), "{field}: {e:?}");
        assert_eq!(field_of(&e), field);
    }
}

#[test]
fn structural_damage_is_malformed_json() {
    let cases: [fn(&mut Value); 6] = [
        |v| _ = v.as_object_mut().unwrap().remove("crypto"),
        |v| _ = v.as_object_mut().unwrap().remove("version"),
        |v| _ = v["crypto"].as_object_mut().unwrap().remove("checksum"),
        |v| v["crypto"]["kdf"]["params"] = json!([1, 2]),
        |v| v["version"] = json!("4"),
        |v| v["crypto"]["cipher"]["message"] = json!(5),
    ];
    for edit in cases {
        let e = edited(PB, edit).unwrap_err();
        assert!(matches!(e, Error::Malformed { field: "json", .. }), "{e:?}");
    }
    // Optional fields may be absent; unknown ones are ignored.
    let ok = edited(PB, |v| {
        let o = v.as_object_mut().unwrap();
        o.remove("description");
        o.remove("pubkey");
        o.insert("name".into(), json!("extra"));
    });
    assert_eq!(ok, Ok(SECRET));
}

/// Over-limit parameters are refused before any work: each case gets `KdfTooCostly` naming the
/// parameter, its value and the limit. Four of them could not be run at all (`n = 2^40` needs
/// 128 TiB; `r = 2^32`, `p = u64::MAX` and `c > u32::MAX` do not fit the KDFs' 32-bit
/// parameters): had the KDF been tried first, they would have failed otherwise, so
/// `KdfTooCostly` there shows the limits are checked before it. The others are the values just
/// over each limit.
#[test]
fn over_limit_kdf_params_are_refused_before_the_kdf_runs() {
    let max_n = limits::SCRYPT_MAX_N;
    let cases: [(Kdf, &str, Value, u64); 7] = [
        (SC, "n", json!(max_n * 2), max_n),
        (SC, "n", json!(1u64 << 40), max_n),
        (SC, "r", json!(limits::SCRYPT_MAX_R + 1), limits::SCRYPT_MAX_R),
        (SC, "r", json!(1u64 << 32), limits::SCRYPT_MAX_R),
        (SC, "p", json!(u64::MAX), limits::SCRYPT_MAX_P),
        (PB, "c", json!(limits::PBKDF2_MAX_C + 1), limits::PBKDF2_MAX_C),
        (PB, "c", json!(u64::from(u32::MAX) + 1), limits::PBKDF2_MAX_C),
    ];
    for (kdf, param, value, max) in cases {
        let e = edited(kdf, |v| v["crypto"]["kdf"]["params"][param] = value.clone()).unwrap_err();
        match e {
            Error::KdfTooCostly { param: p, value: got, max: m } => {
                assert_eq!(p, format!("crypto.kdf.params.{param}"));
                assert_eq!(Some(got), value.as_u64());
                assert_eq!(m, max);
            }
            other => panic!("{param} = {value}: {other:?}"),
        }
    }
}

/// Parses, and if it parses decrypts, arbitrary text: any outcome but a panic (or a hang) is fine.
fn poke(text: &str) {
    if let Ok(ks) = Keystore::from_json(text) {
        let _ = ks.decrypt(PASSWORD);
        let _ = Keystore::from_json(&ks.to_json()).unwrap();
    }
}

#[test]
fn truncated_json_never_panics() {
    for kdf in [PB, SC] {
        let text = serde_json::to_string_pretty(&base(kdf)).unwrap();
        for end in (0..text.len()).filter(|&i| text.is_char_boundary(i)) {
            let e = Keystore::from_json(&text[..end]).unwrap_err();
            assert!(matches!(e, Error::Malformed { field: "json", .. }));
        }
        poke(&text);
    }
}

#[test]
fn garbled_json_never_panics() {
    const ALPHABET: &[u8] = b"{}[]\":,0123456789abcdefx -.eE+\\nulltruefalse\x00\x7f";
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut decrypted = 0;
    for kdf in [PB, SC] {
        let text = base(kdf).to_string().into_bytes();
        for _ in 0..3000 {
            let mut bytes = text.clone();
            for _ in 0..1 + rng.index(4) {
                let i = rng.index(bytes.len());
                match rng.index(4) {
                    0 => bytes[i] = ALPHABET[rng.index(ALPHABET.len())],
                    1 => _ = bytes.remove(i),
                    2 => bytes.insert(i, ALPHABET[rng.index(ALPHABET.len())]),
                    _ => bytes[i] = rng.next_u64() as u8,
                }
            }
            let text = String::from_utf8_lossy(&bytes);
            poke(&text);
            if Keystore::from_json(&text).is_ok_and(|ks| ks.decrypt(PASSWORD).is_ok()) {
                decrypted += 1;
            }
        }
    }
    // Some mutations land in whitespace or the free-text fields and still decrypt.
    assert!(decrypted > 0);
}

#[test]
fn garbled_values_never_panic() {
    let values = [
        json!(null),
        json!(true),
        json!(-1),
        json!(1.5e300),
        json!(u64::MAX),
        json!(""),
        json!("zz"),
        json!("0"),
        json!("00".repeat(1000)),
        json!([]),
        json!({}),
    ];
    let paths: [&[&str]; 12] = [
        &["version"],
        &["crypto", "kdf", "function"],
        &["crypto", "kdf", "params"],
        &["crypto", "kdf", "params", "n"],
        &["crypto", "kdf", "params", "r"],
        &["crypto", "kdf", "params", "p"],
        &["crypto", "kdf", "params", "dklen"],
        &["crypto", "kdf", "params", "salt"],
        &["crypto", "checksum", "message"],
        &["crypto", "cipher", "params"],
        &["crypto", "cipher", "params", "iv"],
        &["crypto", "cipher", "message"],
    ];
    for path in paths {
        for value in &values {
            let mut v = base(SC);
            let (last, parents) = path.split_last().unwrap();
            let mut slot = &mut v;
            for key in parents {
                slot = &mut slot[*key];
            }
            slot[*last] = value.clone();
            poke(&v.to_string());
        }
    }
}
