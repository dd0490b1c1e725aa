//! The HTTP endpoints of the node.
//!
//! - `GET /`: `200` with `{"name":..,"version":..,"boot_count":N,"uptime_ms":N,"operator_id":..}`
//!   (JSON); `boot_count` is 0 when there is no disk to count boots on; `operator_id` is the
//!   `0x` hex id of the operator key once it is loaded, `null` before.
//! - `POST /task`: a task of the AVS (see [`crate::avs`]): `200` with the signed response
//!   (JSON), or an error status (400, 409, 422, 500, 503) with `{"error":"..."}`.
//! - `POST /echo`: `200` with the request body, byte for byte.
//!
//! Anything else is 404; a known path with another method is 405 with `Allow`.

use crate::avs::{AvsNode, Records};
use crate::http::{Handler, Response};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

/// The application: the node's identity, its AVS side and its records.
#[derive(Debug)]
pub struct App<R> {
    name: String,
    boot_count: u64,
    uptime_ms: u64,
    /// The AVS side.
    pub avs: AvsNode,
    /// The disk's records, if there is a disk.
    pub records: Option<R>,
}

impl<R: Records> App<R> {
    /// The application of node `name`, booted `boot_count` times, with its disk's `records`;
    /// `sends`: whether signed responses go to an aggregator.
    pub fn new(name: &str, boot_count: u64, mut records: Option<R>, sends: bool) -> Self {
        let avs = AvsNode::new(records.as_mut().map(|r| r as &mut dyn Records), sends);
        App { name: name.into(), boot_count, uptime_ms: 0, avs, records }
    }

    /// Sets the uptime shown by `GET /`; the main loop calls this before serving.
    pub fn set_uptime_ms(&mut self, uptime_ms: u64) {
        self.uptime_ms = uptime_ms;
    }

    fn status_json(&self) -> Vec<u8> {
        let mut out = String::with_capacity(160);
        out.push_str("{\"name\":");
        json_string(&mut out, &self.name);
        out.push_str(",\"version\":");
        json_string(&mut out, env!("CARGO_PKG_VERSION"));
        let _ = write!(out, ",\"boot_count\":{},\"uptime_ms\":{}", self.boot_count, self.uptime_ms);
        match self.avs.operator() {
            Some(op) => {
                let _ = writeln!(out, ",\"operator_id\":\"{}\"}}", avs_protocol::encoding::to_hex(&op.id));
            }
            None => out.push_str(",\"operator_id\":null}\n"),
        }
        out.into_bytes()
    }

    fn task(&mut self, body: &[u8]) -> Response {
        let records = self.records.as_mut().map(|r| r as &mut dyn Records);
        match self.avs.task(body, records, self.uptime_ms) {
            Ok(signed) => {
                let mut json = serde_json::to_vec(&signed).unwrap_or_default();
                json.push(b'\n');
                Response::new(200, "application/json", json)
            }
            Err(e) => {
                let mut out = String::from("{\"error\":");
                json_string(&mut out, e.message());
                out.push_str("}\n");
                Response::new(e.status(), "application/json", out.into_bytes())
            }
        }
    }
}

impl<R: Records> Handler for App<R> {
    fn accept(&mut self, method: &str, path: &str) -> Result<(), Response> {
        let allowed = match path {
            "/" => "GET",
            "/echo" | "/task" => "POST",
            _ => return Err(Response::error(404)),
        };
        if method == allowed { Ok(()) } else { Err(Response::method_not_allowed(allowed)) }
    }

    fn handle(&mut self, _method: &str, path: &str, body: Vec<u8>) -> Response {
        match path {
            "/" => Response::new(200, "application/json", self.status_json()),
            "/echo" => Response::new(200, "application/octet-stream", body),
            "/task" => self.task(&body),
            _ => Response::error(404),
        }
    }
}

/// Appends `s` as a JSON string literal.
fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avs::tests::MemRecords;

    fn app(name: &str, boot_count: u64) -> App<MemRecords> {
        App::new(name, boot_count, Some(MemRecords::default()), false)
    }

    #[test]
    fn routes_and_refuses() {
        let mut app = app("n", 1);
        assert_eq!(app.accept("GET", "/"), Ok(()));
        assert_eq!(app.accept("POST", "/echo"), Ok(()));
        assert_eq!(app.accept("POST", "/task"), Ok(()));
        assert_eq!(app.accept("GET", "/nope").unwrap_err().status, 404);
        let wrong = app.accept("POST", "/").unwrap_err();
        assert_eq!((wrong.status, wrong.allow), (405, Some("GET")));
        assert_eq!(app.accept("GET", "/echo").unwrap_err().allow, Some("POST"));
        assert_eq!(app.accept("GET", "/task").unwrap_err().allow, Some("POST"));
    }

    #[test]
    fn status_is_json_with_the_counters() {
        let mut app = app("node \"7\"\\\n", 42);
        app.set_uptime_ms(1234);
        let r = app.handle("GET", "/", Vec::new());
        assert_eq!((r.status, r.content_type), (200, "application/json"));
        let expected = format!(
            "{{\"name\":\"node \\\"7\\\"\\\\\\u000a\",\"version\":\"{}\",\"boot_count\":42,\"uptime_ms\":1234,\"operator_id\":null}}\n",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(String::from_utf8(r.body).unwrap(), expected);
    }

    #[test]
    fn status_shows_the_operator_once_loaded() {
        let mut app = app("n", 1);
        let op = crate::avs::tests::operator(1);
        let id = avs_protocol::encoding::to_hex(&op.id);
        app.avs.set_operator(Ok(op)).unwrap();
        let body = String::from_utf8(app.handle("GET", "/", Vec::new()).body).unwrap();
        assert!(body.ends_with(&format!(",\"operator_id\":\"{id}\"}}\n")), "{body}");
    }

    #[test]
    fn tasks_are_answered_with_json() {
        let mut app = app("n", 1);
        let refused = app.handle("POST", "/task", crate::avs::tests::task_json(1, 3));
        assert_eq!((refused.status, refused.content_type), (503, "application/json"));
        assert!(refused.body.starts_with(b"{\"error\":\"the operator key is still loading\"}"));
        app.avs.set_operator(Ok(crate::avs::tests::operator(1))).unwrap();
        let signed = app.handle("POST", "/task", crate::avs::tests::task_json(1, 3));
        assert_eq!(signed.status, 200);
        let parsed: avs_protocol::SignedTaskResponse = serde_json::from_slice(&signed.body).unwrap();
        assert_eq!(parsed.task_response.number_squared, avs_protocol::U256::from(9u8));
        assert_eq!(app.handle("POST", "/task", b"{\"task_index\":".to_vec()).status, 400);
        assert_eq!(app.handle("POST", "/task", crate::avs::tests::task_json(1, 4)).status, 409);
    }

    #[test]
    fn echo_returns_the_body() {
        let body: Vec<u8> = (0..=255).collect();
        let r = app("n", 0).handle("POST", "/echo", body.clone());
        assert_eq!((r.status, r.body), (200, body));
    }
}
