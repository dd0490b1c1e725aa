//! The AVS end to end with BN254 operators, EigenLayer's scheme: keys made by
//! `spacecore keys generate --scheme bn254` (eigensdk's key files), imported into the spacecores'
//! disks, the operator set built from `keys pubkey --json` and `keys pop`, spacecores signing
//! every task, and the aggregator's BN254 aggregates recomputed and verified from the operators'
//! registered keys with `avs_protocol::bn254`, apart from the aggregator's code.

use std::time::Duration;

use avs_protocol::encoding::to_hex;
use avs_protocol::{Scheme, U256, bn254};
use serde_json::{Value, json};
use spacecore_tests::cluster::{
    AggregatorOptions, Cluster, Operator, RegisteredKey, Registration, Tools, completed, events, hex_field,
    new_task, post_task, response_digest, status, unanswered_task_run,
};
use spacecore_tests::kvm_available;

/// Limit of every wait: nothing here takes more than a few seconds when it works.
const LIMIT: Duration = Duration::from_secs(30);

fn g1(key: &Registration) -> bn254::G1Point {
    key.bn254_key().g1()
}

fn sum_g1(keys: &[&Registration]) -> [u8; 64] {
    let points: Vec<bn254::G1Point> = keys.iter().map(|k| g1(k)).collect();
    bn254::aggregate_g1(&points.iter().collect::<Vec<_>>()).expect("a non-zero sum").to_bytes()
}

/// Checks a BN254 `task_completed` decision: the answer, the digest, the signers (nodes
/// `signers`) and the non-signers with their G1 keys, the stakes, and the aggregate: apkG2 and
/// the signers' G1 sum recomputed from the registered keys, σ verified with apkG2 over the
/// digest computed here, the two aggregate keys of one secret, and quorum 0's aggregate key.
fn check_completed(cluster: &Cluster, task: &Value, signers: &[usize]) {
    let index = task["task_index"].as_u64().expect("task_index") as u32;
    let number = u64::from(index) + 1;
    assert_eq!(task["scheme"], "bn254", "{task}");
    assert_eq!(task["number_squared"], (number * number).to_string(), "{task}");
    let digest = response_digest(index, number);
    assert_eq!(hex_field::<32>(&task["digest"]), digest, "{task}");

    let registered: Vec<&Registration> = cluster.nodes.iter().map(|n| &n.registered).collect();
    let (mut signing, mut absent): (Vec<&Registration>, Vec<&Registration>) = (Vec::new(), Vec::new());
    for (i, key) in registered.iter().enumerate() {
        if signers.contains(&i) { signing.push(key) } else { absent.push(key) }
    }
    let mut expected: Vec<String> = signing.iter().map(|k| k.id_hex()).collect();
    expected.sort();
    assert_eq!(task["signers"], json!(expected), "signers of task {index}");
    absent.sort_by_key(|k| k.id);
    assert_eq!(task["non_signers"], json!(absent.iter().map(|k| k.id_hex()).collect::<Vec<_>>()), "{task}");
    let absent_g1: Vec<String> = absent.iter().map(|k| to_hex(&g1(k).to_bytes())).collect();
    assert_eq!(task["non_signer_pubkeys"], json!(absent_g1), "{task}");
    let stakes = &task["quorums"][0];
    assert_eq!(stakes["signed_stake"].as_u64(), Some(100 * signers.len() as u64), "{task}");
    assert_eq!(stakes["total_stake"].as_u64(), Some(100 * cluster.nodes.len() as u64), "{task}");

    let g2: Vec<bn254::G2Point> = signing.iter().map(|k| k.bn254_key().g2()).collect();
    let apk_g2 = bn254::aggregate_g2(&g2.iter().collect::<Vec<_>>()).unwrap();
    assert_eq!(hex_field::<128>(&task["apk_g2"]), apk_g2.to_bytes(), "apkG2 of task {index}");
    let signers_g1 = sum_g1(&signing);
    assert_eq!(hex_field::<64>(&task["signers_apk_g1"]), signers_g1, "signers' G1 sum of task {index}");
    assert_eq!(task["quorum_apks"], json!([{"quorum": 0, "apk": to_hex(&sum_g1(&registered))}]), "{task}");
    let sigma = bn254::Signature::from_bytes(&hex_field::<64>(&task["aggregate_signature"])).expect("σ");
    bn254::verify(&apk_g2, &digest, &sigma).unwrap_or_else(|e| panic!("σ of task {index}: {e}"));
    bn254::PublicKey::new(bn254::G1Point::from_bytes(&signers_g1).unwrap(), apk_g2)
        .expect("the aggregate G1 and G2 keys have one secret");
}

/// The harness without VMs: BN254 operators made with the CLI form a set the aggregator
/// accepts, with their registrations as the CLI reports them, and an unanswered task expires.
#[test]
fn cli_bn254_operators_form_a_valid_set_and_an_unanswered_task_expires() {
    let dir = tempfile::tempdir().unwrap();
    let (cli, aggregator) = (spacecore_tests::cli(), spacecore_tests::aggregator());
    let operator = Operator::create(cli, dir.path(), "alpha");
    assert_eq!(operator.key.scheme(), Scheme::Bn254);
    let RegisteredKey::Bn254 { g1: g1_bytes, .. } = operator.key.key else { unreachable!() };
    // The operator id is EigenLayer's: keccak256(X ‖ Y).
    assert_eq!(operator.key.id, avs_protocol::keccak256(&g1_bytes));
    // The key file is eigensdk's: its `pubKey` is the G1 key, `E([x,y])` in decimal.
    let file: Value = serde_json::from_slice(&std::fs::read(&operator.keystore).unwrap()).unwrap();
    let x = U256::from_be_slice(&g1_bytes[..32]);
    let y = U256::from_be_slice(&g1_bytes[32..]);
    assert_eq!(file["pubKey"], format!("E([{x},{y}])"), "{file}");
    assert!(file["crypto"].is_object(), "{file}");

    unanswered_task_run(aggregator, dir.path(), &operator, "2 operators, all valid (bn254 keys)", LIMIT);
}

