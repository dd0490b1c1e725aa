//! The JSON-RPC 2.0 endpoint: `POST /` with one `process_signed_task_response` request per
//! body (batches are refused), answered with `true` or an error object.

use std::sync::Arc;
use std::time::Instant;

use avs_protocol::SignedTaskResponse;
use avs_protocol::rpc::{ErrorCode, ErrorObject, PROCESS_SIGNED_TASK_RESPONSE, Response};
use hyper::body::Incoming;
use hyper::header::ALLOW;
use hyper::{Method, Request, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use crate::http::{BodyError, HttpResponse, read_body, response};
use crate::service::AggregationService;

/// Largest request body accepted (a signed response is about 400 bytes).
pub const MAX_BODY: usize = 64 * 1024;

/// Longest error message echoed from a parser (they may quote the input).
const MAX_MESSAGE: usize = 256;

fn truncated(mut message: String) -> String {
    if message.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}

fn failure(id: Option<u64>, code: ErrorCode, detail: impl std::fmt::Display) -> Response<bool> {
    let message = truncated(format!("{}: {detail}", code.message()));
    Response::failure(id, ErrorObject::with_message(code, message))
}

/// Reads the envelope: the id, then the request itself. Errors carry the id when it was read.
fn parse_request(body: &[u8]) -> Result<(u64, SignedTaskResponse), (Option<u64>, ErrorCode, String)> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| (None, ErrorCode::ParseError, e.to_string()))?;
    let Value::Object(mut request) = value else {
        let what = if value.is_array() { "batch requests are not supported" } else { "not a JSON object" };
        return Err((None, ErrorCode::InvalidRequest, what.into()));
    };
    let id = match request.get("id") {
        Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64(),
        Some(_) => return Err((None, ErrorCode::InvalidRequest, "`id` must be an unsigned integer".into())),
        None => {
            return Err((
                None,
                ErrorCode::InvalidRequest,
                "`id` is missing (notifications are not served)".into(),
            ));
        }
    };
    let invalid = |what: &str| (id, ErrorCode::InvalidRequest, what.to_owned());
    if request.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(invalid("`jsonrpc` must be \"2.0\""));
    }
    let Some(method) = request.get("method").and_then(Value::as_str) else {
        return Err(invalid("`method` must be a string"));
    };
    if method != PROCESS_SIGNED_TASK_RESPONSE {
        let shown: String = method.chars().take(64).collect();
        return Err((id, ErrorCode::MethodNotFound, format!("{shown:?}")));
    }
    let params =
        request.remove("params").ok_or((id, ErrorCode::InvalidParams, "`params` is missing".into()))?;
    // Deserialized from a borrowed `&Value`: `OperatorSignature` reads its hex as a borrowed
    // string, which an owned `Value` (`from_value`) cannot lend.
    let signed = SignedTaskResponse::deserialize(&params)
        .map_err(|e| (id, ErrorCode::InvalidParams, e.to_string()))?;
    // `id` is `Some` past the match above.
    Ok((id.unwrap_or_default(), signed))
}

/// Answers one request body, received at `now`. Never panics on any input.
pub fn handle_body(service: &AggregationService, body: &[u8], now: Instant) -> Response<bool> {
    match parse_request(body) {
        Err((id, code, detail)) => {
            service.metrics().response_rejected(code);
            failure(id, code, detail)
        }
        Ok((id, signed)) => match service.process_signed_task_response(&signed, now) {
            Ok(_) => Response::success(id, true),
            Err(rejection) => Response::failure(
                Some(id),
                ErrorObject::with_message(rejection.code, truncated(rejection.message)),
            ),
        },
    }
}

fn json_response(status: StatusCode, body: &Response<bool>) -> HttpResponse {
    let text = serde_json::to_vec(body).unwrap_or_else(|_| {
        br#"{"jsonrpc":"2.0","error":{"code":-32603,"message":"internal error"},"id":null}"#.to_vec()
    });
    response(status, "application/json", text)
}

/// The HTTP side: `POST /` only, body limit [`MAX_BODY`]; the JSON-RPC work (with its pairing
/// check) runs on the blocking pool.
pub async fn handle_http(service: Arc<AggregationService>, request: Request<Incoming>) -> HttpResponse {
    if request.uri().path() != "/" {
        return response(StatusCode::NOT_FOUND, "text/plain", "not found: JSON-RPC is served at /\n");
    }
    if request.method() != Method::POST {
        let mut r = response(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "use POST\n");
        r.headers_mut().insert(ALLOW, hyper::header::HeaderValue::from_static("POST"));
        return r;
    }
    let body = match read_body(request.into_body(), MAX_BODY).await {
        Ok(body) => body,
        Err(e) => {
            service.metrics().response_rejected(ErrorCode::InvalidRequest);
            let status = if matches!(e, BodyError::TooLarge(_)) {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            return json_response(status, &failure(None, ErrorCode::InvalidRequest, e));
        }
    };
    let now = Instant::now();
    let worker = Arc::clone(&service);
    match tokio::task::spawn_blocking(move || handle_body(&worker, &body, now)).await {
        Ok(answer) => json_response(StatusCode::OK, &answer),
        Err(e) => {
            eprintln!("aggregator: JSON-RPC handler failed: {e}");
            service.metrics().response_rejected(ErrorCode::InternalError);
            json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &failure(None, ErrorCode::InternalError, "handler failed"),
            )
        }
    }
}
