//! The aggregator's JSON-RPC: the body of a `process_signed_task_response` call, and what the
//! answer means.
//!
//! The aggregator answers JSON-RPC errors with HTTP 200 and a JSON-RPC error body, and its HTTP
//! errors (400, 404, 405, 413, 500) also carry one.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use spacecore_avs::Reply;

use avs_protocol::SignedTaskResponse;
use avs_protocol::rpc::{ErrorCode, Request, Response};

/// Longest message kept from a JSON-RPC error, and longest [`Outcome::Unusable`] description.
const MAX_MESSAGE: usize = 200;

/// The JSON-RPC body for `process_signed_task_response` with this id.
pub fn rpc_body(id: u64, signed: &SignedTaskResponse) -> Vec<u8> {
    // Serializing these types cannot fail: every field is a number, a string or a struct.
    serde_json::to_vec(&Request::process_signed_task_response(id, *signed)).unwrap_or_default()
}

/// What the aggregator's answer to a call means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// result `true`.
    Accepted,
    /// A JSON-RPC error the aggregator gave: code and message (message cut to 200 bytes).
    Refused {
        /// The JSON-RPC error code (see [`ErrorCode`]).
        code: i32,
        /// The error's message, cut to 200 bytes.
        message: String,
    },
    /// Not a usable answer: HTTP status other than 200, body not a JSON-RPC response, `result`
    /// other than `true`, id mismatch. Carries a short description (at most 200 bytes); for an
    /// HTTP status other than 200 it starts with `HTTP {status}`.
    Unusable(String),
}

/// Classifies the aggregator's answer to call `id`.
///
/// An error answer whose id is `null` (the aggregator could not read the request) is a refusal
/// like one carrying `id`; a `true` result must carry `id`.
pub fn outcome(response: &Reply, id: u64) -> Outcome {
    let parsed = serde_json::from_slice::<Response<bool>>(&response.body);
    if response.status != 200 {
        let description = match parsed {
            Ok(Response { error: Some(error), .. }) => {
                format!("HTTP {}: JSON-RPC error {}: {}", response.status, error.code, error.message)
            }
            _ => format!("HTTP {}", response.status),
        };
        return Outcome::Unusable(cut(&description, MAX_MESSAGE));
    }
    let Ok(parsed) = parsed else {
        return Outcome::Unusable("body is not a JSON-RPC response".into());
    };
    match (parsed.result, parsed.error, parsed.id) {
        (Some(_), Some(_), _) => Outcome::Unusable("response carries both result and error".into()),
        (None, None, _) => Outcome::Unusable("response carries neither result nor error".into()),
        (_, _, Some(other)) if other != id => {
            Outcome::Unusable(cut(&format!("response id {other} does not match call {id}"), MAX_MESSAGE))
        }
        (None, Some(error), _) => {
            Outcome::Refused { code: error.code, message: cut(&error.message, MAX_MESSAGE) }
        }
        (Some(_), None, None) => {
            Outcome::Unusable(cut(&format!("result without id for call {id}"), MAX_MESSAGE))
        }
        (Some(true), None, Some(_)) => Outcome::Accepted,
        (Some(false), None, Some(_)) => Outcome::Unusable("result is false".into()),
    }
}

/// Whether a call should be retried later: refused with code 1001 (task not found yet), or
/// unusable because of an HTTP 5xx status.
pub fn should_retry(outcome: &Outcome) -> bool {
    match outcome {
        Outcome::Accepted => false,
        Outcome::Refused { code, .. } => ErrorCode::from_code(*code).is_some_and(|c| c.is_retryable()),
        Outcome::Unusable(description) => http_status(description).is_some_and(|s| (500..600).contains(&s)),
    }
}

