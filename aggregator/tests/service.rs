//! The aggregation service alone: every decision, with explicit clocks.

mod common;

use std::time::{Duration, Instant};

use aggregator::{Aggregate, AggregatedResponse, TaskError};
use avs_protocol::OperatorSignature;
use avs_protocol::bls::{self, PublicKey, SecretKey, Signature};
use avs_protocol::rpc::ErrorCode;
use avs_protocol::{SignedTaskResponse, TaskResponse, U256};
use common::*;

const EXPIRY: Duration = Duration::from_secs(10);

/// Checks an aggregate without the service's code path: every signer's own signature over an
/// independently computed digest, then the sums recomputed and a plain `verify` with the
/// summed key.
fn verify_independently(aggregate: &AggregatedResponse, signed: &[(SignedTaskResponse, PublicKey)]) {
    let digest = abi_digest(&aggregate.task_response);
    assert_eq!(aggregate.digest, digest);
    let mut signatures = Vec::new();
    for (s, pk) in signed {
        let signature = Signature::from_bytes(s.signature.as_bytes().try_into().unwrap()).unwrap();
        bls::verify(pk, &digest, &signature).expect("each signer's signature verifies");
        signatures.push(signature);
    }
    let sigs: Vec<&Signature> = signatures.iter().collect();
    let keys: Vec<&PublicKey> = signed.iter().map(|(_, pk)| pk).collect();
    let Aggregate::Bls12381 { signature, public_key } = &aggregate.aggregate else {
        panic!("not a BLS12-381 aggregate: {:?}", aggregate.aggregate);
    };
    assert_eq!(&bls::aggregate_signatures(&sigs).unwrap(), signature);
    assert_eq!(&bls::aggregate_public_keys(&keys).unwrap(), public_key);
    bls::verify(public_key, &digest, signature).unwrap();
    let mut ids: Vec<[u8; 32]> = signed.iter().map(|(s, _)| s.operator_id).collect();
    ids.sort_unstable();
    assert_eq!(aggregate.signers, ids);
}

#[test]
fn wrong_key_is_rejected_and_quorum_is_reached_at_66_percent() {
    let (keys, operators) = three_operators();
    let t = task(0, 9, &[0], 66);
    let (svc, log, t0) = service_with_task(operators, EXPIRY, &t);
    let forged = answer_claiming(&key(99), &t, keys[2].public_key().operator_id());
    assert_eq!(code(svc.process_signed_task_response(&forged, t0)), ErrorCode::InvalidSignature);
    let a = answer(&keys[0], &t);
    assert_eq!(svc.process_signed_task_response(&a, t0), Ok(None));
    let b = answer(&keys[1], &t);
    let aggregate =
        svc.process_signed_task_response(&b, t0 + Duration::from_millis(30)).unwrap().expect("complete");

    assert_eq!(aggregate.task_index, 0);
    assert_eq!(aggregate.task_response.number_squared, U256::from(81u32));
    assert_eq!(aggregate.non_signers, vec![keys[2].public_key().operator_id()]);
    assert_eq!(aggregate.quorums.len(), 1);
    assert_eq!((aggregate.quorums[0].signed_stake, aggregate.quorums[0].total_stake), (200, 300));
    assert_eq!(aggregate.latency, Duration::from_millis(30));
    verify_independently(&aggregate, &[(a, keys[0].public_key()), (b, keys[1].public_key())]);

    // Completed: later responses are TaskNotFound (retryable, as for a task not yet known).
    let c = answer(&keys[2], &t);
    assert_eq!(code(svc.process_signed_task_response(&c, t0)), ErrorCode::TaskNotFound);
    assert_eq!(svc.active_tasks(), 0);

    let events: Vec<String> = log.lines().iter().map(|l| l["event"].as_str().unwrap().to_owned()).collect();
    assert_eq!(events, ["task_created", "response", "response", "response", "task_completed", "response"]);
    let completed = &log.lines()[4];
    assert_eq!(completed["task_index"], 0);
    assert_eq!(completed["quorums"][0]["signed_stake"], 200);
    assert_eq!(completed["non_signers"].as_array().unwrap().len(), 1);
    assert_eq!(log.lines()[1]["code"], 1003);
}

