//! Whole rounds on loopback: the real aggregator (generator, JSON-RPC server, metrics server)
//! with fake operator nodes that receive the task POSTs and answer over JSON-RPC.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aggregator::{Aggregate, Aggregator, DecisionLog, GeneratorConfig};
use avs_protocol::bls::{self, PublicKey};
use avs_protocol::rpc::ErrorCode;
use avs_protocol::{TaskResponse, U256};
use common::*;

/// The task source's key of these tests.
fn task_source() -> avs_protocol::ecdsa::SecretKey {
    avs_protocol::ecdsa::SecretKey::from_bytes(&[0x33; 32]).unwrap()
}

/// The aggregator's `/metrics` as served, checked by Prometheus' own checker (`promtool`) and
/// parsed by the strict parser of these tests.
async fn scrape(addr: SocketAddr) -> prom::Exposition {
    let (status, body) = raw_http(addr, "GET", "/metrics", b"").await;
    assert_eq!(status, 200);
    test_support::assert_promtool_passes("the aggregator's /metrics", &body);
    prom::parse(&body).unwrap_or_else(|e| panic!("{e}\n{body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_operators_reach_quorum_at_66_percent_despite_a_wrong_key() {
    let rpc = Arc::new(OnceLock::new());
    let (ka, kb, kc) = (key(11), key(12), key(13));
    let (pa, pb, pc) = (ka.public_key(), kb.public_key(), kc.public_key());
    let a = FakeOperator::spawn(Behaviour::Honest(Box::new(ka)), rpc.clone()).await;
    let b = FakeOperator::spawn(Behaviour::Honest(Box::new(kb)), rpc.clone()).await;
    // c is registered with key 13 but signs with key 14.
    let wrong = Behaviour::WrongKey { claimed: pc.operator_id(), key: Box::new(key(14)) };
    let c = FakeOperator::spawn(wrong, rpc.clone()).await;
    let operators = operator_set(&[
        entry("a", &key(11), &[(0, 100)], &format!("http://{}", a.addr)),
        entry("b", &key(12), &[(0, 100)], &format!("http://{}", b.addr)),
        entry("c", &kc, &[(0, 100)], &format!("http://{}/", c.addr)),
    ]);
    let (log, memory) = DecisionLog::memory();
    let generator = GeneratorConfig { task_signer: Some(task_source()), ..generator(2, 66) };
    let config = local_config(operators, Duration::from_secs(10), Some(generator), log);
    let (mut aggregator, mut aggregates) = start_round(config, &rpc).await;

    let mut received = Vec::new();
    for _ in 0..2 {
        received
            .push(tokio::time::timeout(Duration::from_secs(10), aggregates.recv()).await.unwrap().unwrap());
    }
    received.sort_by_key(|a| a.task_index);
    for (expected_index, aggregate) in (0..2u32).zip(received) {
        assert_eq!(aggregate.task_index, expected_index);
        let n = u64::from(expected_index) + 1;
        let response =
            TaskResponse { reference_task_index: expected_index, number_squared: U256::from(n * n) };
        assert_eq!(aggregate.task_response, response);
        assert_eq!(aggregate.non_signers, vec![pc.operator_id()]);
        let mut signers = vec![pa.operator_id(), pb.operator_id()];
        signers.sort_unstable();
        assert_eq!(aggregate.signers, signers);
        // Independently: the sum of the honest keys verifies the aggregate over the digest.
        let keys: Vec<&PublicKey> = vec![&pa, &pb];
        let Aggregate::Bls12381 { signature, public_key } = aggregate.aggregate else {
            panic!("a BLS12-381 set gives a BLS12-381 aggregate: {:?}", aggregate.aggregate)
        };
        assert_eq!(bls::aggregate_public_keys(&keys).unwrap(), public_key);
        bls::verify(&public_key, &response.digest(), &signature).unwrap();
        assert_eq!((aggregate.quorums[0].signed_stake, aggregate.quorums[0].total_stake), (200, 300));
    }
    assert_eq!(aggregator.wait_generator().await, Some(2));
    assert!(aggregator.drain(Duration::from_secs(5)).await);

    // Every node got both tasks, as published JSON, each signed by the task source.
    for op in [&a, &b, &c] {
        let tasks = op.tasks.lock().unwrap().clone();
        assert_eq!(tasks.len(), 2);
        for (request, task) in op.authorizations.lock().unwrap().iter().zip(&tasks) {
            let verified = request.clone().verify(&task_source().address());
            assert_eq!(verified.as_ref(), Ok(task), "the task source's signature over the task");
            let other = avs_protocol::ecdsa::SecretKey::from_bytes(&[0x44; 32]).unwrap();
            assert!(request.clone().verify(&other.address()).is_err());
        }
        assert_eq!(tasks[1].task.task_created_block, 11);
        assert_eq!(tasks[1].task.quorum_threshold_percentage, 66);
    }
    // c's answers were refused as invalid signatures (or, if c answered after the task had
    // completed, as TaskNotFound); a's and b's were accepted.
    for _ in 0..250 {
        if c.answers.lock().unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(c.answers.lock().unwrap().len(), 2);
    for answer in c.answers.lock().unwrap().iter() {
        let code = answer.error.as_ref().and_then(|e| e.kind());
        assert!(matches!(code, Some(ErrorCode::InvalidSignature | ErrorCode::TaskNotFound)), "{answer:?}");
    }
    let metrics = scrape(aggregator.metrics_addr).await;
    assert_eq!(metrics.get("aggregator_tasks_created_total"), Some(2.0));
    assert_eq!(metrics.get("aggregator_tasks_completed_total"), Some(2.0));
    assert_eq!(metrics.get("aggregator_tasks_expired_total"), Some(0.0));
    assert_eq!(metrics.get("aggregator_task_deliveries_total{result=\"ok\"}"), Some(6.0));
    assert_eq!(metrics.get("aggregator_aggregation_latency_seconds_count"), Some(2.0));
    assert_eq!(metrics.get("aggregator_active_tasks"), Some(0.0));
    let ratio = metrics.get("aggregator_last_task_signed_stake_ratio{quorum=\"0\"}").unwrap();
    assert!((ratio - 2.0 / 3.0).abs() < 1e-9, "{ratio}");
    let accepted = metrics.get("aggregator_responses_accepted_total").unwrap();
    let invalid =
        metrics.get("aggregator_responses_rejected_total{code=\"1003\",reason=\"invalid_signature\"}");
    let not_found =
        metrics.get("aggregator_responses_rejected_total{code=\"1001\",reason=\"task_not_found\"}");
    assert!(accepted >= 4.0);
    assert_eq!(invalid.unwrap() + not_found.unwrap() + accepted, 6.0);

    let lines = memory.lines();
    let completed = lines.iter().filter(|l| l["event"] == "task_completed").count();
    assert_eq!(completed, 2);
    assert!(lines.iter().all(|l| l["ts_ms"].as_u64().is_some()));
    aggregator.shutdown().await;
    for op in [a, b, c] {
        op.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_and_failing_operators_are_logged_and_the_task_expires() {
    let rpc = Arc::new(OnceLock::new());
    let failing = FakeOperator::spawn(Behaviour::Failing, rpc.clone()).await;
    // A port nothing listens on: bind one, note it, close it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let honest = FakeOperator::spawn(Behaviour::Honest(Box::new(key(21))), rpc.clone()).await;
    let operators = operator_set(&[
        entry("failing", &key(22), &[(0, 100)], &format!("http://{}", failing.addr)),
        entry("gone", &key(23), &[(0, 100)], &format!("http://{closed}")),
        entry("honest", &key(21), &[(0, 100)], &format!("http://{}", honest.addr)),
    ]);
    let (log, memory) = DecisionLog::memory();
    let config = local_config(operators, Duration::from_secs(1), Some(generator(1, 67)), log);
    let mut aggregator = Aggregator::start(config).await.unwrap();
    rpc.set(aggregator.rpc_addr).unwrap();
    assert_eq!(aggregator.wait_generator().await, Some(1));
    assert!(aggregator.drain(Duration::from_secs(5)).await);

    let metrics = scrape(aggregator.metrics_addr).await;
    assert_eq!(metrics.get("aggregator_tasks_expired_total"), Some(1.0));
    assert_eq!(metrics.get("aggregator_tasks_completed_total"), Some(0.0));
    assert_eq!(metrics.get("aggregator_task_deliveries_total{result=\"error\"}"), Some(2.0));
    assert_eq!(metrics.get("aggregator_task_deliveries_total{result=\"ok\"}"), Some(1.0));
    let ratio = metrics.get("aggregator_last_task_signed_stake_ratio{quorum=\"0\"}").unwrap();
    assert!((ratio - 1.0 / 3.0).abs() < 1e-9, "{ratio} {:#?}", memory.lines());
    let expired: Vec<_> = memory.lines().into_iter().filter(|l| l["event"] == "task_expired").collect();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0]["signers"].as_array().unwrap().len(), 1, "{:#?}", memory.lines());

    // A response after expiry is TaskExpired.
    let late = common::answer(&key(22), &common::task(0, 1, &[0], 67));
    let answer = common::call(aggregator.rpc_addr, 5, late).await;
    assert_eq!(answer.error.unwrap().kind(), Some(ErrorCode::TaskExpired));
    aggregator.shutdown().await;
    failing.stop();
    honest.stop();
}
