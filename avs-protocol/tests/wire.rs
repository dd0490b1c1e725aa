//! The JSON wire format: exact encodings (as in `docs/protocol.md`), round trips and refusals.

use avs_protocol::rpc::{ErrorCode, ErrorObject, PROCESS_SIGNED_TASK_RESPONSE, Request, Response};
use avs_protocol::{NewTask, OperatorSignature, SignedTaskResponse, Task, TaskResponse, U256};
use serde_json::{from_str, to_string};

fn new_task() -> NewTask {
    NewTask {
        task_index: 7,
        task: Task {
            number_to_be_squared: U256::from(9u32),
            task_created_block: 100,
            quorum_numbers: vec![0, 1],
            quorum_threshold_percentage: 67,
        },
    }
}

fn signed() -> SignedTaskResponse {
    SignedTaskResponse {
        task_response: TaskResponse { reference_task_index: 7, number_squared: U256::from(81u32) },
        signature: OperatorSignature::Bls12381([0xab; 96]),
        operator_id: [0x01; 32],
    }
}

#[test]
fn task_json() {
    let json = include_str!("wire/new-task.json").trim_end();
    assert_eq!(to_string(&new_task()).unwrap(), json);
    assert_eq!(from_str::<NewTask>(json).unwrap(), new_task());
    // Hex is accepted for the uint256 on input.
    let hex = json.replace(r#""9""#, r#""0x09""#);
    assert_eq!(from_str::<NewTask>(&hex).unwrap(), new_task());
}

#[test]
fn large_numbers_survive() {
    let mut task = new_task();
    task.task.number_to_be_squared = U256::MAX;
    let json = to_string(&task).unwrap();
    assert!(
        json.contains(r#""115792089237316195423570985008687907853269984665640564039457584007913129639935""#)
    );
    assert_eq!(from_str::<NewTask>(&json).unwrap(), task);
}

#[test]
fn signed_task_response_json() {
    let json = format!(
        r#"{{"task_response":{{"reference_task_index":7,"number_squared":"81"}},"signature":"0x{}","operator_id":"0x{}"}}"#,
        "ab".repeat(96),
        "01".repeat(32)
    );
    assert_eq!(to_string(&signed()).unwrap(), json);
    assert_eq!(from_str::<SignedTaskResponse>(&json).unwrap(), signed());
}

#[test]
fn malformed_fields_are_refused() {
    let good = to_string(&signed()).unwrap();
    let short_signature = good.replace(&"ab".repeat(96), &"ab".repeat(95));
    let no_prefix = good.replace(r#""0xabab"#, r#""abab"#);
    let number_not_string = good.replace(r#""81""#, "81");
    let negative = good.replace(r#""81""#, r#""-81""#);
    let index_too_big = good.replace(r#""reference_task_index":7"#, r#""reference_task_index":4294967296"#);
    for bad in [short_signature, no_prefix, number_not_string, negative, index_too_big] {
        assert!(from_str::<SignedTaskResponse>(&bad).is_err(), "{bad}");
    }
}

#[test]
fn request_envelope() {
    let request = Request::process_signed_task_response(1, signed());
    let json = to_string(&request).unwrap();
    let params = to_string(&signed()).unwrap();
    assert_eq!(
        json,
        format!(r#"{{"jsonrpc":"2.0","method":"process_signed_task_response","params":{params},"id":1}}"#)
    );
    let back: Request<SignedTaskResponse> = from_str(&json).unwrap();
    assert_eq!(back, request);
    assert_eq!(back.method, PROCESS_SIGNED_TASK_RESPONSE);
    let wrong_version = json.replace(r#""2.0""#, r#""1.0""#);
    assert!(from_str::<Request<SignedTaskResponse>>(&wrong_version).is_err());
}

#[test]
fn response_envelopes() {
    let ok = Response::success(1, true);
    assert_eq!(to_string(&ok).unwrap(), r#"{"jsonrpc":"2.0","result":true,"id":1}"#);
    assert_eq!(
        from_str::<Response<bool>>(r#"{"jsonrpc":"2.0","result":true,"id":1}"#).unwrap().into_result(),
        Ok(true)
    );

    let err = Response::<bool>::failure(Some(2), ErrorObject::new(ErrorCode::TaskNotFound));
    let json = r#"{"jsonrpc":"2.0","error":{"code":1001,"message":"task not initialised or already completed"},"id":2}"#;
    assert_eq!(to_string(&err).unwrap(), json);
    let parsed = from_str::<Response<bool>>(json).unwrap().into_result().unwrap_err();
    assert_eq!(parsed.kind(), Some(ErrorCode::TaskNotFound));
    assert!(parsed.is_retryable());

    let parse_error = Response::<bool>::failure(None, ErrorObject::new(ErrorCode::ParseError));
    assert!(to_string(&parse_error).unwrap().ends_with(r#""id":null}"#));
    let neither = from_str::<Response<bool>>(r#"{"jsonrpc":"2.0","id":3}"#).unwrap();
    assert_eq!(neither.into_result().unwrap_err().kind(), Some(ErrorCode::InternalError));
}

#[test]
fn error_codes_are_distinct_and_only_task_not_found_is_retryable() {
    let codes: Vec<i32> = ErrorCode::ALL.iter().map(|c| c.code()).collect();
    let mut unique = codes.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), codes.len());
    for code in ErrorCode::ALL {
        assert_eq!(ErrorCode::from_code(code.code()), Some(code));
        assert_eq!(code.is_retryable(), code == ErrorCode::TaskNotFound, "{code}");
    }
    assert_eq!(ErrorCode::from_code(42), None);
    let unknown = ErrorObject { code: 42, message: "?".into() };
    assert!(!unknown.is_retryable());
}
