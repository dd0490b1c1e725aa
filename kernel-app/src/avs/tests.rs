use super::history::{Check, History};
use super::operator::KeyFileKind;
use super::*;
use crate::status::Status;
use avs_protocol::bls::{PublicKey, SecretKey, Signature};
use avs_protocol::intake::AuthorizedTask;
use avs_protocol::{Avs, IncredibleSquaring, NewTask};
use avs_protocol::{
    OperatorPublicKey, OperatorSecretKey, OperatorSignature, Scheme, SignedTaskResponse, TaskResponse, U256,
    bls, bn254,
};

/// Records in memory; `fail` makes every write fail.
#[derive(Debug, Default)]
pub struct MemRecords {
    pub values: alloc::collections::BTreeMap<u16, Vec<u8>>,
    pub fail: bool,
}

impl Records for MemRecords {
    fn get(&mut self, key: RecordKey) -> Result<Option<Vec<u8>>, String> {
        Ok(self.values.get(&key.number()).cloned())
    }

    fn put(&mut self, key: RecordKey, value: &[u8]) -> Result<(), String> {
        if self.fail {
            return Err("disk on fire".into());
        }
        self.values.insert(key.number(), value.to_vec());
        Ok(())
    }
}

/// incredible-squaring's task path over the node's signing path, as the AVS drives it through
/// the SDK's `sign_task`: the tests of the slashing protection and of key loading sign with it.
pub trait TaskPath {
    /// Signs the answer to the task in `body` (a `POST /task` body; its authorization is not
    /// checked here: that is the AVS's).
    fn task(
        &mut self,
        body: &[u8],
        records: Option<&mut dyn Records>,
        now: &dyn Fn() -> u64,
    ) -> Result<SignedTaskResponse, TaskError>;
}

impl TaskPath for AvsNode {
    fn task(
        &mut self,
        body: &[u8],
        records: Option<&mut dyn Records>,
        now: &dyn Fn() -> u64,
    ) -> Result<SignedTaskResponse, TaskError> {
        let request: AuthorizedTask = serde_json::from_slice(body).expect("a task");
        let task = NewTask { task_index: request.task_index, task: request.task };
        let response = IncredibleSquaring.respond(&task).expect("answerable");
        let digest = IncredibleSquaring::digest(&response);
        let (signature, _) = self.sign_digest(task.task_index, &digest, records, now)?;
        let operator_id = self.operator().expect("signed, so loaded").id;
        Ok(SignedTaskResponse { task_response: response, signature, operator_id })
    }
}

/// What the SDK makes of a [`TaskError`]: the status an AVS answers with, and the message.
pub trait Refusal {
    fn status(&self) -> u16;
    fn message(&self) -> &str;
}

impl Refusal for TaskError {
    fn status(&self) -> u16 {
        match self {
            TaskError::Refused(_) => 409,
            TaskError::NotSigning(_) => 503,
            TaskError::Storage(_) => 500,
        }
    }

    fn message(&self) -> &str {
        match self {
            TaskError::Refused(m) | TaskError::NotSigning(m) | TaskError::Storage(m) => m,
        }
    }
}

/// The BLS12-381 operator of `KeyGen([seed; 32])`.
pub fn operator(seed: u8) -> Operator {
    Operator::new(OperatorSecretKey::Bls12381(SecretKey::key_gen(&[seed; 32]).unwrap()))
}

/// The AVS authority of the tests.
pub fn task_source() -> avs_protocol::ecdsa::SecretKey {
    avs_protocol::ecdsa::SecretKey::from_bytes(&[0x5c; 32]).unwrap()
}

/// The `POST /task` body of task `index` asking for `number` squared (without authorization:
/// checking it is the AVS's, not the signing path's).
pub fn task_json(index: u32, number: u64) -> Vec<u8> {
    let task = avs_protocol::Task {
        number_to_be_squared: U256::from(number),
        task_created_block: 7,
        quorum_numbers: alloc::vec![0],
        quorum_threshold_percentage: 67,
    };
    serde_json::to_vec(&AuthorizedTask::unsigned(NewTask { task_index: index, task })).unwrap()
}

