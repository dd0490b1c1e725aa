use super::*;
use avs_protocol::bls::{PublicKey, Signature};
use avs_protocol::{U256, bls};

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

/// The operator of `KeyGen([seed; 32])`.
pub fn operator(seed: u8) -> Operator {
    Operator::new(SecretKey::key_gen(&[seed; 32]).unwrap())
}

/// A task as the aggregator's generator sends it.
pub fn task_json(index: u32, number: u64) -> Vec<u8> {
    format!(
        "{{\"task_index\":{index},\"task\":{{\"number_to_be_squared\":\"{number}\",\"task_created_block\":7,\
         \"quorum_numbers\":\"0x00\",\"quorum_threshold_percentage\":67}}}}"
    )
    .into_bytes()
}

/// A clock stopped at `ms` milliseconds since boot.
pub fn at(ms: u64) -> impl Fn() -> u64 {
    move || ms * 1_000_000
}

fn ready_node(records: &mut MemRecords, sends: bool) -> AvsNode {
    let mut node = AvsNode::new(Some(records), sends);
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
    assert_eq!((node.stats.received, node.stats.signed), (1, 1));
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
    assert_eq!(node.stats.rejected, [0, 0, 1, 0, 0]);
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
    assert_eq!(node.queued(), 0, "nothing queued");
    assert_eq!(node.stats.rejected[Cause::Storage as usize], 1);
    // Once the disk works again the task is signed.
    records.fail = false;
    node.task(&task_json(1, 2), Some(&mut records), &at(0)).unwrap();
}

#[test]
fn refuses_without_key_disk_or_readable_history() {
    let mut records = MemRecords::default();
    let mut loading = AvsNode::new(Some(&mut records), false);
    assert_eq!(loading.task(&task_json(1, 2), Some(&mut records), &at(0)).unwrap_err().status(), 503);
    assert!(loading.set_operator(Err("wrong password".into())).is_err());
    let e = loading.task(&task_json(1, 2), Some(&mut records), &at(0)).unwrap_err();
    assert_eq!((e.status(), e.message()), (503, "not signing: wrong password"));

    let mut diskless = AvsNode::new(None, false);
    assert!(diskless.set_operator(Ok(operator(1))).is_err());
    assert_eq!(diskless.task(&task_json(1, 2), None, &at(0)).unwrap_err().status(), 503);

    records.values.insert(RecordKey::SigningHistory.number(), vec![0xff; 3]);
    let mut corrupt = AvsNode::new(Some(&mut records), false);
    let why = corrupt.set_operator(Ok(operator(1))).unwrap_err();
    assert!(why.contains("corrupt"), "{why}");
    assert_eq!(corrupt.task(&task_json(1, 2), Some(&mut records), &at(0)).unwrap_err().status(), 503);
}

#[test]
fn malformed_and_unanswerable_tasks() {
    let mut records = MemRecords::default();
    let mut node = ready_node(&mut records, false);
    for bad in
        [&b""[..], b"{}", b"[1]", b"{\"task_index\":-1}", b"\xff\xfe", b"{\"task_index\":1,\"task\":{}}"]
    {
        assert_eq!(node.task(bad, Some(&mut records), &at(0)).unwrap_err().status(), 400, "{bad:?}");
    }
    let huge = format!(
        "{{\"task_index\":1,\"task\":{{\"number_to_be_squared\":\"{}\",\"task_created_block\":7,\
         \"quorum_numbers\":\"0x00\",\"quorum_threshold_percentage\":67}}}}",
        U256::from(1u8) << 128
    );
    assert_eq!(node.task(huge.as_bytes(), Some(&mut records), &at(0)).unwrap_err().status(), 422);
    assert!(node.history().is_empty());
    assert_eq!(node.stats.rejected, [6, 1, 0, 0, 0]);
}

fn rpc_answer(body: &str) -> HttpResponse {
    HttpResponse { status: 200, body: body.as_bytes().to_vec() }
}

/// What the aggregator's JSON-RPC server answers a `GET /`.
fn probe_answer() -> HttpResponse {
    HttpResponse { status: 405, body: b"use POST\n".to_vec() }
}