#[test]
fn three_bn254_spacecores_sign_every_task_and_the_aggregates_verify() {
    if !kvm_available("three_bn254_spacecores_sign_every_task_and_the_aggregates_verify") {
        return;
    }
    let mut cluster = Cluster::new(Tools::for_tests(), "bn-all", 3);
    assert_eq!(cluster.scheme, Scheme::Bn254);
    cluster.start_all();
    for node in &cluster.nodes {
        let (code, answer) = status(node.http.unwrap());
        assert_eq!(code, 200);
        assert_eq!(answer["operator_id"], node.operator.key.id_hex(), "{answer}");
    }
    // 67 %: every one of the three equal stakes must sign.
    let decisions = cluster.run_aggregator(5, 67, LIMIT);
    let tasks = completed(&decisions);
    assert_eq!(tasks.len(), 5, "{decisions:#?}");
    for task in tasks {
        check_completed(&cluster, task, &[0, 1, 2]);
    }
    assert!(events(&decisions, "response").all(|r| r["accepted"] == true), "{decisions:#?}");

    // A node's own answer: a 64-byte BN254 signature that verifies with its registered G2 key.
    let created = events(&decisions, "task_created").next().expect("task_created");
    let node = &cluster.nodes[1];
    let (code, answer) = post_task(node.http.unwrap(), new_task(created).to_string().as_bytes());
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["operator_id"], node.operator.key.id_hex());
    let signature = bn254::Signature::from_bytes(&hex_field::<64>(&answer["signature"])).expect("a G1 point");
    bn254::verify(&node.registered.bn254_key().g2(), &response_digest(0, 1), &signature)
        .expect("the node's signature");
}

#[test]
fn a_bn254_operator_registered_with_another_key_is_refused_and_the_others_complete() {
    if !kvm_available("a_bn254_operator_registered_with_another_key_is_refused_and_the_others_complete") {
        return;
    }
    let mut cluster = Cluster::new(Tools::for_tests(), "bn-wrong", 3);
    cluster.register_wrong_key(2);
    cluster.start_all();
    let decisions = cluster.run_aggregator(4, 66, LIMIT);
    let tasks = completed(&decisions);
    assert_eq!(tasks.len(), 4, "{decisions:#?}");
    for task in tasks {
        // The non-signer is listed with the G1 key it is registered with.
        check_completed(&cluster, task, &[0, 1]);
    }
    // The node signs with the key it holds, under that key's id, which the set does not know.
    let node = cluster.nodes[2].operator.key.id_hex();
    let from_node: Vec<&Value> =
        events(&decisions, "response").filter(|r| r["operator_id"] == node).collect();
    assert!(!from_node.is_empty(), "no response from the wrongly registered node: {decisions:#?}");
    // Refused as unknown (1002), or, once the others completed the task, as not live (1001):
    // the aggregator checks a task's liveness before its signer.
    let refused = |r: &&Value| r["accepted"] == false && (r["code"] == 1002 || r["code"] == 1001);
    assert!(from_node.iter().all(refused), "{from_node:#?}");
}

#[test]
fn a_killed_bn254_spacecore_signs_the_same_after_restart() {
    if !kvm_available("a_killed_bn254_spacecore_signs_the_same_after_restart") {
        return;
    }
    const VICTIM: usize = 2;
    let mut cluster = Cluster::new(Tools::for_tests(), "bn-kill", 3);
    cluster.start_all();
    let options = AggregatorOptions { tasks: 6, threshold: 66, ..AggregatorOptions::default() };
    let mut aggregator = cluster.start_aggregator(&options);
    let victim = cluster.nodes[VICTIM].operator.key.id_hex();
    let signed_index = aggregator.first_response_from(&victim, LIMIT);
    cluster.kill(VICTIM);

    let decisions = aggregator.finish_decided(6, LIMIT);
    assert_eq!(completed(&decisions).len(), 6, "{decisions:#?}");
    let last = completed(&decisions).into_iter().max_by_key(|t| t["task_index"].as_u64()).unwrap();
    check_completed(&cluster, last, &[0, 1]);

    // Restarted, it answers the task it signed before with the same signature, which is the
    // CLI's signature of that digest with the key file.
    cluster.start(VICTIM);
    let node = &cluster.nodes[VICTIM];
    let created =
        events(&decisions, "task_created").find(|c| c["task_index"] == signed_index).expect("created");
    let (code, answer) = post_task(node.http.unwrap(), new_task(created).to_string().as_bytes());
    assert_eq!(code, 200, "{answer}");
    let digest = response_digest(signed_index, u64::from(signed_index) + 1);
    let expected = node.operator.cli_signature(spacecore_tests::cli(), &digest);
    assert_eq!(answer["signature"], expected);
    let signature = bn254::Signature::from_bytes(&hex_field::<64>(&answer["signature"])).expect("a G1 point");
    bn254::verify(&node.registered.bn254_key().g2(), &digest, &signature).expect("the node's signature");
    // The same index with another number: refused.
    let mut other = new_task(created);
    other["task"]["number_to_be_squared"] = json!((u64::from(signed_index) + 2).to_string());
    let (code, answer) = post_task(node.http.unwrap(), other.to_string().as_bytes());
    assert_eq!(code, 409, "{answer}");
}