/// A node whose task source is [`task_source`]'s.
pub fn node_with_source(records: Option<&mut dyn Records>, sends: bool) -> AvsNode {
    let mut node = AvsNode::new(records, sends);
    node.set_task_source(Some(task_source().address()));
    node
}

/// A clock stopped at `ms` milliseconds since boot.
pub fn at(ms: u64) -> impl Fn() -> u64 {
    move || ms * 1_000_000
}

fn ready_node(records: &mut MemRecords, sends: bool) -> AvsNode {
    let mut node = node_with_source(Some(records), sends);
    node.set_operator(Ok(operator(1))).unwrap();
    node
}

fn public(seed: u8) -> PublicKey {
    SecretKey::key_gen(&[seed; 32]).unwrap().public_key()
}

#[test]
fn signs_a_task_after_recording_it() {
    let mut records = MemRecords::default();
    let mut node = ready_node(&mut records, false);
    let signed = node.task(&task_json(5, 12), Some(&mut records), &at(0)).unwrap();
    assert_eq!(
        signed.task_response,
        TaskResponse { reference_task_index: 5, number_squared: U256::from(144u32) }
    );
    assert_eq!(signed.operator_id, public(1).operator_id());
    signed.verify(&public(1)).unwrap();
    let stored = records.values.get(&RecordKey::SigningHistory.number()).expect("history written");
    let history = History::decode(stored).unwrap();
    assert_eq!(history.check(5, &signed.task_response.digest()), Check::Repeat);
}

#[test]
fn a_repeat_gets_the_same_signature_and_a_conflict_is_refused() {
    let mut records = MemRecords::default();
    let mut node = ready_node(&mut records, false);
    let first = node.task(&task_json(5, 12), Some(&mut records), &at(0)).unwrap();
    let again = node.task(&task_json(5, 12), Some(&mut records), &at(0)).unwrap();
    assert_eq!(first, again);
    let conflict = node.task(&task_json(5, 13), Some(&mut records), &at(0)).unwrap_err();
    assert_eq!(conflict.status(), 409);
    assert!(conflict.message().contains("slashing protection"), "{conflict:?}");
}

#[test]
fn the_history_survives_a_restart() {
    let mut records = MemRecords::default();
    let mut node = ready_node(&mut records, false);
    let first = node.task(&task_json(9, 3), Some(&mut records), &at(0)).unwrap();
    // A new boot on the same disk: same answer allowed, a different one refused.
    let mut rebooted = ready_node(&mut records, false);
    assert_eq!(rebooted.task(&task_json(9, 3), Some(&mut records), &at(0)).unwrap(), first);
    assert_eq!(rebooted.task(&task_json(9, 4), Some(&mut records), &at(0)).unwrap_err().status(), 409);
}

#[test]
fn nothing_is_signed_when_the_history_cannot_be_written() {
    let mut records = MemRecords { fail: true, ..Default::default() };
    let mut node = ready_node(&mut records, true);
    let e = node.task(&task_json(1, 2), Some(&mut records), &at(0)).unwrap_err();
    assert_eq!(e.status(), 500);
    assert!(node.history().is_empty());
    // Once the disk works again the task is signed.
    records.fail = false;
    node.task(&task_json(1, 2), Some(&mut records), &at(0)).unwrap();
}

