//! AVSs on the SDK, booted: the second AVS (`avs/metered-api`: purchase tokens, quotas kept on
//! the disk, answers attested by the operator's BN254 key), an AVS written from the
//! `cargo xtask new-avs` template outside the repository, and two AVS images side by side.
//!
//! Images are built by `cargo xtask build-image --avs PATH`, as an AVS developer builds them,
//! into an image store of the test's own.

use avs_protocol::ecdsa;
use avs_protocol::encoding::to_hex;
use metered_api::{call_message, token_message};
use serde_json::{Value, json};
use spacecore_tests::cluster::{Cluster, NodeSetup, Tools, post_task, task_source};
use spacecore_tests::{build_image_into, connect, http, http_json, kvm_available, workspace, xtask};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// The metered-api image, built once per test binary.
fn metered_api_image() -> &'static Path {
    static IMAGE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &IMAGE
        .get_or_init(|| {
            let store = tempfile::Builder::new().prefix("spacecore-sdk-store-").tempdir().unwrap();
            let elf =
                build_image_into(store.path(), Some(&workspace().join("avs/metered-api")), "metered-api");
            (store, elf)
        })
        .1
}

/// A purchase token for `quota` calls, signed by the AVS's authority (the cluster's task
/// source, whose address every spec names as `spec.avs.task_signer`) with EIP-191.
fn token(id: [u8; 32], quota: u32) -> Value {
    let signature = task_source().sign_prehash(&ecdsa::eip191_hash(&token_message(&id, quota)));
    json!({"id": to_hex(&id), "quota": quota, "signature": to_hex(&signature)})
}

fn call(addr: SocketAddr, token: &Value, nonce: u64, input: &str) -> (u16, Value) {
    let body = serde_json::to_vec(&json!({"token": token, "nonce": nonce, "input": input})).unwrap();
    let (status, answer) = http_json(&mut connect(addr), "POST", "/api/call", &body);
    (status, serde_json::from_slice(&answer).unwrap_or(Value::Null))
}

/// Checks an answer's attestation with the operator's registered BN254 key.
fn check_attested(cluster: &Cluster, answer: &Value, id: [u8; 32], nonce: u64, input: &str) {
    let output = answer["output"].as_str().expect("output");
    assert_eq!(output, to_hex(&avs_protocol::keccak256(input.as_bytes())));
    let message = call_message(&id, nonce, input.as_bytes(), output.as_bytes());
    let digest = spacecore_avs::attestation_digest("metered-api", &message);
    let bytes: [u8; 64] = avs_protocol::encoding::from_hex(answer["signature"].as_str().unwrap())
        .unwrap()
        .try_into()
        .expect("a BN254 signature is 64 bytes");
    let signature = avs_protocol::bn254::Signature::from_bytes(&bytes).expect("a G1 point");
    let node = &cluster.nodes[0];
    avs_protocol::bn254::verify(&node.registered.bn254_key().g2(), &digest, &signature)
        .expect("the operator's attestation of the call");
    assert_eq!(answer["operator_id"], node.registered.id_hex());
}

fn metered_cluster(prefix: &str) -> Cluster {
    let tools = Tools { image: metered_api_image().to_path_buf(), ..Tools::for_tests() };
    let mut cluster = Cluster::with_setup(tools, prefix, 1, &NodeSetup::default());
    cluster.start(0);
    cluster
}

