//! BN254 operator sets, EigenLayer's scheme: the operators file (G1 key as hex or coordinates,
//! G2 key in the contracts' order, proof of possession, operator id), the aggregation service
//! (quorum, non-signers with their G1 keys, quorum aggregate keys, every kind of bad signature
//! refused), and a whole round over JSON-RPC with fake nodes.

mod common;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aggregator::operators::{G1Key, G2Key, OperatorEntry, OperatorSetFile};
use aggregator::{
    Aggregate, AggregatedResponse, Bn254Aggregate, DecisionLog, GeneratorConfig, OperatorSet,
    OperatorSetError,
};
use avs_protocol::encoding::{from_hex, to_hex};
use avs_protocol::rpc::ErrorCode;
use avs_protocol::{OperatorSignature, Scheme, SignedTaskResponse, TaskResponse, U256, bn254, keccak256};
use common::*;

const EXPIRY: Duration = Duration::from_secs(10);

fn bn254_aggregate(aggregate: &AggregatedResponse) -> &Bn254Aggregate {
    match &aggregate.aggregate {
        Aggregate::Bn254(a) => a,
        other => panic!("a BN254 set gives a BN254 aggregate, not {other:?}"),
    }
}

/// Checks a BN254 aggregate from the individual responses alone, with `avs_protocol::bn254`
/// and none of the service's code: the digest from the ABI encoding, each signature against its
/// signer's G2 key, the sums recomputed, the aggregate verified with the summed G2 key, the two
/// aggregate keys paired, and every quorum's aggregate key as the sum of signers and
/// non-signers.
fn verify_independently(
    aggregate: &AggregatedResponse,
    signed: &[(SignedTaskResponse, bn254::PublicKey)],
    non_signers: &[bn254::PublicKey],
) {
    let digest = abi_digest(&aggregate.task_response);
    assert_eq!(aggregate.digest, digest);
    let mut signatures = Vec::new();
    for (s, pk) in signed {
        let OperatorSignature::Bn254(bytes) = s.signature else { panic!("not a BN254 signature") };
        let signature = bn254::Signature::from_bytes(&bytes).unwrap();
        bn254::verify(&pk.g2(), &digest, &signature).expect("each signer's signature verifies");
        signatures.push(signature);
    }
    let a = bn254_aggregate(aggregate);
    let sum = bn254::aggregate_signatures(&signatures.iter().collect::<Vec<_>>()).unwrap();
    assert_eq!(sum, a.signature);
    let g2: Vec<bn254::G2Point> = signed.iter().map(|(_, pk)| pk.g2()).collect();
    assert_eq!(bn254::aggregate_g2(&g2.iter().collect::<Vec<_>>()).unwrap(), a.apk_g2);
    let g1: Vec<bn254::G1Point> = signed.iter().map(|(_, pk)| pk.g1()).collect();
    assert_eq!(bn254::aggregate_g1(&g1.iter().collect::<Vec<_>>()).unwrap(), a.signers_apk_g1);
    bn254::verify(&a.apk_g2, &digest, &a.signature).expect("the aggregate verifies with apkG2");
    bn254::PublicKey::new(a.signers_apk_g1, a.apk_g2).expect("apkG1 and apkG2 have one secret");
    // The aggregate does not verify over another message.
    assert!(bn254::verify(&a.apk_g2, &keccak256(b"another message"), &a.signature).is_err());

    let mut ids: Vec<[u8; 32]> = signed.iter().map(|(s, _)| s.operator_id).collect();
    ids.sort_unstable();
    assert_eq!(aggregate.signers, ids);
    let mut absent: Vec<([u8; 32], bn254::G1Point)> =
        non_signers.iter().map(|pk| (keccak256(&pk.g1().to_bytes()), pk.g1())).collect();
    absent.sort_unstable_by_key(|(id, _)| *id);
    assert_eq!(aggregate.non_signers, absent.iter().map(|(id, _)| *id).collect::<Vec<_>>());
    assert_eq!(a.non_signer_pubkeys, absent.iter().map(|(_, g1)| *g1).collect::<Vec<_>>());
    // One quorum: its aggregate key is every operator's G1 key, signer or not.
    let everyone: Vec<bn254::G1Point> = g1.iter().copied().chain(absent.iter().map(|(_, g1)| *g1)).collect();
    assert_eq!(a.quorum_apks, vec![(0, bn254::aggregate_g1(&everyone.iter().collect::<Vec<_>>()).unwrap())]);
}