#[test]
fn refuses_without_key_disk_or_readable_history() {
    let mut records = MemRecords::default();
    let mut loading = node_with_source(Some(&mut records), false);
    assert_eq!(loading.task(&task_json(1, 2), Some(&mut records), &at(0)).unwrap_err().status(), 503);
    assert!(loading.set_operator(Err("wrong password".into())).is_err());
    let e = loading.task(&task_json(1, 2), Some(&mut records), &at(0)).unwrap_err();
    assert_eq!((e.status(), e.message()), (503, "not signing: wrong password"));

    let mut diskless = node_with_source(None, false);
    assert!(diskless.set_operator(Ok(operator(1))).is_err());
    assert_eq!(diskless.task(&task_json(1, 2), None, &at(0)).unwrap_err().status(), 503);

    records.values.insert(RecordKey::SigningHistory.number(), vec![0xff; 3]);
    let mut corrupt = node_with_source(Some(&mut records), false);
    let why = corrupt.set_operator(Ok(operator(1))).unwrap_err();
    assert!(why.contains("corrupt"), "{why}");
    assert_eq!(corrupt.task(&task_json(1, 2), Some(&mut records), &at(0)).unwrap_err().status(), 503);
}

#[test]
fn a_key_without_a_history_signs_nothing_until_one_is_given() {
    let mut records = MemRecords::default();
    records.values.insert(RecordKey::Keystore.number(), b"{}".to_vec());
    let mut wiped = node_with_source(Some(&mut records), false);
    let why = wiped.set_operator(Ok(operator(1))).unwrap_err();
    assert!(why.contains("spacecore history import"), "{why}");
    let e = wiped.task(&task_json(1, 2), Some(&mut records), &at(0)).unwrap_err();
    assert_eq!(e.status(), 503, "{}", e.message());
    assert!(!records.values.contains_key(&RecordKey::SigningHistory.number()), "nothing written");

    // `spacecore history new` writes an empty history: the next boot signs.
    records.values.insert(RecordKey::SigningHistory.number(), History::new().encode());
    let mut restarted = node_with_source(Some(&mut records), false);
    restarted.set_operator(Ok(operator(1))).unwrap();
    restarted.task(&task_json(1, 2), Some(&mut records), &at(0)).unwrap();
}

/// What the aggregator's JSON-RPC server answers a `GET /`.

/// Takes the first call, the probe, and settles it as answered at `now_ms`.

/// The next JSON-RPC call due at `now_ms`: its id and body; a probe met on the way fails.

#[test]
fn signing_is_timed_around_the_sign_call() {
    let mut records = MemRecords::default();
    let mut node = ready_node(&mut records, true);
    // A clock that moves 1.5 ms at each reading.
    let t = core::cell::Cell::new(40_000_000u64);
    let clock = || {
        let now = t.get();
        t.set(now + 1_500_000);
        now
    };
    node.task(&task_json(1, 2), Some(&mut records), &clock).unwrap();
    assert_eq!((node.stats.signing.count(), node.stats.signing.sum_ns()), (1, 1_500_000));
    // Refused tasks are not timed.
    node.task(&task_json(1, 3), Some(&mut records), &clock).unwrap_err();
    assert_eq!(node.stats.signing.count(), 1);
}

#[test]
fn the_signer_status_follows_the_key() {
    let mut records = MemRecords::default();
    let mut node = node_with_source(Some(&mut records), false);
    assert_eq!(node.signer_status(), Status::Initializing);
    node.set_operator(Ok(operator(1))).unwrap();
    assert_eq!(node.signer_status(), Status::Up);
    let mut wrong = node_with_source(Some(&mut records), false);
    wrong.set_operator(Err("wrong password".into())).unwrap_err();
    assert_eq!(wrong.signer_status(), Status::Down);
    assert_eq!(node_with_source(None, false).signer_status(), Status::Down, "no disk, no history");
    records.values.insert(RecordKey::SigningHistory.number(), vec![0xff; 3]);
    assert_eq!(node_with_source(Some(&mut records), false).signer_status(), Status::Down, "corrupt history");
}

