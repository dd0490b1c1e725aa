//! The HTTP endpoints of the node.
//!
//! - `GET /`: `200` with `{"name":..,"version":..,"boot_count":N,"uptime_ms":N}` (JSON);
//!   `boot_count` is 0 when there is no disk to count boots on.
//! - `POST /echo`: `200` with the request body, byte for byte.
//!
//! Anything else is 404; a known path with another method is 405 with `Allow`.

use crate::http::{Handler, Response};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

/// The application state the endpoints show.
#[derive(Debug, Clone)]
pub struct App {
    name: String,
    boot_count: u64,
    uptime_ms: u64,
}

impl App {
    /// The application of node `name`, booted `boot_count` times.
    pub fn new(name: &str, boot_count: u64) -> Self {
        App { name: name.into(), boot_count, uptime_ms: 0 }
    }

    /// Sets the uptime shown by `GET /`; the main loop calls this before serving.
    pub fn set_uptime_ms(&mut self, uptime_ms: u64) {
        self.uptime_ms = uptime_ms;
    }

    fn status_json(&self) -> Vec<u8> {
        let mut out = String::with_capacity(128);
        out.push_str("{\"name\":");
        json_string(&mut out, &self.name);
        out.push_str(",\"version\":");
        json_string(&mut out, env!("CARGO_PKG_VERSION"));
        let _ = writeln!(out, ",\"boot_count\":{},\"uptime_ms\":{}}}", self.boot_count, self.uptime_ms);
        out.into_bytes()
    }
}

impl Handler for App {
    fn accept(&mut self, method: &str, path: &str) -> Result<(), Response> {
        let allowed = match path {
            "/" => "GET",
            "/echo" => "POST",
            _ => return Err(Response::error(404)),
        };
        if method == allowed { Ok(()) } else { Err(Response::method_not_allowed(allowed)) }
    }

    fn handle(&mut self, _method: &str, path: &str, body: Vec<u8>) -> Response {
        match path {
            "/" => Response::new(200, "application/json", self.status_json()),
            "/echo" => Response::new(200, "application/octet-stream", body),
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

    #[test]
    fn routes_and_refuses() {
        let mut app = App::new("n", 1);
        assert_eq!(app.accept("GET", "/"), Ok(()));
        assert_eq!(app.accept("POST", "/echo"), Ok(()));
        assert_eq!(app.accept("GET", "/nope").unwrap_err().status, 404);
        let wrong = app.accept("POST", "/").unwrap_err();
        assert_eq!((wrong.status, wrong.allow), (405, Some("GET")));
        assert_eq!(app.accept("GET", "/echo").unwrap_err().allow, Some("POST"));
    }

    #[test]
    fn status_is_json_with_the_counters() {
        let mut app = App::new("node \"7\"\\\n", 42);
        app.set_uptime_ms(1234);
        let r = app.handle("GET", "/", Vec::new());
        assert_eq!((r.status, r.content_type), (200, "application/json"));
        let expected = format!(
            "{{\"name\":\"node \\\"7\\\"\\\\\\u000a\",\"version\":\"{}\",\"boot_count\":42,\"uptime_ms\":1234}}\n",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(String::from_utf8(r.body).unwrap(), expected);
    }

    #[test]
    fn echo_returns_the_body() {
        let body: Vec<u8> = (0..=255).collect();
        let r = App::new("n", 0).handle("POST", "/echo", body.clone());
        assert_eq!((r.status, r.body), (200, body));
    }
}
