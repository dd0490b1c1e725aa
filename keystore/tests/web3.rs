//! Web3 Secret Storage v3: vectors from implementations this project did not write, round
//! trips, and hostile or damaged files.
//!
//! Vectors:
//! - `web3/vectors.json`: ECDSA keystores made by the Python `eth-keyfile` package and BLS key
//!   files in eigensdk's layout around an `eth-keyfile` `crypto` object, with `pubKey` from
//!   py_ecc (`web3/generate.py` says how; run by hand);
//! - `web3/definition-pbkdf2.json` and `web3/definition-scrypt.json`: the two test vectors of
//!   the Web3 Secret Storage definition, as it prints them (password `testpassword`).

use eip2335::web3::{BlsKeyFile, Crypto, EcdsaKeystore};
use eip2335::{Error, Kdf, limits};
use serde_json::{Value, json};

fn unhex<const N: usize>(text: &str) -> [u8; N] {
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).unwrap();
    out
}

#[test]
fn eth_keyfile_vectors() {
    let vectors: Vec<Value> = serde_json::from_str(include_str!("web3/vectors.json")).unwrap();
    assert!(vectors.len() >= 6);
    for v in &vectors {
        let name = v["name"].as_str().unwrap();
        let password = v["password"].as_str().unwrap().as_bytes();
        let secret: [u8; 32] = unhex(v["secret"].as_str().unwrap());
        let file = v["file"].as_str().unwrap();
        let wrong = [password, b"x"].concat();
        match v["kind"].as_str().unwrap() {
            "ecdsa" => {
                let ks = EcdsaKeystore::from_json(file).unwrap();
                assert_eq!(*ks.decrypt(password).unwrap(), secret, "{name}");
                assert_eq!(ks.address, Some(unhex(v["address"].as_str().unwrap())), "{name}");
                assert_eq!(ks.decrypt(&wrong).unwrap_err(), Error::WrongPassword, "{name}");
                let again = EcdsaKeystore::from_json(&ks.to_json()).unwrap();
                assert_eq!(again, ks, "{name}");
            }
            "bls" => {
                let kf = BlsKeyFile::from_json(file).unwrap();
                assert_eq!(*kf.decrypt(password).unwrap(), secret, "{name}");
                assert_eq!(kf.pub_key().unwrap(), unhex::<64>(v["g1"].as_str().unwrap()), "{name}");
                assert_eq!(kf.decrypt(&wrong).unwrap_err(), Error::WrongPassword, "{name}");
                let again = BlsKeyFile::from_json(&kf.to_json()).unwrap();
                assert_eq!(again, kf, "{name}");
            }
            other => panic!("{name}: unknown kind {other}"),
        }
    }
}

/// The password is raw bytes: its NFKD form (what EIP-2335 would use) is another password.
#[test]
fn passwords_are_not_normalised() {
    let vectors: Vec<Value> = serde_json::from_str(include_str!("web3/vectors.json")).unwrap();
    let v = vectors.iter().find(|v| v["name"] == "ecdsa-pbkdf2-unicode").unwrap();
    let password = v["password"].as_str().unwrap();
    assert!(password.contains('\u{e4}'));
    let ks = EcdsaKeystore::from_json(v["file"].as_str().unwrap()).unwrap();
    ks.decrypt(password.as_bytes()).unwrap();
    let decomposed = password.replace('\u{e4}', "a\u{308}").replace('\u{f6}', "o\u{308}");
    assert_eq!(ks.decrypt(decomposed.as_bytes()).unwrap_err(), Error::WrongPassword);
}

const WEB3_SECRET: &str = "7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d";

/// The PBKDF2 vector of the Web3 Secret Storage definition.
const WEB3_PBKDF2: &str = include_str!("web3/definition-pbkdf2.json");

/// The scrypt vector of the Web3 Secret Storage definition.
const WEB3_SCRYPT: &str = include_str!("web3/definition-scrypt.json");

