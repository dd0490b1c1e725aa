//! `spacecore keys` with `--scheme bn254`, `--json`, eigensdk BLS key files and ECDSA keystores:
//! generation, signing, verification, aggregation, import into a disk and `show`.

mod common;

use common::*;
use serde_json::Value;
use spacecore_store::RecordKey;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn scalar(n: u8) -> String {
    format!("0x{}{n:02x}", "00".repeat(31))
}

const DIGEST: &str = "0x28b08f6abf7f06678e9af8f957a660fe6be44b778e4a7a5cfaff67468fdc6170";

fn hex32(v: &Value) -> &str {
    let s = v.as_str().unwrap();
    assert!(s.starts_with("0x") && s.len() == 66, "{s}");
    s
}

/// `pubkey --json` of a BN254 key: G1 and G2 (in the contracts' order) and the operator id.
fn bn254_pubkey(secret: &str) -> Value {
    spacecore(&["keys", "pubkey", "--scheme", "bn254", "--secret-hex", secret, "--json"]).json()
}

fn g1_hex(v: &Value) -> String {
    format!("{}{}", hex32(&v["x"]), &hex32(&v["y"])[2..])
}

fn g2_hex(v: &Value) -> String {
    let part = |a: &str, i: usize| hex32(&v[a][i])[2..].to_owned();
    format!("0x{}{}{}{}", part("x", 0), part("x", 1), part("y", 0), part("y", 1))
}

#[test]
fn bn254_pubkey_json_and_text_agree_with_avs_protocol() {
    let json = bn254_pubkey(&scalar(1));
    // sk = 1: the generators. G1 = (1, 2); BN254.sol's G2 with X.c1 first.
    assert_eq!(json["g1"]["x"], format!("0x{}01", "00".repeat(31)));
    assert_eq!(json["g1"]["y"], format!("0x{}02", "00".repeat(31)));
    assert_eq!(json["g2"]["x"][0], "0x198e9393920d483a7260bfb731fb5d25f1aa493335a9e71297e485b7aef312c2");
    assert_eq!(json["g2"]["x"][1], "0x1800deef121f1e76426a00665e5c4479674322d4f75edadd46debd5cd992f6ed");
    assert_eq!(json.as_object().unwrap().len(), 3);

    let key = avs_protocol::bn254::SecretKey::from_bytes(&secret32(&scalar(9))).unwrap().public_key();
    let json = bn254_pubkey(&scalar(9));
    assert_eq!(g1_hex(&json["g1"]), avs_protocol::encoding::to_hex(&key.g1().to_bytes()));
    assert_eq!(g2_hex(&json["g2"]), avs_protocol::encoding::to_hex(&key.g2().to_bytes()));
    assert_eq!(json["operator_id"], avs_protocol::encoding::to_hex(&key.operator_id()));
    let text = spacecore(&["keys", "pubkey", "--scheme", "bn254", "--secret-hex", &scalar(9)]).lines();
    assert_eq!(
        text,
        [
            format!("g1: {}", g1_hex(&json["g1"])),
            format!("g2: {}", g2_hex(&json["g2"])),
            format!("operator_id: {}", json["operator_id"].as_str().unwrap()),
        ]
    );
}

