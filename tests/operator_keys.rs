//! The operator's keys in a real spacecore: a BN254 node (eigensdk key file, `spec.avs.scheme`
//! default) signs tasks EigenLayer's way, a BLS12-381 node still works, a key file of the other
//! scheme leaves the node not signing with the reason, and the ECDSA keystore's identity
//! statement recovers to the keystore's address; a node whose signing history was wiped signs
//! nothing until the operator gives it back (`spacecore history import`). Key files are made
//! and put on the disk with the operator's CLI (`spacecore keys generate` / `keys import`), with
//! PBKDF2 so the guest needs little memory.

use avs_protocol::encoding::{from_hex, to_hex};
use avs_protocol::{SignedTaskResponse, TaskResponse, U256, bls, bn254, ecdsa, keccak256};
use serde_json::{Value, json};
use spacecore_tests::cluster::{authorize, task_source_address};
use spacecore_tests::{Running, Specs, connect, http, http_json, kvm_available, log_lines, published};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Limit of every wait: PBKDF2 (c = 2^18) takes well under a second in the guest.
const LIMIT: Duration = Duration::from_secs(30);
const PASSWORD: &str = "correct horse battery staple";
const ECDSA_PASSWORD: &str = "a different one for the chain key";

/// Runs the CLI with `args`; panics with its output if it fails. Returns its stdout.
fn cli(args: &[&str]) -> String {
    let out = Command::new(spacecore_tests::cli()).args(args).output().expect("run the spacecore CLI");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "spacecore {args:?}: {text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// An operator's files in `dir`: password files, key files, and a disk image holding them.
struct Operator {
    key_file: PathBuf,
    password_file: PathBuf,
    ecdsa_keystore: Option<PathBuf>,
    ecdsa_password_file: PathBuf,
    disk: PathBuf,
}

impl Operator {
    /// Generates a key file of `scheme` (`bn254`, `bls12-381`), and with `ecdsa` an ECDSA
    /// keystore, and imports them into a new disk image of 64 MiB, as an operator does.
    fn create(dir: &Path, scheme: &str, ecdsa: bool) -> Operator {
        let write_secret = |name: &str, text: &str| {
            let file = dir.join(name);
            std::fs::write(&file, text).unwrap();
            std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
            file
        };
        let password_file = write_secret("operator.password", &format!("{PASSWORD}\n"));
        let ecdsa_password_file = write_secret("operator.ecdsa.password", ECDSA_PASSWORD);
        let key_file = dir.join("operator.bls.key.json");
        let (key, pw) = (path(&key_file), path(&password_file));
        cli(&[
            "keys",
            "generate",
            "--scheme",
            scheme,
            "--kdf",
            "pbkdf2",
            "--out",
            key,
            "--password-file",
            pw,
        ]);
        let disk = dir.join("disk.img");
        std::fs::File::create(&disk).unwrap().set_len(64 << 20).unwrap();
        cli(&["keys", "import", "--keystore", key, "--disk", path(&disk), "--password-file", pw]);
        let ecdsa_keystore = ecdsa.then(|| {
            let file = dir.join("operator.ecdsa.key.json");
            let (out, pw) = (path(&file), path(&ecdsa_password_file));
            cli(&[
                "keys",
                "generate",
                "--scheme",
                "ecdsa",
                "--kdf",
                "pbkdf2",
                "--out",
                out,
                "--password-file",
                pw,
            ]);
            cli(&["keys", "import", "--ecdsa-keystore", out, "--disk", path(&disk), "--password-file", pw]);
            file
        });
        Operator { key_file, password_file, ecdsa_keystore, ecdsa_password_file, disk }
    }

    /// The BN254 public key the key file records: its `pubKey` (G1, decimal coordinates), with
    /// the G2 key of the same secret (which the file does not hold) from the CLI.
    fn bn254_key(&self) -> bn254::PublicKey {
        let file: Value = serde_json::from_str(&std::fs::read_to_string(&self.key_file).unwrap()).unwrap();
        let text = file["pubKey"].as_str().expect("pubKey");
        let inner = text.strip_prefix("E([").and_then(|t| t.strip_suffix("])")).expect("E([X,Y])");
        let (x, y) = inner.split_once(',').expect("X,Y");
        let mut g1 = [0u8; 64];
        g1[..32].copy_from_slice(&U256::from_str_radix(x, 10).unwrap().to_be_bytes::<32>());
        g1[32..].copy_from_slice(&U256::from_str_radix(y, 10).unwrap().to_be_bytes::<32>());
        let g1 = bn254::G1Point::from_bytes(&g1).expect("the file's pubKey is a point of G1");
        let shown = self.pubkey_json();
        let part = |v: &Value| from_hex(v.as_str().unwrap()).unwrap();
        let g2: Vec<u8> =
            [&shown["g2"]["x"][0], &shown["g2"]["x"][1], &shown["g2"]["y"][0], &shown["g2"]["y"][1]]
                .into_iter()
                .flat_map(part)
                .collect();
        let g2 = bn254::G2Point::from_bytes(&g2.try_into().unwrap()).unwrap();
        bn254::PublicKey::new(g1, g2).expect("the G2 key has the file's secret")
    }

    /// `keys pubkey --json` of the key file.
    fn pubkey_json(&self) -> Value {
        let out = cli(&[
            "keys",
            "pubkey",
            "--keystore",
            path(&self.key_file),
            "--password-file",
            path(&self.password_file),
            "--json",
        ]);
        serde_json::from_str(out.trim()).unwrap()
    }

    /// The ECDSA keystore's `address`.
    fn ecdsa_address(&self) -> [u8; 20] {
        let file = self.ecdsa_keystore.as_ref().expect("an ECDSA keystore");
        let json: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        from_hex(&format!("0x{}", json["address"].as_str().unwrap())).unwrap().try_into().unwrap()
    }

    /// Writes and starts the spec of node `name`; `avs` holds extra `[spec.avs]` lines. Returns
    /// the launcher and the node's published HTTP address once the key loading is over.
    fn start(&self, specs: &Specs, name: &str, avs: &str) -> (Running, std::net::SocketAddr) {
        // No aggregator listens on port 9: the node's calls fail, which must not matter here.
        let tables = format!(
            "[spec.storage]\npath = \"{}\"\n[spec.networking.inbound_ports]\nHTTP = 8080\n\
             [spec.networking.publish]\nHTTP = 0\n[spec.avs]\naggregator = \"127.0.0.1:9\"\n\
             keystore_password_file = \"{}\"\ntask_signer = \"{}\"\n{avs}\n",
            self.disk.display(),
            self.password_file.display(),
            task_source_address()
        );
        let spec =
            specs.spacecore(name, "cpu = 1\nmemory = \"128Mi\"\nstorage = \"64Mi\"", &tables, "{image}");
        let mut running = specs.start(&[path(&spec)]);
        // The guest's `avs: operator … ready` or `avs: not signing: …` line says how the key
        // loading ended.
        let ended = running.next_where(LIMIT, |l| {
            l.guest("avs: operator ").is_some() || l.guest("avs: not signing").is_some()
        });
        assert!(ended.is_some(), "the key loading never ended: {:#?}", running.seen);
        let addr = published(&running.seen, "HTTP").expect("published HTTP port");
        (running, addr)
    }
}

fn task(index: u32, number: u64) -> Value {
    spacecore_tests::cluster::pushed_task(index, number)
}

/// POSTs the task `body`, signed by the task source.
fn post_task(addr: std::net::SocketAddr, body: &Value) -> (u16, String) {
    let signed = authorize(body.to_string().as_bytes());
    let (code, body) = http_json(&mut connect(addr), "POST", "/task", &signed);
    (code, String::from_utf8(body).unwrap())
}

fn get_json(addr: std::net::SocketAddr, target: &str) -> (u16, Value) {
    let (code, body) = http(&mut connect(addr), "GET", target, b"");
    (code, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[test]
fn a_bn254_node_signs_as_eigenlayer_checks_and_states_its_ecdsa_identity() {
    if !kvm_available("a_bn254_node_signs_as_eigenlayer_checks_and_states_its_ecdsa_identity") {
        return;
    }
    let specs = Specs::new();
    let operator = Operator::create(specs.dir(), "bn254", true);
    let key = operator.bn254_key();
    let ecdsa_line = format!(
        "scheme = \"bn254\"\necdsa_keystore_password_file = \"{}\"",
        operator.ecdsa_password_file.display()
    );
    let (running, addr) = operator.start(&specs, "bn254-node", &ecdsa_line);
    // EigenLayer's operator id: keccak256(X ‖ Y) of the G1 key, as the file records it.
    let id = to_hex(&keccak256(&key.g1().to_bytes()));
    assert_eq!(id, operator.pubkey_json()["operator_id"], "the CLI agrees");
    let (code, status) = get_json(addr, "/");
    assert_eq!((code, &status["operator_id"]), (200, &json!(id)), "{status}");

    let (code, body) = post_task(addr, &task(4, 7));
    assert_eq!(code, 200, "{body}");
    let signed: SignedTaskResponse = serde_json::from_str(&body).unwrap();
    assert_eq!(
        signed.task_response,
        TaskResponse { reference_task_index: 4, number_squared: U256::from(49u8) }
    );
    assert_eq!(to_hex(&signed.operator_id), id);
    let avs_protocol::OperatorSignature::Bn254(bytes) = signed.signature else {
        panic!("a BN254 node answered with {:?}", signed.signature)
    };
    let digest = signed.task_response.digest();
    bn254::verify(&key.g2(), &digest, &bn254::Signature::from_bytes(&bytes).unwrap())
        .expect("the signature verifies against the key file's key");
    signed.verify(key).expect("and as the aggregator checks it");

    // The same task again: the same signature. Another answer to it: slashing protection.
    let (code, again) = post_task(addr, &task(4, 7));
    assert_eq!((code, serde_json::from_str::<SignedTaskResponse>(&again).unwrap()), (200, signed));
    let (code, conflict) = post_task(addr, &task(4, 8));
    assert_eq!(code, 409, "{conflict}");

    // The identity: BN254 keys, the ECDSA address, and the statement signed by it.
    let (code, identity) = get_json(addr, "/spacecore/identity");
    assert_eq!(code, 200, "{identity}");
    assert_eq!(identity["scheme"], "bn254");
    assert_eq!(identity["operator_id"], id.as_str());
    assert_eq!(identity["g1"], to_hex(&key.g1().to_bytes()).as_str());
    assert_eq!(identity["g2"], to_hex(&key.g2().to_bytes()).as_str());
    let address = operator.ecdsa_address();
    assert_eq!(identity["ecdsa_address"], to_hex(&address).as_str(), "{identity}");
    let statement = identity["statement"].as_str().expect("a statement");
    assert!(statement.contains(&format!("\noperator id: {id}\n")), "{statement}");
    assert!(statement.contains("\nscheme: bn254\n"), "{statement}");
    let signature: [u8; 65] = from_hex(identity["signature"].as_str().unwrap()).unwrap().try_into().unwrap();
    assert_eq!(
        ecdsa::recover_address(&ecdsa::eip191_hash(statement.as_bytes()), &signature),
        Ok(address),
        "the statement is signed by the ECDSA keystore's key"
    );
    // Nothing signs what a caller chooses: no such route.
    let (code, _) = http(&mut connect(addr), "POST", "/spacecore/identity", b"0xdeadbeef");
    assert_eq!(code, 405);
    let (_, text) = running.finish(Duration::from_secs(5));
    let ready = format!("avs: ECDSA address {} ready", to_hex(&address));
    assert!(log_lines(&text).iter().any(|l| l.guest(&ready).is_some()), "{text}");
    assert!(!text.contains(PASSWORD) && !text.contains(ECDSA_PASSWORD), "no password is printed");
}

#[test]
fn a_bls12_381_node_still_signs_and_a_key_file_of_the_other_scheme_is_refused() {
    if !kvm_available("a_bls12_381_node_still_signs_and_a_key_file_of_the_other_scheme_is_refused") {
        return;
    }
    let specs = Specs::new();
    let dir = specs.dir().join("op");
    std::fs::create_dir(&dir).unwrap();
    let operator = Operator::create(&dir, "bls12-381", false);
    let pubkey = operator.pubkey_json();
    let key = bls::PublicKey::from_bytes(
        &from_hex(pubkey["pubkey"].as_str().unwrap()).unwrap().try_into().unwrap(),
    )
    .unwrap();
    {
        let (_running, addr) = operator.start(&specs, "bls-node", "scheme = \"bls12-381\"");
        let (code, body) = post_task(addr, &task(2, 5));
        assert_eq!(code, 200, "{body}");
        let signed: SignedTaskResponse = serde_json::from_str(&body).unwrap();
        assert_eq!(to_hex(&signed.operator_id), pubkey["operator_id"].as_str().unwrap());
        signed.verify(key).expect("a BLS12-381 signature of the keystore's key");
        let (code, identity) = get_json(addr, "/spacecore/identity");
        assert_eq!((code, &identity["pubkey"]), (200, &pubkey["pubkey"]), "{identity}");
        assert!(
            identity["ecdsa_error"].as_str().unwrap().contains("no ECDSA keystore on the disk"),
            "{identity}"
        );
    }

    // The same EIP-2335 keystore on a node of the default scheme, BN254: not signing, and why.
    let (running, addr) = operator.start(&specs, "wrong-scheme", "");
    let reason =
        "the key file on the disk is an EIP-2335 keystore (scheme bls12-381), but spec.avs.scheme is bn254";
    let line = running.log().iter().find_map(|l| l.guest("avs: not signing: ").map(str::to_owned));
    assert!(line.is_some_and(|why| why.contains(reason)), "{:#?}", running.seen);
    let (code, body) = post_task(addr, &task(2, 5));
    assert_eq!(code, 503, "{body}");
    assert!(body.contains(reason), "{body}");
    let (code, _) = http(&mut connect(addr), "GET", "/eigen/node/services/signer/health", b"");
    assert_eq!(code, 503);
    let (code, _) = http(&mut connect(addr), "GET", "/eigen/node/health", b"");
    assert_eq!(code, 503, "an operator node that will not sign is unhealthy");
    let (code, identity) = get_json(addr, "/spacecore/identity");
    assert_eq!(code, 503);
    assert!(identity["error"].as_str().unwrap().contains(reason), "{identity}");
}

/// Zeroes both slots of the disk's signing-history record, as a wiped or swapped-in disk has it.
fn wipe_history(disk: &Path) {
    use spacecore_store::{RecordKey, SECTOR, SLOT_SECTORS};
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().write(true).open(disk).unwrap();
    let start = RecordKey::SigningHistory.first_sector() * SECTOR as u64;
    file.write_all_at(&vec![0u8; 2 * SLOT_SECTORS as usize * SECTOR], start).unwrap();
}

#[test]
fn a_wiped_signing_history_is_refused_until_the_operator_gives_it_back() {
    if !kvm_available("a_wiped_signing_history_is_refused_until_the_operator_gives_it_back") {
        return;
    }
    let specs = Specs::new();
    let operator = Operator::create(specs.dir(), "bn254", false);
    let signed = {
        let (_running, addr) = operator.start(&specs, "signer", "");
        let (code, body) = post_task(addr, &task(3, 5));
        assert_eq!(code, 200, "{body}");
        body
    };
    let export = specs.dir().join("history.json");
    std::fs::write(&export, cli(&["history", "export", "--disk", path(&operator.disk)])).unwrap();

    wipe_history(&operator.disk);
    {
        let (running, addr) = operator.start(&specs, "wiped", "");
        let line = running.log().iter().find_map(|l| l.guest("avs: not signing: ").map(str::to_owned));
        assert!(line.is_some_and(|why| why.contains("no signing history")), "{:#?}", running.seen);
        for (index, number) in [(3, 6), (4, 7)] {
            let (code, body) = post_task(addr, &task(index, number));
            assert_eq!(code, 503, "task {index} on a wiped history: {body}");
        }
        let (code, _) = http(&mut connect(addr), "GET", "/eigen/node/health", b"");
        assert_eq!(code, 503, "a node that will not sign is unhealthy");
    }
    // The wiped node wrote nothing: the disk still has no history.
    cli(&["history", "new", "--disk", path(&operator.disk)]);
    wipe_history(&operator.disk);

    cli(&["history", "import", "--disk", path(&operator.disk), path(&export)]);
    let (_running, addr) = operator.start(&specs, "restored", "");
    let (code, body) = post_task(addr, &task(3, 5));
    assert_eq!((code, &body), (200, &signed), "the same task: the same signature");
    let (code, body) = post_task(addr, &task(3, 6));
    assert_eq!(code, 409, "another answer to a task signed before the wipe: {body}");
}