/// Takes the first call, the probe, and settles it as answered at `now_ms`.
fn answer_first_probe(node: &mut AvsNode, now_ms: u64) {
    let (id, request) = node.next_call(now_ms).expect("the first probe is due at once");
    assert_eq!(request, Request::Probe);
    assert_eq!(node.call_done(id, Ok(probe_answer()), now_ms, 100), None);
}

/// The next JSON-RPC call due at `now_ms`: its id and body; a probe met on the way fails.
fn next_rpc(node: &mut AvsNode, now_ms: u64) -> Option<(u64, Vec<u8>)> {
    loop {
        match node.next_call(now_ms)? {
            (id, Request::Probe) => {
                node.call_done(id, Err("connection refused".into()), now_ms, 0);
            }
            (id, Request::Rpc(body)) => return Some((id, body)),
        }
    }
}

#[test]
fn signed_responses_go_out_once_and_are_retried_while_retryable() {
    let mut records = MemRecords::default();
    let mut node = ready_node(&mut records, true);
    answer_first_probe(&mut node, 1000);
    let signed = node.task(&task_json(3, 2), Some(&mut records), &at(1000)).unwrap();
    // A repeat does not queue a second call.
    node.task(&task_json(3, 2), Some(&mut records), &at(1000)).unwrap();
    assert_eq!(node.queued(), 1);
    let (id, request) = node.next_call(1000).expect("a call is due");
    let Request::Rpc(body) = request else { panic!("not a JSON-RPC call: {request:?}") };
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(request["method"], RPC_METHOD);
    let params: SignedTaskResponse = serde_json::from_value(request["params"].clone()).unwrap();
    assert_eq!(params, signed);
    assert_eq!(node.next_call(1000), None, "in flight");
    assert_eq!(node.next_due(), Some(1000 + PROBE_INTERVAL_MS), "only the next probe");

    // Task not found yet: retried after the first backoff.
    let not_found = format!(
        "{{\"jsonrpc\":\"2.0\",\"error\":{{\"code\":1001,\"message\":\"task not found\"}},\"id\":{id}}}"
    );
    assert_eq!(node.call_done(id, Ok(rpc_answer(&not_found)), 1010, 2500), None);
    assert_eq!(node.next_due(), Some(1010 + FIRST_BACKOFF_MS));
    assert_eq!(node.next_call(1010 + FIRST_BACKOFF_MS - 1), None);
    let (id2, _) = next_rpc(&mut node, 1010 + FIRST_BACKOFF_MS).unwrap();
    assert_ne!(id, id2);
    // A late answer to the first call changes nothing, and is not counted.
    assert_eq!(node.call_done(id, Ok(rpc_answer(&not_found)), 1200, 1), None);
    let ok = format!("{{\"jsonrpc\":\"2.0\",\"result\":true,\"id\":{id2}}}");
    assert_eq!(node.call_done(id2, Ok(rpc_answer(&ok)), 1200, 7500), None);
    assert!(!node.calls_pending());
    assert_eq!(node.queued(), 0);
    assert_eq!((node.stats.accepted, node.stats.refused, node.stats.undelivered), (1, 0, 0));
    // Two calls, 2.5 ms and 7.5 ms; the probe is not a JSON-RPC call.
    assert_eq!((node.stats.rpc.count(), node.stats.rpc.sum_ns()), (2, 10_000_000));
    assert_eq!(node.stats.rpc.cumulative().next(), Some((5_000_000, 1)));
}

#[test]
fn refused_responses_are_dropped_with_a_line_and_transport_errors_give_up_eventually() {
    let mut records = MemRecords::default();
    let mut node = ready_node(&mut records, true);
    answer_first_probe(&mut node, 0);
    node.task(&task_json(1, 2), Some(&mut records), &at(0)).unwrap();
    let (id, _) = next_rpc(&mut node, 0).unwrap();
    let bad_sig = format!(
        "{{\"jsonrpc\":\"2.0\",\"error\":{{\"code\":1003,\"message\":\"bad signature\"}},\"id\":{id}}}"
    );
    let line = node.call_done(id, Ok(rpc_answer(&bad_sig)), 5, 1000).unwrap();
    assert!(line.contains("task 1: response refused by the aggregator: code 1003: bad signature"), "{line}");
    assert!(!node.calls_pending());
    assert_eq!(node.aggregator_status(), Some(Status::Up), "a refusal is an answer");

    node.task(&task_json(2, 2), Some(&mut records), &at(0)).unwrap();
    let mut now = 0;
    let mut waits = Vec::new();
    for attempt in 1..=MAX_ATTEMPTS {
        let (id, _) = next_rpc(&mut node, now).expect("due");
        let line = node.call_done(id, Err("connection refused".into()), now, 0);
        assert_eq!(node.aggregator_status(), Some(Status::Down));
        if attempt < MAX_ATTEMPTS {
            assert_eq!(line, None);
            let due = node.outbox.next_due().unwrap();
            waits.push(due - now);
            now = due;
        } else {
            assert!(line.unwrap().contains("not delivered after 8 attempts: connection refused"));
        }
    }
    assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 3200]);
    assert!(!node.calls_pending());
    assert_eq!((node.stats.refused, node.stats.undelivered, node.stats.accepted), (1, 1, 0));
    assert_eq!(node.stats.rpc.count(), 1 + u64::from(MAX_ATTEMPTS));
}