#[test]
fn bn254_sign_verify_aggregate_are_consistent() {
    let sign = |n: u8| keys_sign("bn254", &scalar(n), DIGEST, &[]).line().to_owned();
    let (s3, s5) = (sign(3), sign(5));
    assert_eq!(s3.len(), 2 + 128);
    let json = keys_sign("bn254", &scalar(3), DIGEST, &["--json"]).json();
    assert_eq!(g1_hex(&json["signature"]), s3);
    assert_eq!(json.as_object().unwrap().len(), 1);
    let g2 = |n: u8| g2_hex(&bn254_pubkey(&scalar(n))["g2"]);
    let verify = |pk: &str, msg: &str, sig: &str| keys_verify("bn254", pk, msg, sig, &[]);
    assert_eq!(verify(&g2(3), DIGEST, &s3).line(), "valid");
    let other_digest = format!("0x{}", "11".repeat(32));
    let run = verify(&g2(3), &other_digest, &s3);
    assert_eq!((run.code, run.stdout.as_str()), (Some(1), "invalid\n"));
    let run = keys_verify("bn254", &g2(5), DIGEST, &s3, &["--json"]);
    assert_eq!(
        (run.code, serde_json::from_str::<Value>(&run.stdout).unwrap()),
        (Some(1), serde_json::json!({"valid": false}))
    );

    // 3 + 5 = 8: the aggregates are key 8's signature, G1 and G2 keys.
    let agg = spacecore(&["keys", "aggregate", "--scheme", "bn254", "--signatures", &format!("{s3},{s5}")]);
    assert_eq!(agg.line(), sign(8));
    let g1 = |n: u8| g1_hex(&bn254_pubkey(&scalar(n))["g1"]);
    let agg_g1 = spacecore(&[
        "keys",
        "aggregate",
        "--scheme",
        "bn254",
        "--pubkeys",
        &format!("{},{}", g1(3), g1(5)),
        "--json",
    ]);
    assert_eq!(g1_hex(&agg_g1.json()["g1"]), g1(8));
    let agg_g2 =
        spacecore(&["keys", "aggregate", "--scheme", "bn254", "--pubkeys", &format!("{},{}", g2(3), g2(5))]);
    assert_eq!(agg_g2.line(), g2(8));
    assert_eq!(verify(agg_g2.line(), DIGEST, agg.line()).line(), "valid");
    let json = spacecore(&[
        "keys",
        "aggregate",
        "--scheme",
        "bn254",
        "--signatures",
        &format!("{s3},{s5}"),
        "--json",
    ]);
    assert_eq!(g1_hex(&json.json()["signature"]), sign(8));
    // Mixed groups, bad lengths and messages that are not 32 bytes are errors.
    spacecore(&["keys", "aggregate", "--scheme", "bn254", "--pubkeys", &format!("{},{}", g1(3), g2(5))])
        .fails_with("--pubkeys item 2: 128 bytes, expected 64");
    keys_sign("bn254", &scalar(3), "0xc0ffee", &[])
        .fails_with("--message-hex: 3 bytes; a bn254 message is exactly 32 bytes");
    verify(&g1(3), DIGEST, &s3).fails_with("--pubkey: 64 bytes, expected 128");
    let off_curve = format!("{}{}", &s3[..129], if s3.ends_with('0') { "1" } else { "0" });
    verify(&g2(3), DIGEST, &off_curve).fails_with("--signature: not a valid BN254 signature");

    // Proof of possession.
    let pop = spacecore(&["keys", "pop", "--scheme", "bn254", "--secret-hex", &scalar(3)]);
    let pop_verify = |g2: &str, g1: &str| {
        spacecore(&[
            "keys",
            "pop-verify",
            "--scheme",
            "bn254",
            "--pubkey",
            g2,
            "--g1",
            g1,
            "--proof",
            pop.line(),
        ])
    };
    assert_eq!(pop_verify(&g2(3), &g1(3)).line(), "valid");
    pop_verify(&g2(5), &g1(3)).fails_with("are not the G1 and G2 keys of one secret");
    let run = pop_verify(&g2(5), &g1(5));
    assert_eq!((run.code, run.stdout.as_str()), (Some(1), "invalid\n"));
    spacecore(&["keys", "pop-verify", "--scheme", "bn254", "--pubkey", &g2(3), "--proof", pop.line()])
        .fails_with("needs --g1");
}

