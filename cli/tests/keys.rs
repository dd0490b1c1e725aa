//! `spacecore keys`: the BLS commands against the py_ecc vectors, keystores, exit statuses.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

#[test]
fn raw_secret_commands_match_py_ecc() {
    for (sk, pk, sig, pop) in KEYS {
        assert_eq!(spacecore(&["keys", "pubkey", "--scheme", "bls12-381", "--secret-hex", sk]).line(), pk);
        let sign =
            ["keys", "sign", "--scheme", "bls12-381", "--secret-hex", sk, "--message-hex", DIGEST_7_81];
        assert_eq!(spacecore(&sign).line(), sig);
        assert_eq!(spacecore(&["keys", "pop", "--scheme", "bls12-381", "--secret-hex", sk]).line(), pop);
        assert_eq!(keys_verify("bls12-381", pk, DIGEST_7_81, sig, &[]).line(), "valid");
        assert_eq!(
            spacecore(&["keys", "pop-verify", "--scheme", "bls12-381", "--pubkey", pk, "--proof", pop])
                .line(),
            "valid"
        );
    }
    // Bare hex and upper case are accepted too.
    let (sk, pk, ..) = KEYS[1];
    assert_eq!(
        spacecore(&["keys", "pubkey", "--scheme", "bls12-381", "--secret-hex", &sk[2..].to_uppercase()])
            .line(),
        pk
    );
}

#[test]
fn keystore_commands_give_the_same_bytes_as_the_raw_secret() {
    let dir = tempfile::tempdir().unwrap();
    let (sk, pk, sig, pop) = KEYS[0];
    let keystore = cheap_keystore(dir.path(), "k.json", sk, "correct horse");
    let password = password_file(dir.path(), "pw", "correct horse");
    let from = ["--keystore", keystore.to_str().unwrap(), "--password-file", password.to_str().unwrap()];
    assert_eq!(spacecore(&[&["keys", "pubkey", "--scheme", "bls12-381"][..], &from].concat()).line(), pk);
    let sign = [&["keys", "sign", "--scheme", "bls12-381"][..], &from, &["--message-hex", DIGEST_7_81]];
    assert_eq!(spacecore(&sign.concat()).line(), sig);
    assert_eq!(spacecore(&[&["keys", "pop", "--scheme", "bls12-381"][..], &from].concat()).line(), pop);

    let wrong = password_file(dir.path(), "wrong", "incorrect horse");
    spacecore(&[
        "keys",
        "pubkey",
        "--scheme",
        "bls12-381",
        "--keystore",
        keystore.to_str().unwrap(),
        "--password-file",
    ])
    .fails_with("a value is required");
    let run = with_key_file(&["keys", "pubkey", "--scheme", "bls12-381"], &keystore, &wrong);
    run.fails_with("wrong password");

    // A pubkey field that is not the secret's public key is refused.
    let json = std::fs::read_to_string(&keystore).unwrap().replace(&pk[2..], &KEYS[1].1[2..]);
    std::fs::write(&keystore, json).unwrap();
    spacecore(&[&["keys", "pubkey", "--scheme", "bls12-381"][..], &from].concat())
        .fails_with("is not the public key of the keystore's secret");
}

#[test]
fn aggregates_match_py_ecc() {
    let sigs: Vec<&str> = KEYS.iter().map(|k| k.2).collect();
    let pks: Vec<&str> = KEYS.iter().map(|k| k.1).collect();
    assert_eq!(
        spacecore(&["keys", "aggregate", "--scheme", "bls12-381", "--signatures", &sigs.join(",")]).line(),
        AGGREGATE_SIGNATURE
    );
    assert_eq!(
        spacecore(&["keys", "aggregate", "--scheme", "bls12-381", "--pubkeys", &pks.join(",")]).line(),
        AGGREGATE_PUBLIC_KEY
    );
    // The aggregate checks against the aggregate key.
    let verify = keys_verify("bls12-381", AGGREGATE_PUBLIC_KEY, DIGEST_7_81, AGGREGATE_SIGNATURE, &[]);
    assert_eq!(verify.line(), "valid");
    // A bad item is named; both lists at once is a usage error.
    let bad = format!("{},{}", pks[0], &pks[1][..20]);
    spacecore(&["keys", "aggregate", "--scheme", "bls12-381", "--pubkeys", &bad])
        .fails_with("--pubkeys item 2: 9 bytes, expected 48");
    let both = ["keys", "aggregate", "--scheme", "bls12-381", "--pubkeys", pks[0], "--signatures", sigs[0]];
    spacecore(&both).fails_with("cannot be used with");
}