#[test]
fn threshold_boundary_67_needs_the_third_operator() {
    let (keys, operators) = three_operators();
    let t = task(1, 5, &[0], 67);
    let (svc, _log, t0) = service_with_task(operators, EXPIRY, &t);
    assert_eq!(svc.process_signed_task_response(&answer(&keys[0], &t), t0), Ok(None));
    // 200 * 100 = 20000 < 300 * 67 = 20100.
    assert_eq!(svc.process_signed_task_response(&answer(&keys[1], &t), t0), Ok(None));
    let aggregate = svc.process_signed_task_response(&answer(&keys[2], &t), t0).unwrap().expect("complete");
    assert!(aggregate.non_signers.is_empty());
    assert_eq!(aggregate.quorums[0].signed_stake, 300);
}

#[test]
fn duplicates_unknown_operators_and_outsiders() {
    let (k, outsider, stranger) = (vec![key(1), key(2)], key(7), key(8));
    let operators = operator_set(&[
        entry("a", &k[0], &[(0, 10)], "http://127.0.0.1:9"),
        entry("b", &k[1], &[(0, 10)], "http://127.0.0.1:9"),
        entry("q1-only", &outsider, &[(1, 10)], "http://127.0.0.1:9"),
    ]);
    let t = task(3, 4, &[0], 100);
    let (svc, _log, t0) = service_with_task(operators, EXPIRY, &t);
    let a = answer(&k[0], &t);
    assert_eq!(svc.process_signed_task_response(&a, t0), Ok(None));
    assert_eq!(code(svc.process_signed_task_response(&a, t0)), ErrorCode::DuplicateResponse);
    let rejection = svc.process_signed_task_response(&answer(&stranger, &t), t0).unwrap_err();
    assert_eq!(rejection.code, ErrorCode::OperatorNotInQuorum);
    assert!(rejection.message.contains("unknown operator"), "{}", rejection.message);
    let outside = svc.process_signed_task_response(&answer(&outsider, &t), t0).unwrap_err();
    assert_eq!(outside.code, ErrorCode::OperatorNotInQuorum);
    assert!(outside.message.contains("q1-only"), "{}", outside.message);
    // The duplicate did not count twice: b is still needed.
    assert!(svc.process_signed_task_response(&answer(&k[1], &t), t0).unwrap().is_some());
}

#[test]
fn wrong_answers_and_broken_signatures_are_invalid_signatures() {
    let (keys, operators) = three_operators();
    let t = task(4, 12, &[0], 100);
    let (svc, _log, t0) = service_with_task(operators, EXPIRY, &t);
    // Correctly signed, but 12² is not 145.
    let wrong = TaskResponse { reference_task_index: 4, number_squared: U256::from(145u32) };
    let signed = SignedTaskResponse::sign(wrong, &keys[0]);
    let rejection = svc.process_signed_task_response(&signed, t0).unwrap_err();
    assert_eq!(rejection.code, ErrorCode::InvalidSignature);
    assert!(rejection.message.contains("144"), "{}", rejection.message);
    // Signed over another task's response.
    let mut other = answer(&keys[0], &task(5, 12, &[0], 100));
    other.task_response.reference_task_index = 4;
    assert_eq!(code(svc.process_signed_task_response(&other, t0)), ErrorCode::InvalidSignature);
    // Not a point, the identity, and a valid point that is not the signature.
    let mut garbage = answer(&keys[0], &t);
    garbage.signature = OperatorSignature::Bls12381([0xff; 96]);
    assert_eq!(code(svc.process_signed_task_response(&garbage, t0)), ErrorCode::InvalidSignature);
    let mut identity = [0; 96];
    identity[0] = 0xc0;
    garbage.signature = OperatorSignature::Bls12381(identity);
    assert_eq!(code(svc.process_signed_task_response(&garbage, t0)), ErrorCode::InvalidSignature);
    garbage.signature = OperatorSignature::Bls12381(bls::pop_prove(&keys[0]).to_bytes());
    assert_eq!(code(svc.process_signed_task_response(&garbage, t0)), ErrorCode::InvalidSignature);
    // None of it counted: the honest answer is still accepted.
    assert_eq!(svc.process_signed_task_response(&answer(&keys[0], &t), t0), Ok(None));
}