#[test]
fn web3_definition_vectors_decrypt_and_are_reproduced() {
    for text in [WEB3_PBKDF2, WEB3_SCRYPT] {
        let ks = EcdsaKeystore::from_json(text).unwrap();
        assert_eq!(ks.address, None);
        assert_eq!(ks.id, "3198bc9c-6672-5ab3-d995-4942343ae5b6");
        assert_eq!(hex::encode(*ks.decrypt(b"testpassword").unwrap()), WEB3_SECRET);
        // encrypt() with the vector's salt and IV writes the same ciphertext and MAC.
        let salt: [u8; 32] = ks.crypto.salt.clone().try_into().unwrap();
        let made =
            Crypto::encrypt(&unhex::<32>(WEB3_SECRET), b"testpassword", ks.crypto.kdf, salt, ks.crypto.iv)
                .unwrap();
        assert_eq!(made, ks.crypto);
    }
    assert_eq!(
        EcdsaKeystore::from_json(WEB3_SCRYPT).unwrap().crypto.kdf,
        Kdf::Scrypt { n: 1 << 18, r: 1, p: 8 }
    );
}

// ---- round trips and hostile files, with cheap KDFs ----

const SECRET: [u8; 32] = [0x42; 32];
const PASSWORD: &[u8] = b"hunter2";
const PB: Kdf = Kdf::Pbkdf2 { c: 16 };
const SC: Kdf = Kdf::Scrypt { n: 16, r: 1, p: 1 };
const G1: [u8; 64] = {
    let mut g = [0u8; 64];
    g[31] = 1;
    g[63] = 2;
    g
};

fn ecdsa(kdf: Kdf) -> Value {
    let ks =
        EcdsaKeystore::encrypt(&SECRET, PASSWORD, Some([0xab; 20]), kdf, [3; 32], [4; 16], "id-1").unwrap();
    serde_json::from_str(&ks.to_json()).unwrap()
}

fn bls(kdf: Kdf) -> Value {
    let kf = BlsKeyFile::encrypt(&SECRET, PASSWORD, &G1, kdf, [5; 32], [6; 16]).unwrap();
    serde_json::from_str(&kf.to_json()).unwrap()
}

fn decrypt_ecdsa(v: &Value) -> Result<[u8; 32], Error> {
    EcdsaKeystore::from_json(&v.to_string())?.decrypt(PASSWORD).map(|s| *s)
}

fn decrypt_bls(v: &Value) -> Result<[u8; 32], Error> {
    BlsKeyFile::from_json(&v.to_string())?.decrypt(PASSWORD).map(|s| *s)
}

