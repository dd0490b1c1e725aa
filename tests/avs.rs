//! The AVS end to end with BLS12-381 operators (the BN254 cluster tests are `avs_bn254.rs`):
//! spacecores signing tasks with the keys imported into their disks, the aggregator completing
//! tasks by stake, and every aggregate checked by the independent BLS implementation
//! (`independent.rs`, not `blst`).

use avs_protocol::Scheme;
use avs_protocol::encoding::to_hex;
use serde_json::{Value, json};
use spacecore_tests::cluster::{
    AggregatorOptions, Cluster, Node, Operator, Tools, completed, decided, events, hex_field, new_task,
    post_task, post_unsigned_task, response_digest, status, unanswered_task_run,
};
use spacecore_tests::{independent, kvm_available};
use std::time::Duration;

/// Limit of every wait: nothing here takes more than a few seconds when it works.
const LIMIT: Duration = Duration::from_secs(30);

fn id_hex(node: &Node) -> String {
    node.operator.key.id_hex()
}

/// Checks a `task_completed` decision: the answer, the digest, the signers (the nodes at
/// `signers`), the stakes, and the aggregate, recomputed and verified independently.
fn check_completed(cluster: &Cluster, task: &Value, signers: &[usize]) {
    let index = task["task_index"].as_u64().expect("task_index") as u32;
    // Sequential numbers: task i squares i + 1.
    let number = u64::from(index) + 1;
    assert_eq!(task["number_squared"], (number * number).to_string(), "{task}");
    let digest = response_digest(index, number);
    assert_eq!(hex_field::<32>(&task["digest"]), digest, "{task}");

    let mut expected: Vec<String> =
        signers.iter().map(|&i| to_hex(&cluster.nodes[i].registered.id)).collect();
    expected.sort();
    let listed: Vec<String> =
        task["signers"].as_array().expect("signers").iter().map(|s| s.as_str().unwrap().to_owned()).collect();
    assert_eq!(listed, expected, "signers of task {index}");
    let stakes = &task["quorums"][0];
    assert_eq!(stakes["quorum"], 0);
    assert_eq!(stakes["signed_stake"].as_u64(), Some(100 * signers.len() as u64), "{task}");
    assert_eq!(stakes["total_stake"].as_u64(), Some(100 * cluster.nodes.len() as u64), "{task}");

    let keys: Vec<[u8; 48]> = signers.iter().map(|&i| cluster.nodes[i].registered.bls_pubkey()).collect();
    let aggregate_key = independent::aggregate_pubkeys(&keys);
    assert_eq!(
        hex_field::<48>(&task["aggregate_public_key"]),
        aggregate_key,
        "aggregate key of task {index}"
    );
    let signature = hex_field::<96>(&task["aggregate_signature"]);
    assert!(independent::verify(&aggregate_key, &digest, &signature), "aggregate signature of task {index}");
}

/// The harness without VMs: operators made with the CLI form a set the aggregator accepts, and
/// an aggregator run whose only node does not answer ends with its task expired.
#[test]
fn cli_operators_form_a_valid_set_and_an_unanswered_task_expires() {
    let dir = tempfile::tempdir().unwrap();
    let (cli, aggregator) = (spacecore_tests::cli(), spacecore_tests::aggregator());
    let operator = Operator::create_with(cli, dir.path(), "alpha", Scheme::Bls12381);
    assert!(operator.keystore.is_file() && operator.password_file.is_file());
    let shown = operator.run_keys(cli, &["keys", "pubkey"]);
    assert_eq!(shown.trim(), to_hex(&operator.key.bls_pubkey()));
    // Nothing listens on `nobody`: task deliveries fail.
    let decisions = unanswered_task_run(aggregator, dir.path(), &operator, "2 operators, all valid", LIMIT);
    let created = events(&decisions, "task_created").next().expect("task_created");
    let sent = r#"{"task_index":0,"task":{"number_to_be_squared":"1","task_created_block":1,"quorum_numbers":"0x00","quorum_threshold_percentage":67}}"#;
    assert_eq!(new_task(created), serde_json::from_str::<Value>(sent).unwrap());
}