/// An EIP-2335 keystore of `sk` under `password` (cheap PBKDF2).
fn eip2335_json(sk: &SecretKey, password: &str) -> String {
    let pubkey_hex = avs_protocol::encoding::to_hex(&sk.public_key().to_bytes());
    eip2335::Keystore::encrypt(
        &sk.to_bytes(),
        password,
        &pubkey_hex[2..],
        "",
        eip2335::Kdf::Pbkdf2 { c: 16 },
        [1; 32],
        [2; 16],
        "2d6b5d2a-1f5a-4b4e-9c49-5a9f1c1f0c3e",
    )
    .unwrap()
    .to_json()
}

/// eigensdk's BN254 key file of `secret` under `password`, claiming `g1` as its key.
fn bn254_json(secret: &[u8; 32], password: &[u8], g1: &[u8; 64]) -> String {
    eip2335::web3::BlsKeyFile::encrypt(secret, password, g1, eip2335::Kdf::Pbkdf2 { c: 16 }, [3; 32], [4; 16])
        .unwrap()
        .to_json()
}

#[test]
fn eip2335_keystores_decrypt_to_a_bls12_381_operator() {
    let sk = SecretKey::key_gen(&[4; 32]).unwrap();
    let json = eip2335_json(&sk, "correct horse");
    let op = Operator::from_key_file(Scheme::Bls12381, json.as_bytes(), b"correct horse").unwrap();
    assert_eq!(op.scheme(), Scheme::Bls12381);
    assert_eq!(op.public_key(), &OperatorPublicKey::Bls12381(sk.public_key()));
    assert_eq!(op.id, sk.public_key().operator_id());
    assert_eq!(op.describe_public_key(), avs_protocol::encoding::to_hex(&sk.public_key().to_bytes()));
    let digest = [9; 32];
    let OperatorSignature::Bls12381(bytes) = op.sign(&digest) else { panic!("a BLS12-381 signature") };
    bls::verify(&sk.public_key(), &digest, &Signature::from_bytes(&bytes).unwrap()).unwrap();
    assert!(format!("{op:?}").len() < 140, "Debug shows the scheme and id only");

    let wrong = Operator::from_key_file(Scheme::Bls12381, json.as_bytes(), b"wrong").unwrap_err();
    assert!(wrong.contains("cannot decrypt"), "{wrong}");
    let empty = Operator::from_key_file(Scheme::Bls12381, b"{}", b"x").unwrap_err();
    assert!(empty.starts_with("unusable key file (expected an EIP-2335 keystore)"), "{empty}");
    assert!(Operator::from_key_file(Scheme::Bls12381, b"\xff", b"x").unwrap_err().contains("not UTF-8"));
    let bad_password = Operator::from_key_file(Scheme::Bls12381, json.as_bytes(), b"\xff").unwrap_err();
    assert!(bad_password.contains("not UTF-8"), "{bad_password}");
}

