//! The JSON-RPC server on loopback against well-formed and hostile input: the right error code
//! for each, no panic, and the server still answering afterwards.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use aggregator::{Aggregator, DecisionLog};
use avs_protocol::rpc::{ErrorCode, Response};
use common::*;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

async fn start() -> (Aggregator, Vec<avs_protocol::bls::SecretKey>) {
    let (keys, operators) = three_operators();
    let config = local_config(operators, Duration::from_secs(30), None, DecisionLog::memory().0);
    (Aggregator::start(config).await.unwrap(), keys)
}

/// POSTs `body` to `/` and parses the JSON-RPC answer.
async fn rpc_raw(addr: SocketAddr, body: &[u8]) -> (u16, Response<bool>) {
    let (status, text) = raw_http(addr, "POST", "/", body).await;
    let response = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text:?}"));
    (status, response)
}

fn error_code(response: &Response<bool>) -> i32 {
    response.error.as_ref().map(|e| e.code).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_call_wire_format() {
    let (aggregator, keys) = start().await;
    let t = task(7, 9, &[0], 100);
    aggregator.service.initialize_task(t.clone(), Instant::now()).unwrap();
    let params = serde_json::to_value(answer(&keys[0], &t)).unwrap();
    let request =
        json!({"jsonrpc": "2.0", "method": "process_signed_task_response", "params": params, "id": 41});
    let (status, text) = raw_http(aggregator.rpc_addr, "POST", "/", request.to_string().as_bytes()).await;
    assert_eq!(status, 200);
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value, json!({"jsonrpc": "2.0", "result": true, "id": 41}));
    // The same again: a duplicate, echoed with its id.
    let (_, response) = rpc_raw(aggregator.rpc_addr, request.to_string().as_bytes()).await;
    assert_eq!(response.id, Some(41));
    assert_eq!(response.error.unwrap().kind(), Some(ErrorCode::DuplicateResponse));
    // An uninitialised task is retryable.
    let answer = call(aggregator.rpc_addr, 1, answer(&keys[1], &task(8, 2, &[0], 100))).await;
    assert!(answer.error.unwrap().is_retryable());
    aggregator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bodies_get_the_right_errors() {
    let (aggregator, keys) = start().await;
    let t = task(1, 3, &[0], 100);
    aggregator.service.initialize_task(t.clone(), Instant::now()).unwrap();
    let good = serde_json::to_value(answer(&keys[0], &t)).unwrap();
    let mut short_signature = good.clone();
    short_signature["signature"] = json!("0x1234");
    let mut numeric_square = good.clone();
    numeric_square["task_response"]["number_squared"] = json!(9);
    let envelope = |params: Value| {
        json!({"jsonrpc": "2.0", "method": "process_signed_task_response", "params": params, "id": 3})
            .to_string()
    };
    let deep = "[".repeat(20_000);
    let cases: Vec<(String, i32, Option<u64>)> = vec![
        ("".into(), -32700, None),
        ("{".into(), -32700, None),
        ("{\"jsonrpc\":\"2.0\",}".into(), -32700, None),
        (deep, -32700, None),
        ("[]".into(), -32600, None),
        (format!("[{}]", envelope(good.clone())), -32600, None),
        ("42".into(), -32600, None),
        ("null".into(), -32600, None),
        ("\"process_signed_task_response\"".into(), -32600, None),
        (r#"{"jsonrpc":"2.0","method":"process_signed_task_response","params":{}}"#.into(), -32600, None),
        (r#"{"jsonrpc":"2.0","method":"x","params":{},"id":"1"}"#.into(), -32600, None),
        (r#"{"jsonrpc":"2.0","method":"x","params":{},"id":-1}"#.into(), -32600, None),
        (r#"{"jsonrpc":"2.0","method":"x","params":{},"id":18446744073709551616}"#.into(), -32600, None),
        (r#"{"jsonrpc":"1.0","method":"x","params":{},"id":4}"#.into(), -32600, Some(4)),
        (r#"{"method":"x","params":{},"id":4}"#.into(), -32600, Some(4)),
        (r#"{"jsonrpc":"2.0","method":7,"params":{},"id":4}"#.into(), -32600, Some(4)),
        (r#"{"jsonrpc":"2.0","method":"eth_call","params":{},"id":5}"#.into(), -32601, Some(5)),
        (r#"{"jsonrpc":"2.0","method":"process_signed_task_response","id":6}"#.into(), -32602, Some(6)),
        (envelope(json!([])), -32602, Some(3)),
        (envelope(json!({})), -32602, Some(3)),
        (envelope(short_signature), -32602, Some(3)),
        (envelope(numeric_square), -32602, Some(3)),
        (
            envelope(
                json!({"task_response": good["task_response"], "signature": "0x".to_owned() + &"zz".repeat(96),
            "operator_id": good["operator_id"]}),
            ),
            -32602,
            Some(3),
        ),
    ];
    for (body, code, id) in &cases {
        let (status, response) = rpc_raw(aggregator.rpc_addr, body.as_bytes()).await;
        let shown: String = body.chars().take(80).collect();
        assert_eq!(status, 200, "{shown}");
        assert_eq!((error_code(&response), response.id), (*code, *id), "{shown}: {response:?}");
        assert!(response.result.is_none());
    }
    // Not UTF-8.
    let (_, response) = rpc_raw(aggregator.rpc_addr, &[0xff, 0xfe, b'{', 0x80]).await;
    assert_eq!(error_code(&response), -32700);

    // Too large: refused with 413 before it is parsed.
    let (status, text) = raw_http(aggregator.rpc_addr, "POST", "/", &vec![b' '; 200_000]).await;
    assert_eq!(status, 413);
    assert!(text.contains("-32600"), "{text}");
    // Wrong method and path.
    assert_eq!(raw_http(aggregator.rpc_addr, "GET", "/", b"").await.0, 405);
    assert_eq!(raw_http(aggregator.rpc_addr, "POST", "/rpc", b"{}").await.0, 404);
    // Not HTTP at all.
    let garbage = raw_exchange(aggregator.rpc_addr, b"\x00\x01\x02 nonsense \xff\r\n\r\n").await;
    assert!(garbage.is_empty() || garbage.starts_with("HTTP/1.1 400"), "{garbage:?}");

    // A client that stalls mid-body does not hold up anyone else.
    let mut stalled = tokio::net::TcpStream::connect(aggregator.rpc_addr).await.unwrap();
    stalled
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"jsonrpc\"")
        .await
        .unwrap();

    // Still serving, and the valid response still counts.
    let answer = call(aggregator.rpc_addr, 9, answer(&keys[0], &t)).await;
    assert_eq!(answer.result, Some(true), "{answer:?}");

    let (_, text) = raw_http(aggregator.metrics_addr, "GET", "/metrics", b"").await;
    let metrics = prom::parse(&text).unwrap();
    let rejected = |code: i32, reason: &str| {
        metrics
            .get(&format!("aggregator_responses_rejected_total{{code=\"{code}\",reason=\"{reason}\"}}"))
            .unwrap()
    };
    assert_eq!(rejected(-32700, "parse_error"), 5.0);
    assert_eq!(rejected(-32601, "method_not_found"), 1.0);
    assert_eq!(rejected(-32602, "invalid_params"), 6.0);
    // 12 bad envelopes and the body over the limit.
    assert_eq!(rejected(-32600, "invalid_request"), 13.0);
    assert_eq!(metrics.get("aggregator_responses_accepted_total"), Some(1.0));
    assert_eq!(raw_http(aggregator.metrics_addr, "GET", "/other", b"").await.0, 404);
    assert_eq!(raw_http(aggregator.metrics_addr, "POST", "/metrics", b"").await.0, 405);
    drop(stalled);
    aggregator.shutdown().await;
}