#[test]
fn without_an_aggregator_nothing_is_queued_and_the_queue_is_bounded() {
    let mut records = MemRecords::default();
    let mut quiet = ready_node(&mut records, false);
    quiet.task(&task_json(1, 2), Some(&mut records), &at(0)).unwrap();
    assert!(!quiet.calls_pending());
    assert_eq!((quiet.next_call(0), quiet.next_due()), (None, None), "no probes either");
    assert_eq!(quiet.aggregator_status(), None);
    assert!(!quiet.sends());

    let mut outbox = Outbox::new(true);
    let op = operator(2);
    let mut dropped = 0;
    for i in 0..(MAX_QUEUED as u32 + 10) {
        let response = TaskResponse { reference_task_index: i, number_squared: U256::from(1u8) };
        let signed = op.sign(response, &response.digest());
        dropped += usize::from(outbox.push(signed, 0));
    }
    assert_eq!(outbox.queue.len(), MAX_QUEUED);
    assert_eq!(dropped, 10);
    assert_eq!(outbox.queue.front().unwrap().signed.task_response.reference_task_index, 10);
}

#[test]
fn the_aggregator_is_probed_at_most_every_interval_and_one_probe_at_a_time() {
    let mut records = MemRecords::default();
    let mut node = ready_node(&mut records, true);
    assert_eq!(node.aggregator_status(), Some(Status::Initializing));
    assert_eq!(node.next_due(), Some(0), "the first probe is due at once");
    let (probe, request) = node.next_call(0).unwrap();
    assert_eq!(request, Request::Probe);
    assert_eq!(node.next_call(0), None, "one probe at a time");
    assert_eq!(node.next_due(), None);
    assert_eq!(node.aggregator_status(), Some(Status::Initializing), "no answer yet");
    // Any HTTP answer, even an error status, means reachable.
    assert_eq!(node.call_done(probe, Ok(probe_answer()), 30, 30_000), None);
    assert_eq!(node.aggregator_status(), Some(Status::Up));
    assert_eq!((node.stats.probes, node.stats.rpc.count()), (1, 0), "a probe is not a JSON-RPC call");

    // Quiet for 5 s after the answer: probed again, not before.
    assert_eq!(node.next_due(), Some(30 + PROBE_INTERVAL_MS));
    assert_eq!(node.next_call(30 + PROBE_INTERVAL_MS - 1), None);
    let (probe, _) = node.next_call(30 + PROBE_INTERVAL_MS).unwrap();
    node.call_done(probe, Err("no answer in time".into()), 5030 + 5000, 5_000_000);
    assert_eq!(node.aggregator_status(), Some(Status::Down));
    // Down: the next probe is 5 s after the last one started, however long it took.
    assert_eq!(node.next_due(), Some(30 + 2 * PROBE_INTERVAL_MS));
    let (probe, _) = node.next_call(30 + 2 * PROBE_INTERVAL_MS).unwrap();
    node.call_done(probe, Err("connection refused or reset".into()), 10_031, 100);
    assert_eq!(node.stats.probes, 3);

    // A call that gets an answer brings it back up and puts the next probe off.
    node.task(&task_json(4, 2), Some(&mut records), &at(12_000)).unwrap();
    let (id, request) = node.next_call(12_000).unwrap();
    assert!(matches!(request, Request::Rpc(_)), "{request:?}");
    let ok = format!("{{\"jsonrpc\":\"2.0\",\"result\":true,\"id\":{id}}}");
    node.call_done(id, Ok(rpc_answer(&ok)), 12_010, 10_000);
    assert_eq!(node.aggregator_status(), Some(Status::Up));
    assert_eq!(node.next_due(), Some(12_010 + PROBE_INTERVAL_MS));
    // A probe answered after the node stopped waiting for it is ignored.
    assert_eq!(node.call_done(probe, Err("late".into()), 12_020, 0), None);
    assert_eq!(node.aggregator_status(), Some(Status::Up));
}

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
    assert_eq!(node.outbox.queue[0].due_ms, 41, "queued when signed");
    // Refused tasks are not timed.
    node.task(&task_json(1, 3), Some(&mut records), &clock).unwrap_err();
    node.task(b"{", Some(&mut records), &clock).unwrap_err();
    assert_eq!(node.stats.signing.count(), 1);
    assert_eq!((node.stats.received, node.stats.signed), (3, 1));
    assert_eq!(node.stats.rejected[Cause::SlashingProtection as usize], 1);
    assert_eq!(node.stats.rejected[Cause::Malformed as usize], 1);
}