#[test]
fn tasks_expire_and_unknown_tasks_are_not_found() {
    let (keys, operators) = three_operators();
    let (svc, log) = service(operators, Duration::from_secs(1));
    let t0 = Instant::now();
    let (t5, t6) = (task(5, 2, &[0], 66), task(6, 3, &[0], 66));
    svc.initialize_task(t5.clone(), t0).unwrap();
    svc.initialize_task(t6.clone(), t0 + Duration::from_millis(500)).unwrap();
    assert_eq!(svc.process_signed_task_response(&answer(&keys[0], &t5), t0), Ok(None));
    // At the deadline the task is expired, whether a response or the sweeper finds it first.
    let late = t0 + Duration::from_secs(1);
    assert_eq!(code(svc.process_signed_task_response(&answer(&keys[1], &t5), late)), ErrorCode::TaskExpired);
    assert_eq!(code(svc.process_signed_task_response(&answer(&keys[2], &t5), late)), ErrorCode::TaskExpired);
    assert_eq!(svc.expire_due(late), 0);
    assert_eq!(svc.expire_due(t0 + Duration::from_millis(1500)), 1);
    assert_eq!(code(svc.process_signed_task_response(&answer(&keys[0], &t6), late)), ErrorCode::TaskExpired);
    assert_eq!(
        code(svc.process_signed_task_response(&answer(&keys[0], &task(9, 1, &[0], 66)), t0)),
        ErrorCode::TaskNotFound
    );
    // An index once used is not registered again.
    assert_eq!(svc.initialize_task(t5, late), Err(TaskError::Duplicate(5)));
    let expired: Vec<_> = log.lines().into_iter().filter(|l| l["event"] == "task_expired").collect();
    assert_eq!(expired.len(), 2);
    assert_eq!(expired[0]["task_index"], 5);
    assert_eq!(expired[0]["quorums"][0]["signed_stake"], 100);
}

#[test]
fn every_quorum_must_reach_the_threshold() {
    let keys: Vec<SecretKey> = (1..=3).map(key).collect();
    let operators = operator_set(&[
        entry("a", &keys[0], &[(0, 100), (1, 10)], "http://127.0.0.1:9"),
        entry("b", &keys[1], &[(0, 100)], "http://127.0.0.1:9"),
        entry("c", &keys[2], &[(1, 90)], "http://127.0.0.1:9"),
    ]);
    let t = task(0, 3, &[0, 1], 50);
    let (svc, _log, t0) = service_with_task(operators, EXPIRY, &t);
    // a: quorum 0 at 100/200 = 50 %, quorum 1 at 10/100.
    assert_eq!(svc.process_signed_task_response(&answer(&keys[0], &t), t0), Ok(None));
    // c: quorum 1 at 100/100.
    let aggregate = svc.process_signed_task_response(&answer(&keys[2], &t), t0).unwrap().expect("complete");
    let stakes: Vec<_> =
        aggregate.quorums.iter().map(|q| (q.quorum, q.signed_stake, q.total_stake)).collect();
    assert_eq!(stakes, [(0, 100, 200), (1, 100, 100)]);
    assert_eq!(aggregate.non_signers, vec![keys[1].public_key().operator_id()]);
}

#[test]
fn bad_tasks_are_not_registered() {
    let (_keys, operators) = three_operators();
    let (svc, _log) = service(operators, EXPIRY);
    let now = Instant::now();
    assert_eq!(svc.initialize_task(task(0, 1, &[], 50), now), Err(TaskError::NoQuorums));
    assert_eq!(svc.initialize_task(task(0, 1, &[0, 0], 50), now), Err(TaskError::RepeatedQuorum(0)));
    assert_eq!(svc.initialize_task(task(0, 1, &[0], 0), now), Err(TaskError::Threshold(0)));
    assert_eq!(svc.initialize_task(task(0, 1, &[0], 101), now), Err(TaskError::Threshold(101)));
    assert_eq!(svc.initialize_task(task(0, 1, &[0, 4], 50), now), Err(TaskError::EmptyQuorum(4)));
    let mut overflow = task(0, 1, &[0], 50);
    overflow.task.number_to_be_squared = U256::from(1u8) << 128;
    assert_eq!(svc.initialize_task(overflow, now), Err(TaskError::Overflow));
    svc.initialize_task(task(0, 1, &[0], 50), now).unwrap();
    assert_eq!(svc.initialize_task(task(0, 2, &[0], 50), now), Err(TaskError::Duplicate(0)));
}
