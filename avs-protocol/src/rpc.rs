//! The JSON-RPC 2.0 envelope of the operator → aggregator call
//! [`PROCESS_SIGNED_TASK_RESPONSE`]: its params are a [`SignedTaskResponse`] object and its
//! result is `true`; failures carry one of the [`ErrorCode`]s.
//!
//! ```text
//! → {"jsonrpc":"2.0","method":"process_signed_task_response","params":{…},"id":1}
//! ← {"jsonrpc":"2.0","result":true,"id":1}
//! ← {"jsonrpc":"2.0","error":{"code":1001,"message":"…"},"id":1}
//! ```

use alloc::string::{String, ToString};
use core::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::types::SignedTaskResponse;

/// The method an operator's node calls on the aggregator.
pub const PROCESS_SIGNED_TASK_RESPONSE: &str = "process_signed_task_response";

/// The `"jsonrpc": "2.0"` member: serializes as `"2.0"` and refuses any other version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Version;

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("2.0")
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = String::deserialize(d)?;
        match v.as_str() {
            "2.0" => Ok(Version),
            _ => Err(serde::de::Error::invalid_value(serde::de::Unexpected::Str(&v), &"\"2.0\"")),
        }
    }
}

/// A JSON-RPC 2.0 request with params `P` and a numeric id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request<P> {
    /// Always `"2.0"`.
    pub jsonrpc: Version,
    /// The method called.
    pub method: String,
    /// The method's params (a JSON object for [`PROCESS_SIGNED_TASK_RESPONSE`]).
    pub params: P,
    /// Echoed in the response.
    pub id: u64,
}

impl Request<SignedTaskResponse> {
    /// The `process_signed_task_response` call carrying `signed`.
    pub fn process_signed_task_response(id: u64, signed: SignedTaskResponse) -> Self {
        Request { jsonrpc: Version, method: PROCESS_SIGNED_TASK_RESPONSE.into(), params: signed, id }
    }
}

/// A JSON-RPC 2.0 response: exactly one of `result` and `error` is present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response<T> {
    /// Always `"2.0"`.
    pub jsonrpc: Version,
    /// The result on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<T>,
    /// The error on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorObject>,
    /// The request's id; `null` when the request could not be read.
    pub id: Option<u64>,
}

impl<T> Response<T> {
    /// A success.
    pub fn success(id: u64, result: T) -> Self {
        Response { jsonrpc: Version, result: Some(result), error: None, id: Some(id) }
    }

    /// A failure; `id` is `None` when the request's id could not be read.
    pub fn failure(id: Option<u64>, error: ErrorObject) -> Self {
        Response { jsonrpc: Version, result: None, error: Some(error), id }
    }

    /// The result or the error; a response with neither (or both) is an
    /// [`ErrorCode::InternalError`].
    pub fn into_result(self) -> Result<T, ErrorObject> {
        match (self.result, self.error) {
            (Some(result), None) => Ok(result),
            (_, Some(error)) => Err(error),
            (None, None) => Err(ErrorObject::with_message(
                ErrorCode::InternalError,
                "response carries neither result nor error",
            )),
        }
    }
}

/// The error codes of the aggregator's JSON-RPC service: the five JSON-RPC 2.0 standard codes,
/// then this protocol's own (1001..=1005).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `-32700`: the body is not JSON.
    ParseError,
    /// `-32600`: JSON, but not a JSON-RPC 2.0 request.
    InvalidRequest,
    /// `-32601`: no such method.
    MethodNotFound,
    /// `-32602`: the params are not a well-formed [`SignedTaskResponse`].
    InvalidParams,
    /// `-32603`: the aggregator failed internally.
    InternalError,
    /// `1001`: the aggregator has not initialised the task yet, or has already completed it.
    /// Retryable: the operator may have seen the task before the aggregator did.
    TaskNotFound,
    /// `1002`: the operator is not registered in any of the task's quorums at its block.
    OperatorNotInQuorum,
    /// `1003`: the signature failed to parse, its group checks, or verification.
    InvalidSignature,
    /// `1004`: this operator already answered this task.
    DuplicateResponse,
    /// `1005`: the task's response window has passed.
    TaskExpired,
}

impl ErrorCode {
    /// Every code, in numeric order of the standard codes then the protocol's.
    pub const ALL: [ErrorCode; 10] = [
        ErrorCode::ParseError,
        ErrorCode::InvalidRequest,
        ErrorCode::MethodNotFound,
        ErrorCode::InvalidParams,
        ErrorCode::InternalError,
        ErrorCode::TaskNotFound,
        ErrorCode::OperatorNotInQuorum,
        ErrorCode::InvalidSignature,
        ErrorCode::DuplicateResponse,
        ErrorCode::TaskExpired,
    ];

    /// The numeric code on the wire.
    pub const fn code(self) -> i32 {
        match self {
            ErrorCode::ParseError => -32700,
            ErrorCode::InvalidRequest => -32600,
            ErrorCode::MethodNotFound => -32601,
            ErrorCode::InvalidParams => -32602,
            ErrorCode::InternalError => -32603,
            ErrorCode::TaskNotFound => 1001,
            ErrorCode::OperatorNotInQuorum => 1002,
            ErrorCode::InvalidSignature => 1003,
            ErrorCode::DuplicateResponse => 1004,
            ErrorCode::TaskExpired => 1005,
        }
    }

    /// The code for a numeric value, if it is one of ours.
    pub fn from_code(code: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }

    /// Whether sending the same request again later may succeed. Only
    /// [`ErrorCode::TaskNotFound`] is: every other failure would recur.
    pub const fn is_retryable(self) -> bool {
        matches!(self, ErrorCode::TaskNotFound)
    }

    /// The default message for the code.
    pub const fn message(self) -> &'static str {
        match self {
            ErrorCode::ParseError => "parse error",
            ErrorCode::InvalidRequest => "invalid request",
            ErrorCode::MethodNotFound => "method not found",
            ErrorCode::InvalidParams => "invalid params",
            ErrorCode::InternalError => "internal error",
            ErrorCode::TaskNotFound => "task not initialised or already completed",
            ErrorCode::OperatorNotInQuorum => "operator is not in the task's quorums",
            ErrorCode::InvalidSignature => "invalid signature",
            ErrorCode::DuplicateResponse => "duplicate response from this operator",
            ErrorCode::TaskExpired => "task expired",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message(), self.code())
    }
}

/// The `error` member of a response. `code` stays an integer so that codes this version does
/// not know still parse; [`ErrorObject::kind`] maps it to an [`ErrorCode`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorObject {
    /// The numeric code.
    pub code: i32,
    /// A human-readable description.
    pub message: String,
}

impl ErrorObject {
    /// The error for `code` with its default message.
    pub fn new(code: ErrorCode) -> Self {
        Self::with_message(code, code.message())
    }

    /// The error for `code` with a specific message.
    pub fn with_message(code: ErrorCode, message: impl ToString) -> Self {
        ErrorObject { code: code.code(), message: message.to_string() }
    }

    /// The code, if it is one of ours.
    pub fn kind(&self) -> Option<ErrorCode> {
        ErrorCode::from_code(self.code)
    }

    /// Whether the call may succeed if sent again (unknown codes are not retried).
    pub fn is_retryable(&self) -> bool {
        self.kind().is_some_and(ErrorCode::is_retryable)
    }
}

impl fmt::Display for ErrorObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JSON-RPC error {}: {}", self.code, self.message)
    }
}

impl core::error::Error for ErrorObject {}