#[test]
fn bls12_381_json_shapes() {
    let (sk, pk, sig, _) = KEYS[0];
    let json = spacecore(&["keys", "pubkey", "--scheme", "bls12-381", "--secret-hex", sk, "--json"]).json();
    assert_eq!(json["pubkey"], pk);
    let pk_bytes = avs_protocol::encoding::from_hex(pk).unwrap();
    assert_eq!(json["operator_id"], avs_protocol::encoding::to_hex(&avs_protocol::keccak256(&pk_bytes)));
    let json = keys_sign("bls12-381", sk, DIGEST_7_81, &["--json"]).json();
    assert_eq!(json, serde_json::json!({ "signature": sig }));
    let verify = keys_verify("bls12-381", pk, DIGEST_7_81, sig, &["--json"]);
    assert_eq!(verify.json(), serde_json::json!({ "valid": true }));
    let sigs: Vec<&str> = KEYS.iter().map(|k| k.2).collect();
    let json =
        spacecore(&["keys", "aggregate", "--scheme", "bls12-381", "--signatures", &sigs.join(","), "--json"])
            .json();
    assert_eq!(json, serde_json::json!({ "signature": AGGREGATE_SIGNATURE }));
    let pks: Vec<&str> = KEYS.iter().map(|k| k.1).collect();
    let json =
        spacecore(&["keys", "aggregate", "--scheme", "bls12-381", "--pubkeys", &pks.join(","), "--json"])
            .json();
    assert_eq!(json, serde_json::json!({ "pubkey": AGGREGATE_PUBLIC_KEY }));
}

#[test]
fn bn254_key_files_are_used_like_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let file = cheap_bn254_file(dir.path(), "bn.json", &scalar(7), "pw bn");
    let password = password_file(dir.path(), "pw", "pw bn");
    let from = ["--keystore", file.to_str().unwrap(), "--password-file", password.to_str().unwrap()];
    // The file's kind sets the scheme; --scheme bn254 may be given; bls12-381 is refused.
    let by_file = spacecore(&[&["keys", "pubkey", "--json"][..], &from].concat()).json();
    assert_eq!(by_file, bn254_pubkey(&scalar(7)));
    let sign =
        spacecore(&[&["keys", "sign", "--scheme", "bn254", "--message-hex", DIGEST][..], &from].concat());
    let raw = keys_sign("bn254", &scalar(7), DIGEST, &[]);
    assert_eq!(sign.line(), raw.line());
    spacecore(&[&["keys", "pubkey", "--scheme", "bls12-381"][..], &from].concat())
        .fails_with("an eigensdk BLS key file (bn254), but --scheme bls12-381 was given");

    let wrong = password_file(dir.path(), "wrong", "pw bx");
    let run = with_key_file(&["keys", "pubkey"], &file, &wrong);
    run.fails_with(&format!("key file {}: crypto.mac: wrong password", file.display()));
    // A pubKey that is another key's is refused after decryption.
    let other = cheap_bn254_file(dir.path(), "other.json", &scalar(8), "pw bn");
    let other_pub = read_json(&other)["pubKey"].clone();
    let mut json = read_json(&file);
    json["pubKey"] = other_pub;
    std::fs::write(&file, json.to_string()).unwrap();
    spacecore(&[&["keys", "pubkey"][..], &from].concat()).fails_with("pubKey: E([");
    // An ECDSA keystore is not a BLS key.
    let ecdsa = cheap_ecdsa_keystore(dir.path(), "ecdsa.json", &scalar(7), "pw bn");
    let run = with_key_file(&["keys", "pubkey"], &ecdsa, &password);
    run.fails_with("an Ethereum v3 keystore (ecdsa), not a BLS key");
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn generate_bn254_writes_an_eigensdk_key_file_that_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let password = password_file(dir.path(), "pw", "a long passphrase");
    let out = dir.path().join("op.bls.key.json");
    let args = ["keys", "generate", "--scheme", "bn254", "--out", out.to_str().unwrap(), "--password-file"];
    let run = spacecore(&[&args[..], &[password.to_str().unwrap(), "--kdf", "pbkdf2"]].concat());
    let lines = run.lines();
    let g1 = lines[0].strip_prefix("g1: ").unwrap();
    let g2 = lines[1].strip_prefix("g2: ").unwrap();
    let operator_id = lines[2].strip_prefix("operator_id: ").unwrap();
    assert_eq!((g1.len(), g2.len(), lines.len()), (130, 258, 3));
    assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o600);

    // eigensdk's layout: pubKey "E([X,Y])" in decimal, then the v3 crypto object.
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.starts_with("{\"pubKey\":\"E(["), "{text}");
    let file = eip2335::web3::BlsKeyFile::from_json(&text).unwrap();
    assert_eq!(avs_protocol::encoding::to_hex(&file.pub_key().unwrap()), g1);
    assert_eq!(file.crypto.kdf, eip2335::Kdf::PBKDF2_DEFAULT);
    let secret = file.decrypt(b"a long passphrase").unwrap();
    let key = avs_protocol::bn254::SecretKey::from_bytes(&secret).unwrap();
    assert_eq!(avs_protocol::encoding::to_hex(&key.public_key().operator_id()), operator_id);
    assert_eq!(file.to_json(), text, "written as eigensdk-go writes it");

    // The file signs through the CLI, and the signature checks under the printed G2 key.
    let from = ["--keystore", out.to_str().unwrap(), "--password-file", password.to_str().unwrap()];
    let sig = spacecore(&[&["keys", "sign", "--message-hex", DIGEST][..], &from].concat());
    assert_eq!(keys_verify("bn254", g2, DIGEST, sig.line(), &[]).line(), "valid");
    spacecore(&[&args[..], &[password.to_str().unwrap()]].concat()).fails_with("already exists");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), text);
}