// ---- the operators file ----

fn error(set: OperatorSetFile) -> String {
    OperatorSet::from_toml_str(&toml::to_string(&set).unwrap()).expect_err("refused").to_string()
}

fn one(entry: OperatorEntry) -> OperatorSetFile {
    OperatorSetFile { scheme: None, operator: vec![entry] }
}

fn base() -> OperatorEntry {
    bn_entry("a", &bn_key(1), &[(0, 1)], "http://127.0.0.1:1")
}

#[test]
fn documented_bn254_format_loads_with_hex_or_coordinates() {
    let (a, b) = (bn_key(1), bn_key(2));
    let (pa, pb) = (a.public_key(), b.public_key());
    let g1b = pb.g1().to_bytes();
    // Coordinates: X in decimal, Y in hex, as either may be written.
    let x = U256::from_be_bytes::<32>(g1b[..32].try_into().unwrap()).to_string();
    let y = to_hex(&g1b[32..]);
    // G2 as `keys pubkey --json` prints it: [c1, c0] per coordinate, in hex.
    let g2b = pb.g2().to_bytes();
    let part = |i: usize| to_hex(&g2b[32 * i..32 * (i + 1)]);
    let (x1, x0, y1, y0) = (part(0), part(1), part(2), part(3));
    let alpha = documented_alpha(
        &to_hex(&pa.operator_id()),
        &format!("g1 = \"{}\"\ng2 = \"{}\"", to_hex(&pa.g1().to_bytes()), to_hex(&pa.g2().to_bytes())),
        &to_hex(&bn254::pop_prove(&a).to_bytes()),
    );
    let text = format!(
        r#"
scheme = "bn254"

{alpha}
[[operator]]
id = "{}"
g1 = {{ x = "{x}", y = "{y}" }}
g2 = {{ x = ["{x1}", "{x0}"], y = ["{y1}", "{y0}"] }}
pop = "{}"
stake = {{ 1 = 25 }}
address = "http://127.0.0.1:8081"
"#,
        to_hex(&pb.operator_id()),
        to_hex(&bn254::pop_prove(&b).to_bytes()),
    );
    let set = OperatorSet::from_toml_str(&text).unwrap();
    assert_eq!(set.scheme(), Scheme::Bn254);
    assert_eq!(set.len(), 2);
    let alpha = set.get(&pa.operator_id()).unwrap();
    assert_eq!(alpha.public_key, avs_protocol::OperatorPublicKey::Bn254(pa));
    assert_eq!(set.get(&pb.operator_id()).unwrap().public_key.scheme(), Scheme::Bn254);
    // The operator id is EigenLayer's: keccak256(X ‖ Y) of the G1 key.
    assert_eq!(alpha.id, keccak256(&pa.g1().to_bytes()));
    // Quorum 0 has alpha alone, quorum 1 both.
    assert_eq!(set.quorum_apk(0), Some(&pa.g1()));
    assert_eq!(set.quorum_apk(1), Some(&bn254::aggregate_g1(&[&pa.g1(), &pb.g1()]).unwrap()));
    assert_eq!(set.quorum_apk(2), None);
    // Without `scheme`, the keys tell it.
    let inferred = OperatorSet::from_toml_str(&text.replace("scheme = \"bn254\"", "")).unwrap();
    assert_eq!(inferred.scheme(), Scheme::Bn254);
}

#[test]
fn bls12_381_sets_are_still_read_and_say_their_scheme() {
    let set = OperatorSet::from_entries(&[entry("a", &key(1), &[(0, 1)], "http://127.0.0.1:1")]).unwrap();
    assert_eq!(set.scheme(), Scheme::Bls12381);
    assert_eq!(set.quorum_apk(0), None);
}