fn field_of(e: &Error) -> &'static str {
    match e {
        Error::Malformed { field, .. } | Error::Unsupported { field, .. } => field,
        Error::KdfTooCostly { param, .. } => param,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn round_trips() {
    for kdf in [PB, SC, Kdf::Scrypt { n: 1 << 10, r: 8, p: 2 }] {
        let v = ecdsa(kdf);
        assert_eq!(v["address"], "abababababababababababababababababababab");
        assert_eq!(v["version"], 3);
        assert_eq!(v["id"], "id-1");
        assert_eq!(decrypt_ecdsa(&v), Ok(SECRET));
        let v = bls(kdf);
        assert_eq!(v["pubKey"], "E([1,2])");
        assert_eq!(decrypt_bls(&v), Ok(SECRET));
        assert_eq!(BlsKeyFile::from_json(&v.to_string()).unwrap().pub_key(), Ok(G1));
    }
    // Without an address, none is written.
    let ks = EcdsaKeystore::encrypt(&SECRET, PASSWORD, None, PB, [3; 32], [4; 16], "x").unwrap();
    assert!(!ks.to_json().contains("address"));
    // Crypto of any length, through JSON.
    let c =
        Crypto::encrypt(b"a longer secret of 41 bytes, for example", b"pw", PB, [1; 32], [2; 16]).unwrap();
    let again = Crypto::from_value(&c.to_value()).unwrap();
    assert_eq!(again.decrypt(b"pw").unwrap().as_slice(), b"a longer secret of 41 bytes, for example");
}

#[test]
fn field_names_as_geth_reads_them() {
    let mut v = ecdsa(PB);
    let crypto = v.as_object_mut().unwrap().remove("crypto").unwrap();
    v["Crypto"] = crypto;
    v["ADDRESS"] = v.as_object_mut().unwrap().remove("address").unwrap();
    v["crypto_extra"] = json!(1);
    assert_eq!(decrypt_ecdsa(&v), Ok(SECRET));
    assert_eq!(EcdsaKeystore::from_json(&v.to_string()).unwrap().address, Some([0xab; 20]));
    // Both spellings at once: which one Go takes depends on their order, so it is refused.
    v["crypto"] = v["Crypto"].clone();
    assert_eq!(field_of(&decrypt_ecdsa(&v).unwrap_err()), "crypto");

    let mut v = bls(SC);
    let crypto = v.as_object_mut().unwrap().remove("crypto").unwrap();
    v["Crypto"] = crypto;
    v["Crypto"]["CipherText"] = v["Crypto"].as_object_mut().unwrap().remove("ciphertext").unwrap();
    assert_eq!(decrypt_bls(&v), Ok(SECRET));
    // An address with 0x and mixed case (EIP-55) is read too.
    let mut v = ecdsa(PB);
    v["address"] = json!("0xABabababababababababababababababababABab");
    assert_eq!(EcdsaKeystore::from_json(&v.to_string()).unwrap().address, Some([0xab; 20]));
}

#[test]
fn wrong_password_and_tampering() {
    let ks = EcdsaKeystore::from_json(&ecdsa(SC).to_string()).unwrap();
    assert_eq!(ks.decrypt(b"hunter3").unwrap_err(), Error::WrongPassword);
    assert_eq!(ks.decrypt(b"").unwrap_err(), Error::WrongPassword);
    let flip = |s: &Value, i: usize| {
        let mut b = hex::decode(s.as_str().unwrap()).unwrap();
        let len = b.len();
        b[i % len] ^= 1 << (i % 8);
        Value::from(hex::encode(b))
    };
    for i in [0, 9, 16, 31] {
        for (kind, base) in [("ecdsa", ecdsa(SC)), ("bls", bls(PB))] {
            let decrypt = if kind == "ecdsa" { decrypt_ecdsa } else { decrypt_bls };
            let mut v = base.clone();
            v["crypto"]["mac"] = flip(&v["crypto"]["mac"], i);
            assert_eq!(decrypt(&v), Err(Error::WrongPassword), "{kind} mac {i}");
            let mut v = base.clone();
            v["crypto"]["ciphertext"] = flip(&v["crypto"]["ciphertext"], i);
            assert_eq!(decrypt(&v), Err(Error::WrongPassword), "{kind} ciphertext {i}");
            let mut v = base.clone();
            v["crypto"]["kdfparams"]["salt"] = flip(&v["crypto"]["kdfparams"]["salt"], i);
            assert_eq!(decrypt(&v), Err(Error::WrongPassword), "{kind} salt {i}");
            // The MAC does not cover the IV: a changed IV gives another secret, without error.
            // Checking the address or pubKey against the secret is the caller's part.
            let mut v = base.clone();
            v["crypto"]["cipherparams"]["iv"] = flip(&v["crypto"]["cipherparams"]["iv"], i);
            let other = decrypt(&v).unwrap();
            assert_ne!(other, SECRET, "{kind} iv {i}");
        }
    }
    let mut v = ecdsa(PB);
    v["crypto"]["kdfparams"]["c"] = json!(17);
    assert_eq!(decrypt_ecdsa(&v), Err(Error::WrongPassword));
}

#[test]
fn unsupported_values_name_their_field() {
    type Edit = fn(&mut Value);
    let cases: [(Edit, &str); 6] = [
        (|v| v["crypto"]["cipher"] = json!("aes-128-cbc"), "crypto.cipher"),
        (|v| v["crypto"]["kdf"] = json!("argon2id"), "crypto.kdf"),
        (|v| v["crypto"]["kdfparams"]["prf"] = json!("hmac-sha512"), "crypto.kdfparams.prf"),
        (|v| v["crypto"]["kdfparams"]["dklen"] = json!(64), "crypto.kdfparams.dklen"),
        (|v| v["version"] = json!(4), "version"),
        (|v| v["version"] = json!("3"), "version"),
    ];
    for (edit, field) in cases {
        let mut v = ecdsa(PB);
        edit(&mut v);
        let e = decrypt_ecdsa(&v).unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }), "{field}: {e:?}");
        assert_eq!(field_of(&e), field);
    }
}