#[test]
fn metered_api_counts_quotas_durably_and_attests_every_answer() {
    if !kvm_available("metered_api_counts_quotas_durably_and_attests_every_answer") {
        return;
    }
    let mut cluster = metered_cluster("metered");
    let addr = cluster.nodes[0].http.unwrap();
    let (a, b) = ([0xa1; 32], [0xb2; 32]);

    let (status, answer) = call(addr, &token(a, 2), 1, "first");
    assert_eq!(status, 200, "{answer}");
    assert_eq!((answer["used"].as_u64(), answer["repeated"].as_bool()), (Some(1), Some(false)));
    check_attested(&cluster, &answer, a, 1, "first");

    // Bad tokens: a quota the authority did not sign, a signature by another key, none.
    let mut forged = token(a, 2);
    forged["quota"] = json!(1_000_000);
    assert_eq!(call(addr, &forged, 2, "x").0, 401);
    let stranger = ecdsa::SecretKey::from_bytes(&[0x33; 32]).unwrap();
    let by_stranger = stranger.sign_prehash(&ecdsa::eip191_hash(&token_message(&b, 5)));
    let foreign = json!({"id": to_hex(&b), "quota": 5, "signature": to_hex(&by_stranger)});
    assert_eq!(call(addr, &foreign, 1, "x").0, 401);
    assert_eq!(http_json(&mut connect(addr), "POST", "/api/call", b"{\"token\":").0, 400);

    // A replayed call: refused; the same call retried: answered again, not counted.
    assert_eq!(call(addr, &token(a, 2), 1, "another input").0, 409);
    let (status, again) = call(addr, &token(a, 2), 1, "first");
    assert_eq!((status, again["repeated"].as_bool(), again["used"].as_u64()), (200, Some(true), Some(1)));

    // The second call spends the quota; the third is refused.
    assert_eq!(call(addr, &token(a, 2), 2, "second").1["used"], 2);
    assert_eq!(call(addr, &token(a, 2), 3, "third").0, 429);

    // A restart forgets nothing: still spent, the last call still answered without a count.
    let (code, output) = cluster.stop(0);
    assert_eq!(code, Some(0), "{output}");
    cluster.start(0);
    let addr = cluster.nodes[0].http.unwrap();
    assert_eq!(call(addr, &token(a, 2), 4, "fourth").0, 429, "the quota is still spent after a restart");
    let (status, again) = call(addr, &token(a, 2), 2, "second");
    assert_eq!((status, again["used"].as_u64(), again["repeated"].as_bool()), (200, Some(2), Some(true)));
    let (status, usage) = http(&mut connect(addr), "GET", &format!("/api/tokens/{}", to_hex(&a)), b"");
    assert_eq!(status, 200);
    let usage: Value = serde_json::from_slice(&usage).unwrap();
    assert_eq!((usage["used"].as_u64(), usage["nonce"].as_u64()), (Some(2), Some(2)));
    let (status, answer) = call(addr, &token(b, 1), 1, "b's");
    assert_eq!(status, 200, "{answer}");
    check_attested(&cluster, &answer, b, 1, "b's");

    // Its metrics and its service, next to the runtime's, in promtool's judgement.
    let (status, metrics) = http(&mut connect(addr), "GET", "/metrics", b"");
    assert_eq!(status, 200);
    let metrics = String::from_utf8(metrics).unwrap();
    test_support::assert_promtool_passes("a metered-api node's /metrics", &metrics);
    for line in [
        "metered_api_calls_total{outcome=\"served\"} 1",
        "metered_api_calls_total{outcome=\"repeated\"} 1",
        "metered_api_calls_total{outcome=\"exhausted\"} 1",
        "metered_api_tokens 2",
        "metered_api_performance_score 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "no `{line}` after the restart:\n{metrics}");
    }
    let (status, services) = http(&mut connect(addr), "GET", "/eigen/node/services", b"");
    assert_eq!(status, 200);
    let services: Value = serde_json::from_slice(&services).unwrap();
    let ledger = services["services"].as_array().unwrap().iter().find(|s| s["id"] == "ledger");
    assert_eq!(ledger.map(|s| s["status"].clone()), Some(json!("Up")), "{services}");
    // The runtime's own paths stay the runtime's.
    assert_eq!(http(&mut connect(addr), "GET", "/api/other", b"").0, 404);
    cluster.stop(0);
}

#[test]
fn two_avs_images_run_side_by_side() {
    if !kvm_available("two_avs_images_run_side_by_side") {
        return;
    }
    let mut squaring = Cluster::new(Tools::for_tests(), "squaring", 1);
    let mut metered = metered_cluster("metered-side");
    squaring.start(0);
    let (squaring_addr, metered_addr) = (squaring.nodes[0].http.unwrap(), metered.nodes[0].http.unwrap());
    // incredible-squaring signs a pushed task; the API service does not take tasks.
    let task = serde_json::to_vec(&spacecore_tests::cluster::pushed_task(0, 7)).unwrap();
    let (status, signed) = post_task(squaring_addr, &task);
    assert_eq!(status, 200, "{signed}");
    assert_eq!(http(&mut connect(squaring_addr), "POST", "/api/call", b"{}").0, 404);
    // The API service answers calls; its disk, keys and namespace are its own.
    let (status, answer) = call(metered_addr, &token([7; 32], 1), 1, "side by side");
    assert_eq!(status, 200, "{answer}");
    assert_ne!(squaring.nodes[0].disk, metered.nodes[0].disk);
    assert_ne!(squaring.nodes[0].registered.id_hex(), answer["operator_id"].as_str().unwrap());
    squaring.stop(0);
    metered.stop(0);
}

/// The example of two AVSs on one host (`examples/two-avs/`): both specs resolve their images
/// from one store, each to its own AVS's image.
#[test]
fn the_two_avs_example_takes_both_images_from_one_store() {
    let store = tempfile::Builder::new().prefix("spacecore-two-avs-store-").tempdir().unwrap();
    build_image_into(store.path(), Some(&workspace().join("avs/metered-api")), "metered-api");
    build_image_into(store.path(), None, "spacecore");
    for (spec, image) in [("squaring", "spacecore"), ("metered-api", "metered-api")] {
        let spec = workspace().join("examples/two-avs").join(format!("{spec}.toml"));
        let output = Command::new(spacecore_tests::launcher())
            .args(["--check", "--json"])
            .arg(&spec)
            .env("SPACECORE_IMAGE_STORE", store.path())
            .output()
            .expect("run hac-launch --check");
        assert!(output.status.success(), "{}: {}", spec.display(), String::from_utf8_lossy(&output.stderr));
        let plan: Value = serde_json::from_slice(&output.stdout).expect("the plan as JSON");
        let resolved = Path::new(plan["resolved_image"]["path"].as_str().expect("the resolved image"));
        assert!(resolved.starts_with(store.path().join(image)), "{}: {plan}", spec.display());
    }
}