#[test]
fn bn254_key_files_decrypt_to_an_eigenlayer_operator() {
    let secret = [5u8; 32];
    let key = bn254::SecretKey::from_bytes(&secret).unwrap();
    let public = key.public_key();
    let g1 = public.g1().to_bytes();
    let json = bn254_json(&secret, b"p\xc3\xa4ss", &g1);
    let op = Operator::from_key_file(Scheme::Bn254, json.as_bytes(), "päss".as_bytes()).unwrap();
    assert_eq!(op.scheme(), Scheme::Bn254);
    assert_eq!(op.public_key(), &OperatorPublicKey::Bn254(public));
    // EigenLayer's operator id: keccak256 of the G1 key's X ‖ Y.
    assert_eq!(op.id, avs_protocol::keccak256(&g1));
    assert_eq!(op.id, public.operator_id());
    let shown = op.describe_public_key();
    assert_eq!(
        shown,
        format!(
            "G1 {} G2 {}",
            avs_protocol::encoding::to_hex(&g1),
            avs_protocol::encoding::to_hex(&public.g2().to_bytes())
        )
    );
    let digest = [9; 32];
    let signature = op.sign(&digest);
    let OperatorSignature::Bn254(bytes) = signature else { panic!("a BN254 signature") };
    bn254::verify(&public.g2(), &digest, &bn254::Signature::from_bytes(&bytes).unwrap()).unwrap();
    assert_eq!(op.sign(&digest), signature, "deterministic");

    // The password is raw bytes (no normalisation) for Web3 files.
    let wrong = Operator::from_key_file(Scheme::Bn254, json.as_bytes(), b"pass").unwrap_err();
    assert!(wrong.starts_with("cannot decrypt the key file: wrong password"), "{wrong}");
    // A pubKey that is not the secret's key is refused, even with the right password.
    let other = bn254::SecretKey::from_bytes(&[6; 32]).unwrap().public_key().g1().to_bytes();
    let lying = bn254_json(&secret, b"pw", &other);
    let why = Operator::from_key_file(Scheme::Bn254, lying.as_bytes(), b"pw").unwrap_err();
    assert!(why.contains("pubKey is not the G1 key of its secret"), "{why}");
    // A secret that is not a scalar of BN254 (here: above r).
    let huge = bn254_json(&[0xff; 32], b"pw", &g1);
    let why = Operator::from_key_file(Scheme::Bn254, huge.as_bytes(), b"pw").unwrap_err();
    assert!(why.starts_with("the key file's secret: "), "{why}");
    let empty = Operator::from_key_file(Scheme::Bn254, b"{}", b"x").unwrap_err();
    assert!(empty.starts_with("unusable key file (expected an eigensdk BN254 key file)"), "{empty}");
}

#[test]
fn a_key_file_of_the_other_scheme_is_refused_with_the_reason() {
    let bls = eip2335_json(&SecretKey::key_gen(&[4; 32]).unwrap(), "pw");
    let g1 = bn254::SecretKey::from_bytes(&[5; 32]).unwrap().public_key().g1().to_bytes();
    let bn = bn254_json(&[5; 32], b"pw", &g1);
    assert_eq!(KeyFileKind::of(&bls), Some(KeyFileKind::Bls12381));
    assert_eq!(KeyFileKind::of(&bn), Some(KeyFileKind::Bn254));
    assert_eq!(KeyFileKind::of("{}"), None);

    let why = Operator::from_key_file(Scheme::Bn254, bls.as_bytes(), b"pw").unwrap_err();
    assert_eq!(
        why,
        "the key file on the disk is an EIP-2335 keystore (scheme bls12-381), but spec.avs.scheme is \
         bn254, which needs an eigensdk BN254 key file; import an eigensdk BN254 key file or set \
         scheme = \"bls12-381\""
    );
    let why = Operator::from_key_file(Scheme::Bls12381, bn.as_bytes(), b"pw").unwrap_err();
    assert!(
        why.starts_with(
            "the key file on the disk is an eigensdk BN254 key file (scheme bn254), but spec.avs.scheme \
             is bls12-381"
        ),
        "{why}"
    );
    assert!(why.ends_with("or set scheme = \"bn254\""), "{why}");

    let ecdsa = eip2335::web3::EcdsaKeystore::encrypt(
        &[7; 32],
        b"pw",
        None,
        eip2335::Kdf::Pbkdf2 { c: 16 },
        [1; 32],
        [2; 16],
        "2d6b5d2a-1f5a-4b4e-9c49-5a9f1c1f0c3e".into(),
    )
    .unwrap()
    .to_json();
    assert_eq!(KeyFileKind::of(&ecdsa), Some(KeyFileKind::Ecdsa));
    for scheme in Scheme::ALL {
        let why = Operator::from_key_file(scheme, ecdsa.as_bytes(), b"pw").unwrap_err();
        assert!(why.contains("is an ECDSA (Web3 v3) keystore, not a BLS key"), "{why}");
    }
}