#[test]
fn bn254_keys_are_checked_field_by_field() {
    let (a, b) = (bn_key(1), bn_key(2));
    let (pa, pb) = (a.public_key(), b.public_key());
    type Mutation = Box<dyn Fn(&mut OperatorEntry)>;
    let swapped = {
        let g2 = pa.g2().to_bytes();
        let mut out = g2;
        out[..32].copy_from_slice(&g2[32..64]);
        out[32..64].copy_from_slice(&g2[..32]);
        to_hex(&out)
    };
    let cases: Vec<(Mutation, &str)> = vec![
        // The G2 key of another secret: the halves do not belong together.
        (
            Box::new(move |e| e.g2 = Some(G2Key::Hex(to_hex(&pb.g2().to_bytes())))),
            "`g2`: is not the G2 key of the same secret",
        ),
        // X.c0 and X.c1 exchanged: not a point of G2.
        (Box::new(move |e| e.g2 = Some(G2Key::Hex(swapped.clone()))), "`g2`: not a valid G2 point"),
        (Box::new(|e| e.g2 = Some(G2Key::Hex("0x1234".into()))), "`g2`: 2 bytes, expected 128"),
        (Box::new(|e| e.g2 = None), "`g2`: is missing"),
        // Coordinates with each pair in the wrong order ([c0, c1]).
        (
            Box::new(move |e| {
                let g2 = pa.g2().to_bytes();
                let part = |i: usize| to_hex(&g2[32 * i..32 * (i + 1)]);
                e.g2 = Some(G2Key::Coordinates { x: [part(1), part(0)], y: [part(3), part(2)] });
            }),
            "`g2`: not a valid G2 point",
        ),
        (
            Box::new(|e| {
                e.g2 = Some(G2Key::Coordinates { x: ["1".into(), "x".into()], y: ["1".into(), "1".into()] })
            }),
            "`g2`: `x[1]` is not a decimal or 0x hex number",
        ),
        (Box::new(|e| e.g1 = None), "`g1`: is missing"),
        (
            Box::new(|e| e.g1 = Some(G1Key::Hex(format!("0x{}", "00".repeat(64))))),
            "`g1`: not a valid G1 point",
        ),
        (Box::new(|e| e.g1 = Some(G1Key::Hex("0xzz".into()))), "`g1`: not 0x-prefixed hex"),
        (
            Box::new(|e| e.g1 = Some(G1Key::Coordinates { x: "1".into(), y: "3".into() })),
            "`g1`: not a valid G1 point: point is not on the curve",
        ),
        (
            Box::new(|e| e.g1 = Some(G1Key::Coordinates { x: "one".into(), y: "2".into() })),
            "`g1`: `x` is not a decimal or 0x hex number",
        ),
        // The generator (1, 2) is a valid key, but not the one `g2` and `pop` are of.
        (
            Box::new(|e| e.g1 = Some(G1Key::Coordinates { x: "1".into(), y: "2".into() })),
            "`g2`: is not the G2 key of the same secret",
        ),
        (Box::new(move |e| e.id = to_hex(&pb.operator_id())), "`id`: is not the operator id of `g1`"),
        (
            Box::new(move |e| e.pop = to_hex(&bn254::pop_prove(&b).to_bytes())),
            "`pop`: proof of possession does not verify",
        ),
        // A signature over the key bytes without the tag is not a proof of possession.
        (
            Box::new(move |e| e.pop = to_hex(&a.sign(&keccak256(&pa.g1().to_bytes())).to_bytes())),
            "`pop`: proof of possession does not verify",
        ),
        (Box::new(|e| e.pop = to_hex(&[0xff; 64])), "`pop`: not a valid signature"),
        // A BLS12-381-sized proof.
        (Box::new(|e| e.pop = to_hex(&[0x11; 96])), "`pop`: 96 bytes, expected 64"),
        (
            Box::new(|e| e.pubkey = Some(to_hex(&[1; 48]))),
            "`pubkey`: is a BLS12-381 key, but the entry also has BN254",
        ),
    ];
    for (mutate, expected) in cases {
        let mut e = base();
        mutate(&mut e);
        let message = error(one(e));
        assert!(message.contains("operator #1 (\"a\")"), "{message}");
        assert!(message.contains(expected), "expected {expected:?} in {message}");
    }
    // The id error shows the expected id.
    let mut e = base();
    e.id = to_hex(&[7; 32]);
    assert!(error(one(e)).contains(&to_hex(&keccak256(&bn_key(1).public_key().g1().to_bytes()))));
}