#[test]
fn the_signer_status_follows_the_key() {
    let mut records = MemRecords::default();
    let mut node = AvsNode::new(Some(&mut records), false);
    assert_eq!(node.signer_status(), Status::Initializing);
    node.set_operator(Ok(operator(1))).unwrap();
    assert_eq!(node.signer_status(), Status::Up);
    let mut wrong = AvsNode::new(Some(&mut records), false);
    wrong.set_operator(Err("wrong password".into())).unwrap_err();
    assert_eq!(wrong.signer_status(), Status::Down);
    assert_eq!(AvsNode::new(None, false).signer_status(), Status::Down, "no disk, no history");
    records.values.insert(RecordKey::SigningHistory.number(), vec![0xff; 3]);
    assert_eq!(AvsNode::new(Some(&mut records), false).signer_status(), Status::Down, "corrupt history");
}

#[test]
fn causes_match_the_errors_and_their_counters() {
    let errors = [
        TaskError::Malformed(String::new()),
        TaskError::Unanswerable(String::new()),
        TaskError::Refused(String::new()),
        TaskError::NotSigning(String::new()),
        TaskError::Storage(String::new()),
    ];
    for (i, (e, cause)) in errors.iter().zip(Cause::ALL).enumerate() {
        assert_eq!((e.cause(), cause as usize), (cause, i));
    }
    let labels: Vec<&str> = Cause::ALL.iter().map(|c| c.label()).collect();
    assert_eq!(labels, ["malformed", "unanswerable", "slashing_protection", "not_signing", "storage"]);
}

#[test]
fn keystores_decrypt_to_the_operator() {
    let sk = SecretKey::key_gen(&[4; 32]).unwrap();
    let pubkey_hex = avs_protocol::encoding::to_hex(&sk.public_key().to_bytes());
    let keystore = eip2335::Keystore::encrypt(
        &sk.to_bytes(),
        "correct horse",
        &pubkey_hex[2..],
        "",
        eip2335::Kdf::Pbkdf2 { c: 16 },
        [1; 32],
        [2; 16],
        "2d6b5d2a-1f5a-4b4e-9c49-5a9f1c1f0c3e",
    )
    .unwrap();
    let json = keystore.to_json();
    let op = Operator::from_keystore(json.as_bytes(), b"correct horse").unwrap();
    assert_eq!(op.pubkey, sk.public_key().to_bytes());
    assert_eq!(op.id, sk.public_key().operator_id());
    let digest = [9; 32];
    let sig = Signature::from_bytes(&op.key.sign(&digest).to_bytes()).unwrap();
    bls::verify(&sk.public_key(), &digest, &sig).unwrap();
    assert!(format!("{op:?}").len() < 120, "Debug shows the id only");

    let wrong = Operator::from_keystore(json.as_bytes(), b"wrong").unwrap_err();
    assert!(wrong.contains("cannot decrypt"), "{wrong}");
    assert!(Operator::from_keystore(b"{}", b"x").unwrap_err().contains("unusable keystore"));
    assert!(Operator::from_keystore(b"\xff", b"x").is_err());
    assert!(Operator::from_keystore(json.as_bytes(), b"\xff").unwrap_err().contains("not UTF-8"));
}
