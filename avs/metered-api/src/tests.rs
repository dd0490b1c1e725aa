use super::*;
use serde_json::{Value, json};
use spacecore_avs::testing::MemoryNode;

/// A node whose "authority" signs a message with keccak256(message) (the real one is an
/// EIP-191 ECDSA signature, checked by the runtime; the VM tests use it).
fn node() -> MemoryNode {
    MemoryNode {
        authority: Some(alloc::boxed::Box::new(|m: &[u8], s: &[u8]| s == keccak256(m))),
        ..MemoryNode::default()
    }
}

fn started(node: &mut MemoryNode) -> MeteredApi {
    let mut avs = MeteredApi::default();
    avs.start(node);
    avs
}

fn token(id: u8, quota: u32) -> Value {
    let id = [id; 32];
    json!({"id": to_hex(&id), "quota": quota, "signature": to_hex(&keccak256(&token_message(&id, quota)))})
}

fn call(avs: &mut MeteredApi, node: &mut MemoryNode, token: &Value, nonce: u64, input: &str) -> (u16, Value) {
    let body = serde_json::to_vec(&json!({"token": token, "nonce": nonce, "input": input})).unwrap();
    let r = avs.handle(&Request::new("POST", "/api/call", &body), node).unwrap();
    (r.status, serde_json::from_slice(&r.body).unwrap())
}

#[test]
fn a_call_is_counted_answered_and_attested() {
    let mut node = node();
    let mut avs = started(&mut node);
    let (status, answer) = call(&mut avs, &mut node, &token(1, 3), 1, "hello");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["used"], 1);
    assert_eq!(answer["output"], to_hex(&keccak256(b"hello")));
    assert_eq!(answer["repeated"], false);
    // The stand-in attestation covers the call message.
    let message = call_message(&[1; 32], 1, b"hello", answer["output"].as_str().unwrap().as_bytes());
    let expected = node.clone_attest(&message);
    assert_eq!(answer["signature"], to_hex(&expected));
    assert_eq!(node.saves, 1);
}

trait Attest {
    fn clone_attest(&mut self, message: &[u8]) -> Vec<u8>;
}

impl Attest for MemoryNode {
    fn clone_attest(&mut self, message: &[u8]) -> Vec<u8> {
        self.attest(message).unwrap().bytes
    }
}

#[test]
fn bad_tokens_are_refused_and_nothing_is_written() {
    let mut node = node();
    let mut avs = started(&mut node);
    let mut forged = token(1, 3);
    forged["quota"] = json!(1000);
    assert_eq!(call(&mut avs, &mut node, &forged, 1, "x").0, 401);
    let mut unsigned = token(1, 3);
    unsigned["signature"] = json!("0x");
    assert_eq!(call(&mut avs, &mut node, &unsigned, 1, "x").0, 401);
    for body in [&b"{"[..], b"{\"token\":1}", b"[]"] {
        let r = avs.handle(&Request::new("POST", "/api/call", body), &mut node).unwrap();
        assert_eq!(r.status, 400);
    }
    assert_eq!(call(&mut avs, &mut node, &token(1, 3), 0, "x").0, 400, "nonce 0");
    assert_eq!(node.saves, 0);
    // A node whose spec names no authority takes no token.
    let mut no_authority = MemoryNode::default();
    let mut avs = started(&mut no_authority);
    assert_eq!(call(&mut avs, &mut no_authority, &token(1, 3), 1, "x").0, 401);
}

#[test]
fn replayed_calls_are_refused_and_a_retry_is_not_counted_twice() {
    let mut node = node();
    let mut avs = started(&mut node);
    let t = token(2, 5);
    assert_eq!(call(&mut avs, &mut node, &t, 1, "a").0, 200);
    assert_eq!(call(&mut avs, &mut node, &t, 2, "b").0, 200);
    // The same call again (a retry after a lost answer): the same answer, not counted.
    let (status, again) = call(&mut avs, &mut node, &t, 2, "b");
    assert_eq!((status, again["used"].as_u64(), again["repeated"].as_bool()), (200, Some(2), Some(true)));
    assert_eq!(node.saves, 2);
    assert_eq!(call(&mut avs, &mut node, &t, 2, "other input").0, 409);
    assert_eq!(call(&mut avs, &mut node, &t, 1, "a").0, 409);
    assert_eq!(call(&mut avs, &mut node, &t, 3, "c").1["used"], 3);
}