#[test]
fn one_set_has_one_scheme() {
    let bn = bn_entry("bn", &bn_key(1), &[(0, 1)], "http://127.0.0.1:1");
    let bls = entry("bls", &key(1), &[(0, 1)], "http://127.0.0.1:1");
    // Inferred from the first operator.
    let message = error(OperatorSetFile { scheme: None, operator: vec![bn.clone(), bls.clone()] });
    assert!(
        message.contains("operator #2 (\"bls\"): has a bls12-381 key, but the operator set is bn254")
            && message.contains("set by operator #1 (\"bn\")'s key"),
        "{message}"
    );
    let message = error(OperatorSetFile { scheme: None, operator: vec![bls.clone(), bn.clone()] });
    assert!(
        message.contains("operator #2 (\"bn\"): has a bn254 key, but the operator set is bls12-381"),
        "{message}"
    );
    // Told by `scheme`: the first entry is checked against it too.
    let message = error(OperatorSetFile { scheme: Some("bls12-381".into()), operator: vec![bn.clone()] });
    assert!(
        message.contains("operator #1 (\"bn\"): has a bn254 key")
            && message.contains("set by its `scheme` field"),
        "{message}"
    );
    let message = error(OperatorSetFile { scheme: Some("BN254".into()), operator: vec![bn.clone()] });
    assert!(message.contains("field `scheme`: \"BN254\" is not \"bn254\" or \"bls12-381\""), "{message}");
    let set = OperatorSet::from_toml_str(
        &toml::to_string(&OperatorSetFile { scheme: Some("bls12-381".into()), operator: vec![bls] }).unwrap(),
    )
    .unwrap();
    assert_eq!(set.scheme(), Scheme::Bls12381);
    // No key at all.
    let mut keyless = bn.clone();
    keyless.g1 = None;
    keyless.g2 = None;
    let message = error(one(keyless));
    assert!(
        message.contains("`g1`: is missing: give `g1` and `g2` (a BN254 operator) or `pubkey`"),
        "{message}"
    );
    // The same key twice.
    let message = error(OperatorSetFile { scheme: None, operator: vec![bn.clone(), bn] });
    assert!(
        message.contains("operator #2 (\"bn\"): field `g1`: same key and id as operator #1"),
        "{message}"
    );
    // A coordinates table with another field is a syntax error naming it.
    let text = toml::to_string(&one(base())).unwrap();
    let g1_line = text.lines().find(|l| l.starts_with("g1 =")).unwrap();
    let bad = text.replace(g1_line, "g1 = { x = \"1\", y = \"2\", z = \"3\" }");
    let message = OperatorSet::from_toml_str(&bad).unwrap_err().to_string();
    assert!(message.contains("z"), "{message}");
    assert!(matches!(
        OperatorSet::from_toml_str(&text.replace(g1_line, "g1 = 5")),
        Err(OperatorSetError::Syntax(_))
    ));
}

// ---- the aggregation service ----

#[test]
fn bn254_quorum_with_a_forgery_refused_and_the_aggregate_checked_independently() {
    let (keys, operators) = three_bn254_operators();
    let t = task(0, 9, &[0], 66);
    let (svc, log, t0) = service_with_task(operators, EXPIRY, &t);
    // Signed by a key outside the set, under operator c's id.
    let forged = answer_claiming(&bn_key(99), &t, keys[2].public_key().operator_id());
    let rejection = svc.process_signed_task_response(&forged, t0).unwrap_err();
    assert_eq!(rejection.code, ErrorCode::InvalidSignature);
    assert!(rejection.message.contains("does not verify"), "{}", rejection.message);
    let a = answer(&keys[0], &t);
    assert_eq!(svc.process_signed_task_response(&a, t0), Ok(None));
    let b = answer(&keys[1], &t);
    let aggregate =
        svc.process_signed_task_response(&b, t0 + Duration::from_millis(30)).unwrap().expect("complete");
    assert_eq!(aggregate.task_response.number_squared, U256::from(81u32));
    assert_eq!(aggregate.aggregate.scheme(), Scheme::Bn254);
    assert_eq!((aggregate.quorums[0].signed_stake, aggregate.quorums[0].total_stake), (200, 300));
    verify_independently(
        &aggregate,
        &[(a, keys[0].public_key()), (b, keys[1].public_key())],
        &[keys[2].public_key()],
    );

    // The decision line carries the BN254 fields, and they are the aggregate's.
    let lines = log.lines();
    let completed = lines.iter().find(|l| l["event"] == "task_completed").expect("task_completed");
    let agg = bn254_aggregate(&aggregate);
    assert_eq!(completed["scheme"], "bn254");
    assert_eq!(completed["aggregate_signature"], to_hex(&agg.signature.to_bytes()));
    assert_eq!(completed["apk_g2"], to_hex(&agg.apk_g2.to_bytes()));
    assert_eq!(completed["signers_apk_g1"], to_hex(&agg.signers_apk_g1.to_bytes()));
    assert_eq!(completed["non_signers"][0], to_hex(&keys[2].public_key().operator_id()));
    assert_eq!(completed["non_signer_pubkeys"][0], to_hex(&keys[2].public_key().g1().to_bytes()));
    assert_eq!(completed["quorum_apks"][0]["quorum"], 0);
    assert_eq!(completed["quorum_apks"][0]["apk"], to_hex(&agg.quorum_apks[0].1.to_bytes()));
    assert!(completed.get("aggregate_public_key").is_none(), "{completed}");
    let hex_len = |field: &str| from_hex(completed[field].as_str().unwrap()).unwrap().len();
    assert_eq!((hex_len("aggregate_signature"), hex_len("apk_g2"), hex_len("signers_apk_g1")), (64, 128, 64));
    let metrics = prom::parse(&svc.metrics().render()).unwrap();
    assert_eq!(metrics.get("aggregator_scheme_info{scheme=\"bn254\"}"), Some(1.0));
    assert_eq!(metrics.get("aggregator_last_task_non_signers"), Some(1.0));
    assert_eq!(metrics.get("aggregator_invalid_signatures_total{reason=\"verification_failed\"}"), Some(1.0));
}