/// The status at the start of an [`Outcome::Unusable`] description (`HTTP {status}`), if any.
fn http_status(description: &str) -> Option<u16> {
    let rest = description.strip_prefix("HTTP ")?;
    let digits = rest.get(..3)?;
    let after = rest.get(3..).unwrap_or("");
    if !digits.bytes().all(|b| b.is_ascii_digit()) || after.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `s` cut to at most `max` bytes, at a character boundary.
fn cut(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    String::from(&s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCEPTED: &str = r#"{"jsonrpc":"2.0","result":true,"id":3}"#;
    use avs_protocol::rpc::ErrorObject;
    use avs_protocol::{OperatorSignature, TaskResponse, U256};

    fn signed() -> SignedTaskResponse {
        SignedTaskResponse {
            task_response: TaskResponse { reference_task_index: 7, number_squared: U256::from(81u64) },
            signature: OperatorSignature::Bls12381([0xab; 96]),
            operator_id: [0x11; 32],
        }
    }

    fn http(status: u16, body: &str) -> Reply {
        Reply { status, body: body.as_bytes().to_vec() }
    }

    #[test]
    fn rpc_body_is_the_protocol_request() {
        let body = rpc_body(42, &signed());
        let parsed: Request<SignedTaskResponse> = serde_json::from_slice(&body).unwrap();
        assert_eq!(parsed, Request::process_signed_task_response(42, signed()));
        let text = core::str::from_utf8(&body).unwrap();
        assert!(text.contains(r#""method":"process_signed_task_response""#), "{text}");
        assert!(text.contains(r#""id":42"#), "{text}");
        assert!(text.contains(r#""jsonrpc":"2.0""#), "{text}");
    }

    #[test]
    fn hostile_bodies_never_panic() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet: &[u8] = br#"{}[]:,"0123456789-+.eE truefalsnjsonrpcidresulterror\u00"#;
        for round in 0..3000 {
            let mut body = if round % 3 == 0 { br#"{"jsonrpc":"2.0","#.to_vec() } else { Vec::new() };
            for _ in 0..(next() % 200) {
                let r = next();
                body.push(if round % 2 == 0 {
                    alphabet[(r % alphabet.len() as u64) as usize]
                } else {
                    r as u8
                });
            }
            let status = [200, 500, 404][(next() % 3) as usize];
            let _ = should_retry(&outcome(&Reply { status, body }, 1));
        }
    }

    #[test]
    fn outcome_accepted() {
        assert_eq!(outcome(&http(200, ACCEPTED), 3), Outcome::Accepted);
        let spaced = r#" { "id" : 3 , "result" : true , "jsonrpc" : "2.0" } "#;
        assert_eq!(outcome(&http(200, spaced), 3), Outcome::Accepted);
        let built = serde_json::to_vec(&Response::success(u64::MAX, true)).unwrap();
        assert_eq!(outcome(&Reply { status: 200, body: built }, u64::MAX), Outcome::Accepted);
    }

    #[test]
    fn outcome_refused_for_every_code() {
        for code in ErrorCode::ALL {
            let body =
                serde_json::to_vec(&Response::<bool>::failure(Some(5), ErrorObject::new(code))).unwrap();
            let expected = Outcome::Refused { code: code.code(), message: code.message().into() };
            assert_eq!(outcome(&Reply { status: 200, body }, 5), expected, "{code:?}");
        }
        // A code this version does not know, and an error with a null id.
        let unknown = r#"{"jsonrpc":"2.0","error":{"code":-1,"message":"odd"},"id":5}"#;
        assert_eq!(outcome(&http(200, unknown), 5), Outcome::Refused { code: -1, message: "odd".into() });
        let null_id = r#"{"jsonrpc":"2.0","error":{"code":-32700,"message":"parse error"},"id":null}"#;
        assert_eq!(
            outcome(&http(200, null_id), 5),
            Outcome::Refused { code: -32700, message: "parse error".into() }
        );
    }

    #[test]
    fn refused_message_is_cut_to_200_bytes() {
        let long = "é".repeat(150); // 300 bytes, two per character
        let body = serde_json::to_vec(&Response::<bool>::failure(
            Some(1),
            ErrorObject::with_message(ErrorCode::InternalError, &long),
        ))
        .unwrap();
        let Outcome::Refused { message, .. } = outcome(&Reply { status: 200, body }, 1) else {
            panic!("not refused")
        };
        assert_eq!(message.len(), 200);
        assert_eq!(message, "é".repeat(100));
        // Odd cut point: 'x' then two-byte characters, cut before a half character.
        let odd = format!("x{}", "é".repeat(150));
        assert_eq!(cut(&odd, 200).len(), 199);
        assert_eq!(cut("short", 200), "short");
    }

    #[test]
    fn outcome_unusable() {
        let unusable = |status: u16, body: &str, id: u64| match outcome(&http(status, body), id) {
            Outcome::Unusable(description) => description,
            other => panic!("{other:?} for {body}"),
        };
        assert_eq!(unusable(200, r#"{"jsonrpc":"2.0","result":false,"id":3}"#, 3), "result is false");
        assert_eq!(unusable(200, ACCEPTED, 4), "response id 3 does not match call 4");
        let mismatched_error = r#"{"jsonrpc":"2.0","error":{"code":1001,"message":"m"},"id":9}"#;
        assert_eq!(unusable(200, mismatched_error, 4), "response id 9 does not match call 4");
        assert_eq!(
            unusable(200, r#"{"jsonrpc":"2.0","result":true,"id":null}"#, 3),
            "result without id for call 3"
        );
        assert_eq!(
            unusable(200, r#"{"jsonrpc":"2.0","id":3}"#, 3),
            "response carries neither result nor error"
        );
        assert_eq!(
            unusable(200, r#"{"jsonrpc":"2.0","result":true,"error":{"code":1,"message":""},"id":3}"#, 3),
            "response carries both result and error"
        );
        for garbage in [
            "",
            "garbage",
            "<html>hi</html>",
            r#"{"jsonrpc":"1.0","result":true,"id":3}"#,
            r#"{"result":true,"id":3}"#,
            r#"{"jsonrpc":"2.0","result":1,"id":3}"#,
            r#"{"jsonrpc":"2.0","result":"true","id":3}"#,
            r#"{"jsonrpc":"2.0","result":true,"id":-3}"#,
            r#"{"jsonrpc":"2.0","result":true,"id":3} trailing"#,
            "[true]",
        ] {
            assert_eq!(unusable(200, garbage, 3), "body is not a JSON-RPC response", "{garbage}");
        }
        let internal = r#"{"jsonrpc":"2.0","error":{"code":-32603,"message":"internal error"},"id":null}"#;
        assert_eq!(unusable(500, internal, 3), "HTTP 500: JSON-RPC error -32603: internal error");
        // Even a body saying true is unusable with another status.
        assert_eq!(unusable(404, ACCEPTED, 3), "HTTP 404");
        assert_eq!(unusable(502, "Bad Gateway", 3), "HTTP 502");
        let too_large = r#"{"jsonrpc":"2.0","error":{"code":-32600,"message":"body too large"},"id":null}"#;
        assert_eq!(unusable(413, too_large, 3), "HTTP 413: JSON-RPC error -32600: body too large");
        let long =
            format!(r#"{{"jsonrpc":"2.0","error":{{"code":1,"message":"{}"}},"id":1}}"#, "m".repeat(500));
        assert_eq!(unusable(500, &long, 1).len(), 200);
    }

    #[test]
    fn should_retry_truth_table() {
        assert!(!should_retry(&Outcome::Accepted));
        for code in ErrorCode::ALL {
            let refused = Outcome::Refused { code: code.code(), message: String::new() };
            assert_eq!(should_retry(&refused), code == ErrorCode::TaskNotFound, "{code:?}");
        }
        assert!(should_retry(&Outcome::Refused { code: 1001, message: "x".into() }));
        assert!(!should_retry(&Outcome::Refused { code: 0, message: String::new() }));
        assert!(!should_retry(&Outcome::Refused { code: 9999, message: String::new() }));
        for status in [500u16, 502, 503, 504, 599] {
            assert!(should_retry(&outcome(&http(status, ""), 1)), "{status}");
        }
        for status in [201u16, 204, 301, 400, 404, 405, 413, 499, 600, 999] {
            assert!(!should_retry(&outcome(&http(status, ""), 1)), "{status}");
        }
        // Unusable answers from a 200 are not retried.
        assert!(!should_retry(&outcome(&http(200, "garbage"), 1)));
        assert!(!should_retry(&outcome(&http(200, ACCEPTED), 4)));
        assert!(!should_retry(&outcome(&http(200, r#"{"jsonrpc":"2.0","result":false,"id":1}"#), 1)));
        // Descriptions are read strictly.
        assert!(should_retry(&Outcome::Unusable("HTTP 503".into())));
        assert!(should_retry(&Outcome::Unusable("HTTP 500: whatever".into())));
        for description in
            ["HTTP 5000", "HTTP 5", "HTTP 50x", "http 500", " HTTP 500", "body HTTP 500", "HTTP é00"]
        {
            assert!(!should_retry(&Outcome::Unusable(description.into())), "{description}");
        }
    }
}