#[test]
fn a_quota_is_spent_once_across_restarts() {
    let mut node = node();
    let mut avs = started(&mut node);
    let t = token(3, 2);
    assert_eq!(call(&mut avs, &mut node, &t, 1, "a").0, 200);
    let mut node = node_after(&node);
    let mut avs = started(&mut node);
    assert_eq!(call(&mut avs, &mut node, &t, 1, "a").1["repeated"], true, "remembered across the restart");
    assert_eq!(call(&mut avs, &mut node, &t, 2, "b").1["used"], 2);
    let (status, why) = call(&mut avs, &mut node, &t, 3, "c");
    assert_eq!(status, 429, "{why}");
    let mut node = node_after(&node);
    let mut avs = started(&mut node);
    assert_eq!(call(&mut avs, &mut node, &t, 4, "d").0, 429, "still spent after a restart");
    let usage =
        avs.handle(&Request::new("GET", &format!("/api/tokens/{}", to_hex(&[3; 32])), b""), &mut node);
    let usage: Value = serde_json::from_slice(&usage.unwrap().body).unwrap();
    assert_eq!((usage["used"].as_u64(), usage["nonce"].as_u64()), (Some(2), Some(2)));
}

fn node_after(before: &MemoryNode) -> MemoryNode {
    MemoryNode { authority: node().authority, ..before.restarted() }
}

#[test]
fn an_unwritable_call_is_not_counted() {
    let mut node = node();
    let mut avs = started(&mut node);
    node.fail_saves = Some(spacecore_avs::StoreError::Io("disk gone".into()));
    assert_eq!(call(&mut avs, &mut node, &token(4, 1), 1, "a").0, 500);
    node.fail_saves = None;
    assert_eq!(
        call(&mut avs, &mut node, &token(4, 1), 1, "a").1["used"],
        1,
        "the failed call was not counted"
    );
}

#[test]
fn an_unreadable_ledger_stops_every_call() {
    let mut node = node();
    node.record = Some(b"garbage".to_vec());
    let mut avs = started(&mut node);
    let (status, why) = call(&mut avs, &mut node, &token(5, 1), 1, "a");
    assert_eq!(status, 503, "{why}");
    assert_eq!(avs.services()[0].status, Health::Down);
    assert_eq!(node.record.as_deref(), Some(&b"garbage"[..]), "never replaced by an empty ledger");
}

#[test]
fn a_full_ledger_refuses_new_tokens_only() {
    let mut node = node();
    let mut avs = started(&mut node);
    for id in 0..ledger::MAX_TOKENS as u8 {
        assert_eq!(call(&mut avs, &mut node, &token(id, 2), 1, "a").0, 200);
    }
    assert_eq!(call(&mut avs, &mut node, &token(250, 2), 1, "a").0, 507);
    assert_eq!(call(&mut avs, &mut node, &token(0, 2), 2, "b").0, 200, "known tokens go on");
}

#[test]
fn metrics_count_outcomes_and_score_the_node() {
    let mut node = node();
    let mut avs = started(&mut node);
    call(&mut avs, &mut node, &token(1, 1), 1, "a");
    call(&mut avs, &mut node, &token(1, 1), 2, "b");
    node.fail_saves = Some(spacecore_avs::StoreError::NoDisk);
    call(&mut avs, &mut node, &token(2, 1), 1, "a");
    let mut m = Metrics::new();
    avs.metrics(&mut m);
    let text = m.into_string();
    for line in [
        "metered_api_calls_total{outcome=\"served\"} 1",
        "metered_api_calls_total{outcome=\"exhausted\"} 1",
        "metered_api_calls_total{outcome=\"storage_error\"} 1",
        "metered_api_tokens 1",
        "metered_api_performance_score 0.5",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
    }
}