#[test]
fn bad_bn254_signatures_and_other_schemes_are_invalid_and_count_nothing() {
    let (keys, operators) = three_bn254_operators();
    let t = task(4, 12, &[0], 100);
    let (svc, log, t0) = service_with_task(operators, EXPIRY, &t);
    let honest = answer(&keys[0], &t);
    let with = |signature: OperatorSignature| SignedTaskResponse { signature, ..honest };
    let g = bn_key(5).public_key().g1().to_bytes();
    let mut off_curve = g;
    off_curve[63] ^= 1;
    let mut above_p = g;
    above_p[..32].copy_from_slice(&[0xff; 32]);
    let cases = [
        (OperatorSignature::Bn254([0xff; 64]), "malformed", "bad signature"),
        // (0, 0), the contracts' identity.
        (OperatorSignature::Bn254([0; 64]), "malformed", "identity"),
        (OperatorSignature::Bn254(off_curve), "malformed", "not on the curve"),
        (OperatorSignature::Bn254(above_p), "malformed", "malformed point"),
        // A valid point that is not the signature: the proof of possession, and another
        // task's signature.
        (
            OperatorSignature::Bn254(bn254::pop_prove(&keys[0]).to_bytes()),
            "verification_failed",
            "does not verify",
        ),
        (answer(&keys[0], &task(5, 12, &[0], 100)).signature, "verification_failed", "does not verify"),
        // Another operator's genuine signature under this id.
        (answer(&keys[1], &t).signature, "verification_failed", "does not verify"),
        // BLS12-381: 96 bytes, the other scheme, even if genuine.
        (
            answer(&key(1), &t).signature,
            "wrong_scheme",
            "a bls12-381 signature (96 bytes) for an operator set of bn254 keys",
        ),
    ];
    for (signature, _, text) in &cases {
        let rejection = svc.process_signed_task_response(&with(*signature), t0).unwrap_err();
        assert_eq!(rejection.code, ErrorCode::InvalidSignature, "{signature:?}");
        assert!(rejection.message.contains(text), "expected {text:?} in {}", rejection.message);
    }
    let metrics = prom::parse(&svc.metrics().render()).unwrap();
    for reason in ["malformed", "verification_failed", "wrong_scheme"] {
        let expected = cases.iter().filter(|(_, r, _)| *r == reason).count() as f64;
        let series = format!("aggregator_invalid_signatures_total{{reason=\"{reason}\"}}");
        assert_eq!(metrics.get(&series), Some(expected), "{series}");
    }
    assert_eq!(
        metrics.get("aggregator_responses_rejected_total{code=\"1003\",reason=\"invalid_signature\"}"),
        Some(cases.len() as f64)
    );
    // A wrong answer, correctly signed.
    let wrong = TaskResponse { reference_task_index: 4, number_squared: U256::from(145u32) };
    assert_eq!(
        code(svc.process_signed_task_response(&answer_to(&keys[0], wrong), t0)),
        ErrorCode::InvalidSignature
    );
    // Nothing counted: every operator is still needed at 100 %, and each is accepted once.
    assert_eq!(svc.process_signed_task_response(&honest, t0), Ok(None));
    assert_eq!(code(svc.process_signed_task_response(&honest, t0)), ErrorCode::DuplicateResponse);
    assert_eq!(svc.process_signed_task_response(&answer(&keys[1], &t), t0), Ok(None));
    let aggregate = svc.process_signed_task_response(&answer(&keys[2], &t), t0).unwrap().expect("complete");
    assert!(aggregate.non_signers.is_empty());
    assert!(bn254_aggregate(&aggregate).non_signer_pubkeys.is_empty());
    let refused =
        log.lines().into_iter().filter(|l| l["event"] == "response" && l["accepted"] == false).count();
    assert_eq!(refused, cases.len() + 2);
}