#[test]
fn verify_tells_invalid_from_malformed() {
    let (_, pk, sig, pop) = KEYS[0];
    let verify = |pk: &str, msg: &str, sig: &str| keys_verify("bls12-381", pk, msg, sig, &[]);
    // Valid points that do not verify: exit 1.
    for run in [
        verify(pk, "0x00", sig),
        verify(pk, DIGEST_7_81, KEYS[1].2),
        verify(KEYS[1].1, DIGEST_7_81, sig),
        spacecore(&["keys", "pop-verify", "--scheme", "bls12-381", "--pubkey", KEYS[1].1, "--proof", pop]),
        spacecore(&["keys", "pop-verify", "--scheme", "bls12-381", "--pubkey", pk, "--proof", sig]),
    ] {
        assert_eq!((run.code, run.stdout.as_str()), (Some(1), "invalid\n"), "{run:?}");
    }
    // One hex digit changed: no longer a point of the subgroup, which is an error (exit 2).
    let tampered = format!("{}0{}", &sig[..10], &sig[11..]);
    verify(pk, DIGEST_7_81, &tampered).fails_with("--signature: not a valid BLS12-381 signature");
    verify(pk, DIGEST_7_81, &sig[..100]).fails_with("--signature: 49 bytes, expected 96");
    verify(pk, "0xzz", sig).fails_with("--message-hex: not a hex digit");
    verify(&KEYS[0].0[..50], DIGEST_7_81, sig).fails_with("--pubkey: 24 bytes, expected 48");
    let infinity = format!("0xc0{}", "00".repeat(47));
    verify(&infinity, DIGEST_7_81, sig).fails_with("--pubkey: not a valid BLS12-381 public key");
}

#[test]
fn generate_writes_a_private_keystore_whose_key_signs() {
    let dir = tempfile::tempdir().unwrap();
    let password = password_file(dir.path(), "pw", "a long passphrase");
    let out = dir.path().join("operator.json");
    let generate = |kdf: &str, out: &std::path::Path| {
        let args =
            ["keys", "generate", "--scheme", "bls12-381", "--out", out.to_str().unwrap(), "--kdf", kdf];
        spacecore(
            &[&args[..], &["--password-file", password.to_str().unwrap(), "--path", "m/12381/3600/0/0/0"]]
                .concat(),
        )
    };
    let run = generate("pbkdf2", &out);
    assert_eq!(run.code, Some(0), "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    let pk = lines[0].strip_prefix("pubkey: ").unwrap();
    let operator_id = lines[1].strip_prefix("operator_id: ").unwrap();
    assert_eq!((pk.len(), lines.len()), (98, 2));
    let pk_bytes = avs_protocol::encoding::from_hex(pk).unwrap();
    assert_eq!(operator_id, avs_protocol::encoding::to_hex(&avs_protocol::keccak256(&pk_bytes)));

    assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o600);
    let json = std::fs::read_to_string(&out).unwrap();
    let keystore = eip2335::Keystore::from_json(&json).unwrap();
    assert_eq!((keystore.pubkey.as_str(), keystore.path.as_str()), (&pk[2..], "m/12381/3600/0/0/0"));
    assert_eq!(keystore.crypto.kdf.function, "pbkdf2");
    let uuid = keystore.uuid.as_bytes();
    assert_eq!((uuid.len(), uuid[14], uuid[8]), (36, b'4', b'-'));

    let from = ["--keystore", out.to_str().unwrap(), "--password-file", password.to_str().unwrap()];
    assert_eq!(spacecore(&[&["keys", "pubkey", "--scheme", "bls12-381"][..], &from].concat()).line(), pk);
    let sig = spacecore(
        &[&["keys", "sign", "--scheme", "bls12-381"][..], &from, &["--message-hex", "0xc0ffee"]].concat(),
    );
    assert_eq!(keys_verify("bls12-381", pk, "0xc0ffee", sig.line(), &[]).line(), "valid");

    // An existing file is never overwritten.
    generate("pbkdf2", &out).fails_with("already exists");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), json);
    keys_generate("bls12-381", Path::new("x.json"), &password, &["--path", "m/12381/x"])
        .fails_with("expected an EIP-2334 path");
}