#[test]
fn generate_ecdsa_writes_a_v3_keystore_with_its_address() {
    let dir = tempfile::tempdir().unwrap();
    let password = password_file(dir.path(), "pw", "ecdsa pass");
    let out = dir.path().join("op.ecdsa.key.json");
    // The default KDF: scrypt n = 2^18, r = 8, p = 1.
    let args = ["keys", "generate", "--scheme", "ecdsa", "--out", out.to_str().unwrap(), "--password-file"];
    let run = spacecore(&[&args[..], &[password.to_str().unwrap()]].concat());
    let address = run.line().strip_prefix("address: ").unwrap().to_owned();
    assert_eq!(address.len(), 42);
    assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o600);
    let ks = eip2335::web3::EcdsaKeystore::from_json(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(ks.crypto.kdf, eip2335::Kdf::SCRYPT_DEFAULT);
    assert_eq!(avs_protocol::encoding::to_hex(&ks.address.unwrap()), address);
    let key = avs_protocol::ecdsa::SecretKey::from_bytes(&ks.decrypt(b"ecdsa pass").unwrap()).unwrap();
    assert_eq!(avs_protocol::encoding::to_hex(&key.address()), address);
    spacecore(&[&args[..], &[password.to_str().unwrap(), "--path", "m/1"]].concat())
        .fails_with("--path is recorded in EIP-2335 keystores only");
}

#[test]
fn import_bn254_and_ecdsa_files_and_show_them() {
    let dir = tempfile::tempdir().unwrap();
    let disk = disk(dir.path());
    let bn = cheap_bn254_file(dir.path(), "bn.json", &scalar(7), "pw");
    let ecdsa = cheap_ecdsa_keystore(dir.path(), "ecdsa.json", &scalar(9), "pw");
    let password = password_file(dir.path(), "pw", "pw");
    let extra = ["--ecdsa-keystore", ecdsa.to_str().unwrap(), "--password-file", password.to_str().unwrap()];
    let run = keys_import(&bn, &disk, &extra);
    let lines = run.lines();
    let pubkey = bn254_pubkey(&scalar(7));
    let address = avs_protocol::ecdsa::SecretKey::from_bytes(&secret32(&scalar(9))).unwrap().address();
    let address = avs_protocol::encoding::to_hex(&address);
    assert!(lines[0].starts_with(&format!("imported bn254 key file {}", g1_hex(&pubkey["g1"]))), "{run:?}");
    assert!(lines[1].starts_with(&format!("imported ecdsa keystore {address}")), "{run:?}");

    // The files are stored verbatim, each in its record.
    let mut s = store(&disk);
    let text = |p: &Path| std::fs::read_to_string(p).unwrap().trim().as_bytes().to_vec();
    assert_eq!(s.get(RecordKey::Keystore).unwrap(), Some(text(&bn)));
    assert_eq!(s.get(RecordKey::EcdsaKeystore).unwrap(), Some(text(&ecdsa)));
    drop(s);
    let show = spacecore(&["keys", "show", "--disk", disk.to_str().unwrap()]).lines();
    assert_eq!(
        show,
        [
            "scheme: bn254".to_owned(),
            format!("g1: {}", g1_hex(&pubkey["g1"])),
            format!("operator_id: {}", pubkey["operator_id"].as_str().unwrap()),
            format!("ecdsa_address: {address}"),
        ]
    );
}