fn answer_to(sk: &bn254::SecretKey, response: TaskResponse) -> SignedTaskResponse {
    SignedTaskResponse::sign(response, sk)
}

#[test]
fn a_bls12_381_set_refuses_bn254_signatures() {
    let keys = [key(1), key(2)];
    let operators = operator_set(&[
        entry("a", &keys[0], &[(0, 10)], "http://127.0.0.1:9"),
        entry("b", &keys[1], &[(0, 10)], "http://127.0.0.1:9"),
    ]);
    let t = task(1, 3, &[0], 100);
    let (svc, _log, t0) = service_with_task(operators, EXPIRY, &t);
    let foreign = answer_claiming(&bn_key(1), &t, keys[0].public_key().operator_id());
    let rejection = svc.process_signed_task_response(&foreign, t0).unwrap_err();
    assert_eq!(rejection.code, ErrorCode::InvalidSignature);
    assert!(
        rejection.message.contains("a bn254 signature (64 bytes) for an operator set of bls12-381 keys"),
        "{}",
        rejection.message
    );
    assert_eq!(svc.process_signed_task_response(&answer(&keys[0], &t), t0), Ok(None));
    let aggregate = svc.process_signed_task_response(&answer(&keys[1], &t), t0).unwrap().expect("complete");
    assert_eq!(aggregate.aggregate.scheme(), Scheme::Bls12381);
    let metrics = prom::parse(&svc.metrics().render()).unwrap();
    assert_eq!(metrics.get("aggregator_scheme_info{scheme=\"bls12-381\"}"), Some(1.0));
    assert_eq!(metrics.get("aggregator_invalid_signatures_total{reason=\"wrong_scheme\"}"), Some(1.0));
}

#[test]
fn non_signers_of_two_quorums_are_listed_sorted_with_their_keys() {
    let keys: Vec<bn254::SecretKey> = (1..=5).map(bn_key).collect();
    let operators = operator_set(&[
        bn_entry("a", &keys[0], &[(0, 100), (1, 10)], "http://127.0.0.1:9"),
        bn_entry("b", &keys[1], &[(0, 100)], "http://127.0.0.1:9"),
        bn_entry("c", &keys[2], &[(1, 90)], "http://127.0.0.1:9"),
        bn_entry("d", &keys[3], &[(1, 1)], "http://127.0.0.1:9"),
        // In quorum 2 only, which the task does not name: never a non-signer.
        bn_entry("e", &keys[4], &[(2, 50)], "http://127.0.0.1:9"),
    ]);
    let t = task(0, 3, &[1, 0], 50);
    let (svc, _log, t0) = service_with_task(Arc::clone(&operators), EXPIRY, &t);
    assert_eq!(svc.process_signed_task_response(&answer(&keys[0], &t), t0), Ok(None));
    let c = answer(&keys[2], &t);
    let aggregate = svc.process_signed_task_response(&c, t0).unwrap().expect("complete");
    let a = bn254_aggregate(&aggregate);
    let mut expected: Vec<([u8; 32], bn254::G1Point)> =
        [&keys[1], &keys[3]].iter().map(|k| (k.public_key().operator_id(), k.public_key().g1())).collect();
    expected.sort_unstable_by_key(|(id, _)| *id);
    assert_eq!(aggregate.non_signers, expected.iter().map(|(id, _)| *id).collect::<Vec<_>>());
    assert_eq!(a.non_signer_pubkeys, expected.iter().map(|(_, g1)| *g1).collect::<Vec<_>>());
    // Quorum aggregate keys in the task's order (1, then 0), of every member.
    let sum = |ks: &[&bn254::SecretKey]| {
        let points: Vec<bn254::G1Point> = ks.iter().map(|k| k.public_key().g1()).collect();
        bn254::aggregate_g1(&points.iter().collect::<Vec<_>>()).unwrap()
    };
    assert_eq!(
        a.quorum_apks,
        vec![(1, sum(&[&keys[0], &keys[2], &keys[3]])), (0, sum(&[&keys[0], &keys[1]]))]
    );
    let digest = aggregate.digest;
    bn254::verify(&a.apk_g2, &digest, &a.signature).unwrap();
    assert_eq!(a.signers_apk_g1, sum(&[&keys[0], &keys[2]]));
}