#[test]
fn a_bn254_node_signs_through_the_same_path_with_slashing_protection() {
    let mut records = MemRecords::default();
    let mut node = node_with_source(Some(&mut records), false);
    let key = bn254::SecretKey::from_bytes(&[8; 32]).unwrap();
    let public = key.public_key();
    node.set_operator(Ok(Operator::new(OperatorSecretKey::Bn254(key)))).unwrap();
    let signed = node.task(&task_json(3, 5), Some(&mut records), &at(0)).unwrap();
    assert_eq!(signed.operator_id, avs_protocol::keccak256(&public.g1().to_bytes()));
    signed.verify(public).unwrap();
    assert!(records.values.contains_key(&RecordKey::SigningHistory.number()), "history written first");
    assert_eq!(node.task(&task_json(3, 5), Some(&mut records), &at(0)).unwrap(), signed);
    assert_eq!(node.task(&task_json(3, 6), Some(&mut records), &at(0)).unwrap_err().status(), 409);
    assert_eq!(node.stats.signing.count(), 2, "each signature is timed, BN254 too");
}

/// A Web3 v3 keystore of the ECDSA secret `secret` under `password`, naming `address`.
fn ecdsa_json(secret: &[u8; 32], password: &[u8], address: Option<[u8; 20]>) -> String {
    eip2335::web3::EcdsaKeystore::encrypt(
        secret,
        password,
        address,
        eip2335::Kdf::Pbkdf2 { c: 16 },
        [5; 32],
        [6; 16],
        "0e1c5b4e-8a55-4f7e-9f0e-0c1d2e3f4a5b".into(),
    )
    .unwrap()
    .to_json()
}

#[test]
fn the_ecdsa_keystore_decrypts_to_its_address_and_signs_eip191_and_eip712() {
    use avs_protocol::ecdsa;
    let secret = [0x42; 32];
    let address = ecdsa::SecretKey::from_bytes(&secret).unwrap().address();
    let json = ecdsa_json(&secret, b"chain pw", Some(address));
    let key = ChainKey::from_keystore(json.as_bytes(), b"chain pw").unwrap();
    assert_eq!(key.address(), address);
    assert!(!format!("{key:?}").contains("42424242"), "Debug shows the address only");
    let signature = key.sign_eip191(b"hello");
    assert_eq!(ecdsa::recover_address(&ecdsa::eip191_hash(b"hello"), &signature), Ok(address));
    let (domain, data) = ([1; 32], [2; 32]);
    let typed = key.sign_eip712(&domain, &data);
    assert_eq!(ecdsa::recover_address(&ecdsa::eip712_hash(&domain, &data), &typed), Ok(address));
    assert_ne!(typed, signature);

    // Without an address in the file, the derived one is used.
    let bare = ecdsa_json(&secret, b"chain pw", None);
    assert_eq!(ChainKey::from_keystore(bare.as_bytes(), b"chain pw").unwrap().address(), address);
    let wrong = ChainKey::from_keystore(json.as_bytes(), b"other").unwrap_err();
    assert!(wrong.starts_with("cannot decrypt the ECDSA keystore: wrong password"), "{wrong}");
    // A file naming another address than its secret's is refused.
    let lying = ecdsa_json(&secret, b"chain pw", Some([0x11; 20]));
    let why = ChainKey::from_keystore(lying.as_bytes(), b"chain pw").unwrap_err();
    assert!(why.contains("is not the address of its secret"), "{why}");
    let bls = eip2335_json(&SecretKey::key_gen(&[4; 32]).unwrap(), "pw");
    assert!(
        ChainKey::from_keystore(bls.as_bytes(), b"pw").unwrap_err().starts_with("unusable ECDSA keystore")
    );
    assert!(ChainKey::from_keystore(b"\xff", b"pw").unwrap_err().contains("not UTF-8"));
}