#[test]
fn malformed_values_name_their_field() {
    type Edit = fn(&mut Value);
    let cases: [(Edit, &str); 17] = [
        (|v| v["crypto"]["mac"] = json!("zz".repeat(32)), "crypto.mac"),
        (|v| v["crypto"]["mac"] = json!("00".repeat(31)), "crypto.mac"),
        (|v| v["crypto"]["mac"] = json!(5), "crypto.mac"),
        (|v| v["crypto"]["ciphertext"] = json!("0"), "crypto.ciphertext"),
        (|v| v["crypto"]["ciphertext"] = json!("00".repeat(31)), "crypto.ciphertext"),
        (|v| v["crypto"]["ciphertext"] = json!(""), "crypto.ciphertext"),
        (|v| v["crypto"]["cipherparams"]["iv"] = json!("00".repeat(15)), "crypto.cipherparams.iv"),
        (
            |v| v["crypto"]["cipherparams"]["iv"] = json!("0x".to_owned() + &"00".repeat(16)),
            "crypto.cipherparams.iv",
        ),
        (|v| v["crypto"]["cipherparams"] = json!("iv"), "crypto.cipherparams"),
        (|v| v["crypto"]["kdfparams"]["salt"] = json!("xyz"), "crypto.kdfparams.salt"),
        (|v| v["crypto"]["kdfparams"]["c"] = json!(-1), "crypto.kdfparams.c"),
        (|v| v["crypto"]["kdfparams"]["c"] = json!(0), "crypto.kdfparams.c"),
        (|v| drop(v["crypto"].as_object_mut().unwrap().remove("kdfparams")), "crypto.kdfparams"),
        (|v| drop(v["crypto"].as_object_mut().unwrap().remove("mac")), "crypto.mac"),
        (|v| v["crypto"] = json!([]), "crypto"),
        (|v| v["address"] = json!("abcd"), "address"),
        (|v| v["id"] = json!(7), "id"),
    ];
    for (edit, field) in cases {
        let mut v = ecdsa(PB);
        edit(&mut v);
        let e = decrypt_ecdsa(&v).unwrap_err();
        assert!(matches!(e, Error::Malformed { .. }), "{field}: {e:?}");
        assert_eq!(field_of(&e), field, "{e:?}");
    }
    for (edit, field) in [
        ((|v| v["pubKey"] = json!("E([1,x])")) as Edit, "pubKey"),
        (|v| v["pubKey"] = json!(12), "pubKey"),
        (|v| drop(v.as_object_mut().unwrap().remove("pubKey")), "pubKey"),
        (|v| v["crypto"]["ciphertext"] = json!("00".repeat(33)), "crypto.ciphertext"),
        (|v| drop(v.as_object_mut().unwrap().remove("crypto")), "crypto"),
    ] {
        let mut v = bls(SC);
        edit(&mut v);
        let e = decrypt_bls(&v).unwrap_err();
        assert_eq!(field_of(&e), field, "{e:?}");
    }
}