#[test]
fn three_spacecores_sign_every_task_and_the_aggregates_verify_independently() {
    if !kvm_available("three_spacecores_sign_every_task_and_the_aggregates_verify_independently") {
        return;
    }
    let mut cluster = Cluster::with_scheme(Tools::for_tests(), "avs-all", 3, Scheme::Bls12381);
    cluster.start_all();
    for node in &cluster.nodes {
        let (code, answer) = status(node.http.unwrap());
        assert_eq!(code, 200);
        assert_eq!(answer["name"], node.operator.name.as_str());
        assert_eq!(answer["operator_id"], id_hex(node), "{answer}");
    }
    // 67 %: two of three equal stakes are not enough, every node must sign.
    let decisions = cluster.run_aggregator(5, 67, LIMIT);
    let tasks = completed(&decisions);
    assert_eq!(tasks.len(), 5, "{decisions:#?}");
    for task in tasks {
        assert_eq!(task["non_signers"], json!([]), "{task}");
        check_completed(&cluster, task, &[0, 1, 2]);
    }
    assert!(events(&decisions, "response").all(|r| r["accepted"] == true), "{decisions:#?}");
}

#[test]
fn an_operator_registered_with_another_key_is_refused_and_the_others_complete() {
    if !kvm_available("an_operator_registered_with_another_key_is_refused_and_the_others_complete") {
        return;
    }
    let mut cluster = Cluster::with_scheme(Tools::for_tests(), "avs-wrong", 3, Scheme::Bls12381);
    cluster.register_wrong_key(2);
    cluster.start_all();
    let decisions = cluster.run_aggregator(5, 66, LIMIT);
    let tasks = completed(&decisions);
    assert_eq!(tasks.len(), 5, "{decisions:#?}");
    let registered = to_hex(&cluster.nodes[2].registered.id);
    for task in tasks {
        assert_eq!(task["non_signers"], json!([registered]), "{task}");
        check_completed(&cluster, task, &[0, 1]);
    }
    // The node signs with the key it holds, under that key's id, which the set does not know.
    let node = id_hex(&cluster.nodes[2]);
    let from_node: Vec<&Value> =
        events(&decisions, "response").filter(|r| r["operator_id"] == node).collect();
    assert!(!from_node.is_empty(), "no response from the wrongly registered node: {decisions:#?}");
    assert!(from_node.iter().all(|r| r["accepted"] == false), "{from_node:#?}");
}

#[test]
fn a_killed_spacecore_does_not_stop_the_tasks_and_signs_the_same_after_restart() {
    if !kvm_available("a_killed_spacecore_does_not_stop_the_tasks_and_signs_the_same_after_restart") {
        return;
    }
    const VICTIM: usize = 2;
    let mut cluster = Cluster::with_scheme(Tools::for_tests(), "avs-kill", 3, Scheme::Bls12381);
    cluster.start_all();
    let options = AggregatorOptions { tasks: 8, threshold: 66, ..AggregatorOptions::default() };
    let mut aggregator = cluster.start_aggregator(&options);

    // Once the victim has sent its first signed response (accepted, or too late for a task
    // already complete), SIGKILL its launcher.
    let victim = id_hex(&cluster.nodes[VICTIM]);
    let signed_index = aggregator.first_response_from(&victim, LIMIT);
    cluster.kill(VICTIM);

    let decisions = aggregator.finish_decided(8, LIMIT);
    assert_eq!(completed(&decisions).len(), 8, "{decisions:#?}");
    assert_eq!(decided(&decisions).count(), 8);
    let last = completed(&decisions).into_iter().max_by_key(|t| t["task_index"].as_u64()).unwrap();
    assert_eq!(last["non_signers"], json!([victim]), "the victim was not down at the end: {last}");
    check_completed(&cluster, last, &[0, 1]);

    // Restarted, it answers the task it signed before with the same signature: the one
    // signature of that digest by its key, as the CLI computes it from the keystore.
    cluster.start(VICTIM);
    let node = &cluster.nodes[VICTIM];
    let addr = node.http.unwrap();
    let created =
        events(&decisions, "task_created").find(|c| c["task_index"] == signed_index).expect("created");
    let number = u64::from(signed_index) + 1;
    let (code, answer) = post_task(addr, new_task(created).to_string().as_bytes());
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["operator_id"], victim);
    assert_eq!(answer["task_response"]["reference_task_index"], signed_index);
    assert_eq!(answer["task_response"]["number_squared"], (number * number).to_string());
    let digest = response_digest(signed_index, number);
    let expected = node.operator.cli_signature(spacecore_tests::cli(), &digest);
    assert_eq!(answer["signature"], expected);
    assert!(independent::verify(&node.operator.key.bls_pubkey(), &digest, &hex_field(&answer["signature"])));

    // The same index with another number is a second, different response: refused.
    let mut other = new_task(created);
    other["task"]["number_to_be_squared"] = json!((number + 1).to_string());
    let (code, answer) = post_task(addr, other.to_string().as_bytes());
    assert_eq!(code, 409, "{answer}");
    assert!(answer["error"].is_string(), "{answer}");
}