#[test]
fn the_identity_binds_the_operator_id_and_scheme_to_the_ecdsa_address() {
    use avs_protocol::ecdsa;
    let mut records = MemRecords::default();
    let mut node = node_with_source(Some(&mut records), true);
    assert_eq!(node.identity_json().unwrap_err(), (503, "the operator key is still loading".into()));
    assert!(node.chain_key().is_none());

    let bn = bn254::SecretKey::from_bytes(&[8; 32]).unwrap();
    let public = bn.public_key();
    node.set_operator(Ok(Operator::new(OperatorSecretKey::Bn254(bn)))).unwrap();
    let without = node.identity_json().unwrap();
    assert_eq!(without["ecdsa_address"], serde_json::Value::Null);
    assert_eq!(without["statement"], serde_json::Value::Null);
    assert_eq!(without["ecdsa_error"], "the ECDSA key is still loading");
    node.set_chain_key(Err("no ECDSA keystore on the disk".into())).unwrap_err();
    assert_eq!(node.identity_json().unwrap()["ecdsa_error"], "no ECDSA keystore on the disk");

    let secret = [0x42; 32];
    let address = ecdsa::SecretKey::from_bytes(&secret).unwrap().address();
    let key = ChainKey::from_keystore(ecdsa_json(&secret, b"pw", None).as_bytes(), b"pw").unwrap();
    assert_eq!(node.set_chain_key(Ok(key)), Ok(address));
    assert_eq!(node.chain_key().map(ChainKey::address), Some(address));
    let json = node.identity_json().unwrap();
    let hex = avs_protocol::encoding::to_hex;
    let id = hex(&avs_protocol::keccak256(&public.g1().to_bytes()));
    assert_eq!(json["scheme"], "bn254");
    assert_eq!(json["operator_id"], id.as_str());
    assert_eq!(json["g1"], hex(&public.g1().to_bytes()).as_str());
    assert_eq!(json["g2"], hex(&public.g2().to_bytes()).as_str());
    assert_eq!(json["pubkey"], serde_json::Value::Null, "BN254 shows G1 and G2");
    assert_eq!(json["ecdsa_address"], hex(&address).as_str());
    assert_eq!(json["ecdsa_error"], serde_json::Value::Null);
    let statement = json["statement"].as_str().unwrap();
    assert_eq!(
        statement,
        format!(
            "Spacecore operator identity\nscheme: bn254\noperator id: {id}\nECDSA address: {}\n",
            hex(&address)
        )
    );
    let signature: [u8; 65] =
        avs_protocol::encoding::from_hex(json["signature"].as_str().unwrap()).unwrap().try_into().unwrap();
    assert_eq!(ecdsa::recover_address(&ecdsa::eip191_hash(statement.as_bytes()), &signature), Ok(address));
    assert_eq!(node.identity_json().unwrap(), json, "the same statement and signature every time");

    // A BLS12-381 operator shows its compressed key; the key loaded before the operator is fine.
    let mut bls_node = node_with_source(Some(&mut records), true);
    let key = ChainKey::from_keystore(ecdsa_json(&secret, b"pw", None).as_bytes(), b"pw").unwrap();
    bls_node.set_chain_key(Ok(key)).unwrap();
    bls_node.set_operator(Ok(operator(1))).unwrap();
    let json = bls_node.identity_json().unwrap();
    assert_eq!(json["scheme"], "bls12-381");
    assert_eq!(json["pubkey"], hex(&public_of(1)).as_str());
    assert_eq!(json["g1"], serde_json::Value::Null);
    assert!(json["statement"].as_str().unwrap().contains("\nscheme: bls12-381\n"));

    let mut broken = node_with_source(Some(&mut records), true);
    broken.set_operator(Err("wrong password".into())).unwrap_err();
    assert_eq!(broken.identity_json().unwrap_err(), (503, "not signing: wrong password".into()));
}

fn public_of(seed: u8) -> [u8; 48] {
    public(seed).to_bytes()
}