// ---- a whole round over JSON-RPC ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bn254_round_over_json_rpc_with_one_wrong_key() {
    let rpc = Arc::new(OnceLock::new());
    let (ka, kb, kc) = (bn_key(11), bn_key(12), bn_key(13));
    let (pa, pb, pc) = (ka.public_key(), kb.public_key(), kc.public_key());
    let a = FakeOperator::spawn(Behaviour::Honest(Box::new(ka)), rpc.clone()).await;
    let b = FakeOperator::spawn(Behaviour::Honest(Box::new(kb)), rpc.clone()).await;
    let wrong = Behaviour::WrongKey { claimed: pc.operator_id(), key: Box::new(bn_key(14)) };
    let c = FakeOperator::spawn(wrong, rpc.clone()).await;
    let operators = operator_set(&[
        bn_entry("a", &bn_key(11), &[(0, 100)], &format!("http://{}", a.addr)),
        bn_entry("b", &bn_key(12), &[(0, 100)], &format!("http://{}", b.addr)),
        bn_entry("c", &kc, &[(0, 100)], &format!("http://{}", c.addr)),
    ]);
    let (log, memory) = DecisionLog::memory();
    let generator = GeneratorConfig { first_block: 1, ..generator(2, 66) };
    let config = local_config(operators, Duration::from_secs(10), Some(generator), log);
    let (mut aggregator, mut aggregates) = start_round(config, &rpc).await;
    for _ in 0..2 {
        let aggregate =
            tokio::time::timeout(Duration::from_secs(10), aggregates.recv()).await.unwrap().unwrap();
        let agg = bn254_aggregate(&aggregate);
        assert_eq!(aggregate.non_signers, vec![pc.operator_id()]);
        assert_eq!(agg.non_signer_pubkeys, vec![pc.g1()]);
        assert_eq!(agg.apk_g2, bn254::aggregate_g2(&[&pa.g2(), &pb.g2()]).unwrap());
        let n = u64::from(aggregate.task_index) + 1;
        let response =
            TaskResponse { reference_task_index: aggregate.task_index, number_squared: U256::from(n * n) };
        bn254::verify(&agg.apk_g2, &response.digest(), &agg.signature).unwrap();
    }
    assert_eq!(aggregator.wait_generator().await, Some(2));
    assert!(aggregator.drain(Duration::from_secs(5)).await);
    let (status, body) = raw_http(aggregator.metrics_addr, "GET", "/metrics", b"").await;
    assert_eq!(status, 200);
    let metrics = prom::parse(&body).unwrap();
    assert_eq!(metrics.get("aggregator_tasks_completed_total"), Some(2.0));
    assert_eq!(metrics.get("aggregator_scheme_info{scheme=\"bn254\"}"), Some(1.0));
    assert_eq!(metrics.get("aggregator_last_task_non_signers"), Some(1.0));
    let completed: Vec<_> = memory.lines().into_iter().filter(|l| l["event"] == "task_completed").collect();
    assert_eq!(completed.len(), 2);
    assert!(
        completed
            .iter()
            .all(|l| l["scheme"] == "bn254" && l["non_signer_pubkeys"][0] == to_hex(&pc.g1().to_bytes()))
    );
    aggregator.shutdown().await;
    for op in [a, b, c] {
        op.stop();
    }
}