#[test]
fn failed_imports_leave_the_disk_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let disk = disk(dir.path());
    let bn = cheap_bn254_file(dir.path(), "bn.json", &scalar(7), "pw");
    let ecdsa = cheap_ecdsa_keystore(dir.path(), "ecdsa.json", &scalar(9), "pw");
    let password = password_file(dir.path(), "pw", "pw");
    let wrong = password_file(dir.path(), "wrong", "pw2");
    // A disk that already holds a key: it must survive every failed import.
    let first = cheap_keystore(dir.path(), "k.json", KEYS[0].0, "pw");
    let run = keys_import(&first, &disk, &[]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let before = std::fs::read(&disk).unwrap();

    let edited = |name: &str, from: &Path, edit: &dyn Fn(&mut Value)| {
        let mut json = read_json(from);
        edit(&mut json);
        let path = dir.path().join(name);
        std::fs::write(&path, json.to_string()).unwrap();
        path
    };
    let bad_mac = edited("mac.json", &bn, &|v| v["crypto"]["mac"] = Value::from("00".repeat(32)));
    let unknown_kdf = edited("kdf.json", &ecdsa, &|v| v["crypto"]["kdf"] = Value::from("argon2id"));
    let huge_kdf = edited("huge.json", &bn, &|v| v["crypto"]["kdfparams"]["c"] = Value::from(1u64 << 40));
    let bad_json = dir.path().join("bad.json");
    std::fs::write(&bad_json, "{\"pubKey\": ").unwrap();
    let bad_pubkey = edited("pk.json", &bn, &|v| v["pubKey"] = Value::from("E([1,3])"));

    let import = |flag: &str, file: &Path, pw: &Path| {
        spacecore(&[
            "keys",
            "import",
            flag,
            file.to_str().unwrap(),
            "--disk",
            disk.to_str().unwrap(),
            "--password-file",
            pw.to_str().unwrap(),
        ])
    };
    let cases: [(&str, &Path, &Path, String); 8] = [
        ("--keystore", &bn, &wrong, format!("key file {}: crypto.mac: wrong password", bn.display())),
        (
            "--ecdsa-keystore",
            &ecdsa,
            &wrong,
            format!("key file {}: crypto.mac: wrong password", ecdsa.display()),
        ),
        ("--keystore", &bad_mac, &password, "crypto.mac: wrong password".into()),
        (
            "--ecdsa-keystore",
            &unknown_kdf,
            &password,
            format!("key file {}: unsupported crypto.kdf: \"argon2id\"", unknown_kdf.display()),
        ),
        ("--keystore", &huge_kdf, &password, "crypto.kdfparams.c = 1099511627776 is above the limit".into()),
        (
            "--keystore",
            &bad_json,
            &password,
            format!("key file {}: malformed keystore: json", bad_json.display()),
        ),
        ("--keystore", &bad_pubkey, &password, "pubKey: not a BN254 G1 point".into()),
        ("--keystore", &ecdsa, &password, "not a BLS key file: give it as --ecdsa-keystore".into()),
    ];
    for (flag, file, pw, needle) in cases {
        import(flag, file, pw).fails_with(&needle);
        assert!(std::fs::read(&disk).unwrap() == before, "{flag} {}: the disk changed", file.display());
    }
    // Both files at once, the second one bad: neither is written.
    let run = keys_import(&bn, &disk, &["--ecdsa-keystore", unknown_kdf.to_str().unwrap()]);
    run.fails_with("unsupported crypto.kdf");
    assert!(std::fs::read(&disk).unwrap() == before, "the disk changed");
}