/// Over-limit parameters are refused when the file is read, so no work is ever started.
#[test]
fn huge_kdf_params_are_refused() {
    type Edit = fn(&mut Value);
    let cases: [(Kdf, Edit, &str, u64); 6] = [
        (
            SC,
            |v| v["crypto"]["kdfparams"]["n"] = json!(1u64 << 40),
            "crypto.kdfparams.n",
            limits::SCRYPT_MAX_N,
        ),
        (SC, |v| v["crypto"]["kdfparams"]["r"] = json!(u64::MAX), "crypto.kdfparams.r", limits::SCRYPT_MAX_R),
        (SC, |v| v["crypto"]["kdfparams"]["p"] = json!(1000), "crypto.kdfparams.p", limits::SCRYPT_MAX_P),
        (
            SC,
            |v| {
                v["crypto"]["kdfparams"]["n"] = json!(1 << 18);
                v["crypto"]["kdfparams"]["r"] = json!(8);
                v["crypto"]["kdfparams"]["p"] = json!(16);
            },
            "crypto.kdfparams.p",
            4,
        ),
        (PB, |v| v["crypto"]["kdfparams"]["c"] = json!(u64::MAX), "crypto.kdfparams.c", limits::PBKDF2_MAX_C),
        (
            PB,
            |v| v["crypto"]["kdfparams"]["c"] = json!(limits::PBKDF2_MAX_C + 1),
            "crypto.kdfparams.c",
            limits::PBKDF2_MAX_C,
        ),
    ];
    for (kdf, edit, param, max) in cases {
        let mut v = ecdsa(kdf);
        edit(&mut v);
        let e = EcdsaKeystore::from_json(&v.to_string()).unwrap_err();
        assert!(matches!(e, Error::KdfTooCostly { param: p, max: m, .. } if p == param && m == max), "{e:?}");
    }
    // A Crypto built by hand is checked again by decrypt and encrypt.
    let mut c = Crypto::encrypt(&SECRET, PASSWORD, PB, [0; 32], [0; 16]).unwrap();
    c.kdf = Kdf::Scrypt { n: 1 << 30, r: 8, p: 1 };
    assert!(matches!(c.decrypt(PASSWORD), Err(Error::KdfTooCostly { param: "crypto.kdfparams.n", .. })));
    let e = Crypto::encrypt(&SECRET, PASSWORD, Kdf::Pbkdf2 { c: 1 << 30 }, [0; 32], [0; 16]).unwrap_err();
    assert!(matches!(e, Error::KdfTooCostly { param: "crypto.kdfparams.c", .. }));
}

#[test]
fn bad_json_is_an_error_never_a_panic() {
    for text in ["", "{", "[]", "null", "3", "\"x\"", "{\"version\":3}", "{\"pubKey\":\"E([1,2])\"}"] {
        assert!(EcdsaKeystore::from_json(text).is_err(), "{text:?}");
        assert!(BlsKeyFile::from_json(text).is_err(), "{text:?}");
    }
    assert_eq!(field_of(&EcdsaKeystore::from_json("{").unwrap_err()), "json");
    assert_eq!(field_of(&BlsKeyFile::from_json("[1]").unwrap_err()), "json");
    // Every prefix of a valid file, and every single-byte change to one, is handled.
    for text in [ecdsa(PB).to_string(), bls(PB).to_string()] {
        for end in 0..text.len() - 1 {
            assert!(EcdsaKeystore::from_json(&text[..end]).is_err());
            assert!(BlsKeyFile::from_json(&text[..end]).is_err());
        }
        let bytes = text.as_bytes();
        for i in 0..bytes.len() {
            for replacement in [b'0', b'"', b'}', b'x'] {
                let mut changed = bytes.to_vec();
                changed[i] = replacement;
                if let Ok(changed) = std::str::from_utf8(&changed) {
                    if let Ok(ks) = EcdsaKeystore::from_json(changed) {
                        let _ = ks.decrypt(PASSWORD);
                    }
                    if let Ok(kf) = BlsKeyFile::from_json(changed) {
                        let _ = (kf.decrypt(PASSWORD), kf.pub_key());
                    }
                }
            }
        }
    }
}