#[test]
fn malformed_tasks_get_400_and_the_node_keeps_serving() {
    if !kvm_available("malformed_tasks_get_400_and_the_node_keeps_serving") {
        return;
    }
    // One spacecore; no aggregator listens, so its JSON-RPC calls fail, which must not matter.
    let mut cluster = Cluster::with_scheme(Tools::for_tests(), "avs-bad", 1, Scheme::Bls12381);
    cluster.start_all();
    let node = &cluster.nodes[0];
    let addr = node.http.unwrap();
    let task = |index: u32, number: &str| {
        json!({"task_index": index, "task": {"number_to_be_squared": number, "task_created_block": 1,
               "quorum_numbers": "0x00", "quorum_threshold_percentage": 67}})
    };
    // uint256 values are JSON strings; a JSON number is malformed.
    let mut as_number = task(3, "4");
    as_number["task"]["number_to_be_squared"] = json!(4);
    let as_number = as_number.to_string();
    let bad: [&[u8]; 6] =
        [b"", b"{not json", b"[]", br#"{"task_index":1}"#, as_number.as_bytes(), &[0xff, 0xfe, 0x00]];
    for body in bad {
        let (code, answer) = post_task(addr, body);
        assert_eq!(code, 400, "{:?}: {answer}", String::from_utf8_lossy(body));
        assert!(answer["error"].is_string(), "{answer}");
    }
    // Only the task source can make the node sign: an unsigned task, or one signed by another
    // key, with an index near u32::MAX (which would make the signing history refuse every
    // later task) is refused with 401 and leaves the history untouched (task 5 signs below).
    let poison = task(u32::MAX - 1, "3");
    let (code, answer) = post_unsigned_task(addr, poison.to_string().as_bytes());
    assert_eq!(code, 401, "unsigned: {answer}");
    let forger = avs_protocol::ecdsa::SecretKey::from_bytes(&[0x66; 32]).unwrap();
    let forged = avs_protocol::intake::AuthorizedTask::sign(serde_json::from_value(poison).unwrap(), &forger);
    let (code, answer) = post_unsigned_task(addr, &serde_json::to_vec(&forged).unwrap());
    assert_eq!(code, 401, "signed by another key: {answer}");
    assert!(answer["error"].as_str().unwrap().contains("not the task source's"), "{answer}");
    // 2^128 squares past uint256: a task that cannot be answered.
    let (code, answer) =
        post_task(addr, task(4, "340282366920938463463374607431768211456").to_string().as_bytes());
    assert_eq!(code, 422, "{answer}");

    let (code, answer) = status(addr);
    assert_eq!((code, &answer["operator_id"]), (200, &json!(id_hex(node))), "{answer}");
    let body = task(5, "12").to_string();
    let (code, first) = post_task(addr, body.as_bytes());
    assert_eq!(code, 200, "{first}");
    assert!(independent::verify(
        &node.operator.key.bls_pubkey(),
        &response_digest(5, 12),
        &hex_field(&first["signature"])
    ));
    let (code, again) = post_task(addr, body.as_bytes());
    assert_eq!((code, &again), (200, &first), "the same task twice");
}