#[test]
fn an_avs_from_the_template_builds_passes_its_tests_boots_and_serves() {
    if !kvm_available("an_avs_from_the_template_builds_passes_its_tests_boots_and_serves") {
        return;
    }
    // Outside the repository, as an AVS team's own crate.
    let outside = tempfile::Builder::new().prefix("spacecore-new-avs-").tempdir().unwrap();
    let dir = outside.path().join("hello-operators");
    let status =
        xtask(["new-avs", "hello-operators", "--dir"]).arg(&dir).status().expect("run cargo xtask new-avs");
    assert!(status.success(), "new-avs failed: {status}");
    let tested = Command::new(env!("CARGO"))
        .args(["test", "--quiet"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", outside.path().join("target"))
        .status()
        .expect("run cargo test in the new crate");
    assert!(tested.success(), "the new AVS's own tests failed: {tested}");
    let store = outside.path().join("store");
    let image = build_image_into(&store, Some(&dir), "hello-operators");

    let tools = Tools { image, ..Tools::for_tests() };
    let mut cluster = Cluster::with_setup(tools, "hello", 1, &NodeSetup::default());
    // The endpoint the spec names as the aggregator: a server of the test's, which answers
    // `POST /hello` with what it got and anything else (the runtime's probes) with 405.
    let endpoint =
        std::net::TcpListener::bind(cluster.aggregator_addr).expect("bind the aggregator's address");
    let (got_tx, got_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || serve_endpoint(endpoint, got_tx));
    cluster.start(0);
    let addr = cluster.nodes[0].http.unwrap();
    for calls in 1..=2 {
        let (status, body) = http(&mut connect(addr), "GET", "/hello", b"");
        assert_eq!(status, 200);
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["greeting"], "hello from hello-operators");
        assert_eq!(body["calls"], calls);
    }
    let (status, attested) = http(&mut connect(addr), "POST", "/hello/attest", b"operators");
    assert_eq!(status, 200);
    let attested: Value = serde_json::from_slice(&attested).unwrap();
    assert_eq!(attested["scheme"], "bn254");
    // An outbound call through the relay to the named endpoint, answered later.
    let (status, sent) = http(&mut connect(addr), "POST", "/hello/forward", b"{\"to\":\"the aggregator\"}");
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&sent));
    let body = got_rx.recv_timeout(Duration::from_secs(10)).expect("the endpoint got no POST /hello");
    assert_eq!(body, b"{\"to\":\"the aggregator\"}");
    let mut outcome = Value::Null;
    for _ in 0..200 {
        let (_, shown) = http(&mut connect(addr), "GET", "/hello/forwarded", b"");
        outcome = serde_json::from_slice(&shown).unwrap();
        if outcome.get("status").is_some() || outcome.get("error").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        (outcome["status"].as_u64(), outcome["body"].as_str()),
        (Some(200), Some("got 23 bytes")),
        "{outcome}"
    );
    let (_, metrics) = http(&mut connect(addr), "GET", "/metrics", b"");
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(metrics.lines().any(|l| l == "hello_operators_calls_total 2"), "{metrics}");
    cluster.stop(0);
}

/// Answers each connection to `listener` once: `POST /hello` with `got N bytes` (and hands the
/// body to `got`), anything else with 405. Ends when the test's receiver is gone.
fn serve_endpoint(listener: std::net::TcpListener, got: std::sync::mpsc::Sender<Vec<u8>>) {
    use std::io::{Read, Write};
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let (head, length) = loop {
            let Ok(n) = stream.read(&mut chunk) else { break (String::new(), 0) };
            if n == 0 {
                break (String::new(), 0);
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end + 4]).to_string();
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0usize);
                while buf.len() < end + 4 + length {
                    match stream.read(&mut chunk) {
                        Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                        _ => break,
                    }
                }
                buf.drain(..end + 4);
                break (head, length);
            }
        };
        let answer = if head.starts_with("POST /hello ") {
            let body = buf[..length.min(buf.len())].to_vec();
            let text = format!("got {} bytes", body.len());
            if got.send(body).is_err() {
                return;
            }
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}", text.len())
        } else {
            "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned()
        };
        let _ = stream.write_all(answer.as_bytes());
    }
}
