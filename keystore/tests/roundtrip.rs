//! encrypt -> decrypt, through JSON, for both KDFs (with cheap parameters, to stay fast).

use eip2335::{Error, Kdf, Keystore, limits};

const SECRET: [u8; 32] = [0x5a; 32];
const PUBKEY: &str =
    "a610be328703ca298317a87b8a5b1de081ab5b32e63af79d16a9078510203c93b5d0c14e1232c361a35e4abb1977a643";
const UUID: &str = "1484b6f7-467d-4718-bd4b-32c9b45fde56";

fn make(kdf: Kdf, password: &str) -> Keystore {
    Keystore::encrypt(&SECRET, password, PUBKEY, "m/12381/3600/0/0/0", kdf, [1; 32], [2; 16], UUID).unwrap()
}

#[test]
fn round_trip_both_kdfs() {
    for kdf in
        [Kdf::Scrypt { n: 1 << 10, r: 8, p: 1 }, Kdf::Scrypt { n: 2, r: 1, p: 4 }, Kdf::Pbkdf2 { c: 1000 }]
    {
        let ks = make(kdf, "correct horse battery staple");
        assert_eq!(ks.version, 4);
        assert_eq!(ks.pubkey, PUBKEY);
        assert_eq!(ks.uuid, UUID);
        assert_eq!(*ks.decrypt("correct horse battery staple").unwrap(), SECRET, "{kdf:?}");
        let reread = Keystore::from_json(&ks.to_json()).unwrap();
        assert_eq!(reread, ks);
        assert_eq!(*reread.decrypt("correct horse battery staple").unwrap(), SECRET);
        assert_eq!(reread.decrypt("correct horse battery stapler").unwrap_err(), Error::WrongPassword);
    }
}

#[test]
fn ciphertext_differs_from_secret_and_between_kdfs() {
    let a = make(Kdf::Pbkdf2 { c: 10 }, "pw");
    let b = make(Kdf::Scrypt { n: 16, r: 1, p: 1 }, "pw");
    assert_ne!(a.crypto.cipher.message, hex::encode(SECRET));
    assert_ne!(a.crypto.cipher.message, b.crypto.cipher.message);
    assert_ne!(a.crypto.checksum.message, b.crypto.checksum.message);
}

#[test]
fn json_shape() {
    let ks = make(Kdf::Pbkdf2 { c: 10 }, "pw");
    let v: serde_json::Value = serde_json::from_str(&ks.to_json()).unwrap();
    assert_eq!(v["version"], 4);
    assert_eq!(v["crypto"]["kdf"]["function"], "pbkdf2");
    assert_eq!(v["crypto"]["kdf"]["params"]["prf"], "hmac-sha256");
    assert_eq!(v["crypto"]["kdf"]["params"]["dklen"], 32);
    assert_eq!(v["crypto"]["kdf"]["params"]["c"], 10);
    assert_eq!(v["crypto"]["kdf"]["params"]["salt"], hex::encode([1u8; 32]));
    assert_eq!(v["crypto"]["kdf"]["message"], "");
    assert_eq!(v["crypto"]["checksum"]["function"], "sha256");
    assert_eq!(v["crypto"]["checksum"]["params"], serde_json::json!({}));
    assert_eq!(v["crypto"]["cipher"]["function"], "aes-128-ctr");
    assert_eq!(v["crypto"]["cipher"]["params"]["iv"], hex::encode([2u8; 16]));
    assert_eq!(v["path"], "m/12381/3600/0/0/0");
    assert_eq!(v["description"], "");

    let s = make(Kdf::Scrypt { n: 16, r: 2, p: 3 }, "pw");
    let v: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
    assert_eq!(v["crypto"]["kdf"]["function"], "scrypt");
    assert_eq!(
        v["crypto"]["kdf"]["params"],
        serde_json::json!({
            "dklen": 32, "n": 16, "r": 2, "p": 3, "salt": hex::encode([1u8; 32])
        })
    );
}

/// Passwords that differ only in what EIP-2335 processing removes or normalises are the same.
#[test]
fn password_normalisation_applies_to_decrypt() {
    let ks = make(Kdf::Pbkdf2 { c: 10 }, "pass\u{7f}word\u{0}\u{85}\n");
    assert_eq!(*ks.decrypt("password").unwrap(), SECRET);
    assert_eq!(*ks.decrypt("pass\tword").unwrap(), SECRET);
    assert_eq!(ks.decrypt("pass word").unwrap_err(), Error::WrongPassword);

    // "é" precomposed (U+00E9) and decomposed (e + U+0301) are the same password after NFKD,
    // and so is the "ﬁ" ligature and "fi".
    let ks = make(Kdf::Scrypt { n: 16, r: 1, p: 1 }, "caf\u{e9} \u{fb01}");
    assert_eq!(*ks.decrypt("cafe\u{301} fi").unwrap(), SECRET);
    assert_eq!(ks.decrypt("cafe fi").unwrap_err(), Error::WrongPassword);
}

#[test]
fn empty_password_and_metadata() {
    let ks = Keystore::encrypt(&SECRET, "", "", "", Kdf::Pbkdf2 { c: 1 }, [0; 32], [0; 16], "").unwrap();
    assert_eq!(*ks.decrypt("").unwrap(), SECRET);
    assert_eq!(*ks.decrypt("\u{1}\u{2}").unwrap(), SECRET, "only control codes = empty");
}

#[test]
fn encrypt_checks_pubkey_and_kdf() {
    let bad_pubkey = Keystore::encrypt(&SECRET, "pw", "0xab", "", Kdf::Pbkdf2 { c: 1 }, [0; 32], [0; 16], "");
    assert!(matches!(bad_pubkey, Err(Error::Malformed { field: "pubkey", .. })));

    let over = Kdf::Pbkdf2 { c: limits::PBKDF2_MAX_C + 1 };
    let err = Keystore::encrypt(&SECRET, "pw", "", "", over, [0; 32], [0; 16], "").unwrap_err();
    assert_eq!(
        err,
        Error::KdfTooCostly { param: "crypto.kdf.params.c", value: limits::PBKDF2_MAX_C + 1, max: 1 << 20 }
    );

    let not_pow2 = Kdf::Scrypt { n: 1000, r: 8, p: 1 };
    let err = Keystore::encrypt(&SECRET, "pw", "", "", not_pow2, [0; 32], [0; 16], "").unwrap_err();
    assert!(matches!(err, Error::Malformed { field: "crypto.kdf.params.n", .. }));
}

#[test]
fn decrypted_secret_zeroizes() {
    use zeroize::Zeroize;
    let ks = make(Kdf::Pbkdf2 { c: 1 }, "pw");
    let mut secret = ks.decrypt("pw").unwrap();
    assert_eq!(*secret, SECRET);
    secret.zeroize();
    assert_eq!(*secret, [0; 32]);
}

#[test]
fn errors_display() {
    let errors = [
        Error::WrongPassword,
        Error::Unsupported { field: "version", value: "3".into() },
        Error::Malformed { field: "crypto.cipher.params.iv", why: "missing".into() },
        Error::KdfTooCostly { param: "crypto.kdf.params.n", value: 1 << 20, max: 1 << 18 },
        Error::OutOfMemory { bytes: 1 << 28 },
    ];
    for e in errors {
        assert!(!e.to_string().is_empty());
    }
    assert_eq!(
        Error::KdfTooCostly { param: "crypto.kdf.params.n", value: 1 << 20, max: 1 << 18 }.to_string(),
        "KDF parameter crypto.kdf.params.n = 1048576 is above the limit 262144"
    );
}