#[test]
fn generate_with_scrypt_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let password = password_file(dir.path(), "pw", "another passphrase");
    let out = dir.path().join("scrypt.json");
    let run = keys_generate("bls12-381", &out, &password, &[]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let keystore = eip2335::Keystore::from_json(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!((keystore.crypto.kdf.function.as_str(), keystore.path.as_str()), ("scrypt", ""));
    let pk = run.stdout.lines().next().unwrap().strip_prefix("pubkey: ").unwrap();
    assert_eq!(keystore.pubkey, pk[2..]);
}

#[test]
fn password_files_readable_by_others_are_used_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let (sk, pk, ..) = KEYS[2];
    let keystore = cheap_keystore(dir.path(), "k.json", sk, "pw");
    let password = password_file(dir.path(), "pw", "pw");
    let pubkey = || with_key_file(&["keys", "pubkey", "--scheme", "bls12-381"], &keystore, &password);
    let run = pubkey();
    assert_eq!((run.line(), run.stderr.as_str()), (pk, ""));
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = pubkey();
    assert_eq!(run.line(), pk);
    assert!(run.stderr.contains("warning: password file") && run.stderr.contains("mode 644"), "{run:?}");

    let empty = password_file(dir.path(), "empty", "");
    let out = dir.path().join("new.json");
    keys_generate("bls12-381", &out, &empty, &[]).fails_with("is empty; expected the keystore's password");
    assert!(!out.exists());
}

#[test]
fn secrets_are_never_printed() {
    let (sk, ..) = KEYS[0];
    for args in [
        &["keys", "pubkey", "--scheme", "bls12-381", "--secret-hex", sk][..],
        &["keys", "sign", "--scheme", "bls12-381", "--secret-hex", sk, "--message-hex", "0x"],
        &["keys", "pop", "--scheme", "bls12-381", "--secret-hex", sk],
        &["keys", "sign", "--scheme", "bls12-381", "--secret-hex", sk, "--message-hex", "0xz"],
    ] {
        let run = spacecore(args);
        assert!(!run.stdout.contains(&sk[2..]) && !run.stderr.contains(&sk[2..]), "{run:?}");
    }
    // An invalid scalar (the group order) is refused without echoing it.
    let order = "0x73eda753299d7d483339d80809a1d80553bda402fffe5bfeffffffff00000001";
    let run = spacecore(&["keys", "pubkey", "--scheme", "bls12-381", "--secret-hex", order]);
    run.fails_with("--secret-hex");
    assert!(!run.stderr.contains(&order[2..]));
}

#[test]
fn every_command_has_help() {
    let run = spacecore(&["keys", "--help"]);
    for command in
        ["generate", "pubkey", "sign", "verify", "aggregate", "pop", "pop-verify", "import", "show"]
    {
        assert!(run.stdout.contains(&format!("  {command} ")), "{command}: {run:?}");
        let help = spacecore(&["keys", command, "--help"]);
        assert_eq!(help.code, Some(0), "{help:?}");
        assert!(help.stdout.contains("Usage: spacecore keys"), "{help:?}");
    }
    spacecore(&["keys", "pubkey", "--scheme", "bls12-381"])
        .fails_with("required arguments were not provided");
}
