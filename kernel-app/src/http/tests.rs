//! The connection state machine fed with byte strings, answering through the real endpoints.

use super::*;
use crate::app::App;
use alloc::vec::Vec;

/// A parsed response: status, headers (lower-case names) and body.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Sends every output byte of `conn` (in writes of at most `step` bytes) and parses them.
fn drain(conn: &mut Conn, step: usize) -> Vec<Reply> {
    let mut bytes = Vec::new();
    loop {
        let out = conn.output();
        if out.is_empty() {
            break;
        }
        let n = out.len().min(step);
        bytes.extend_from_slice(&out[..n]);
        conn.consume(n);
    }
    assert_eq!(conn.pending_output(), 0);
    parse_replies(&bytes)
}

fn parse_replies(mut bytes: &[u8]) -> Vec<Reply> {
    let mut replies = Vec::new();
    while !bytes.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut headers);
        let httparse::Status::Complete(len) = resp.parse(bytes).expect("valid response") else {
            panic!("truncated response: {:?}", String::from_utf8_lossy(bytes));
        };
        let headers: Vec<(String, String)> = resp
            .headers
            .iter()
            .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8(h.value.to_vec()).unwrap()))
            .collect();
        let status = resp.code.unwrap();
        let body_len = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map_or(0, |(_, v)| v.parse::<usize>().unwrap());
        replies.push(Reply { status, headers, body: bytes[len..len + body_len].to_vec() });
        bytes = &bytes[len + body_len..];
    }
    replies
}

fn app() -> App<crate::avs::tests::MemRecords> {
    App::new("test", Some(3), None, false)
}

/// Feeds `input` in chunks of `chunk` bytes, then returns the replies.
fn exchange(input: &[u8], chunk: usize) -> (Vec<Reply>, Conn) {
    let mut conn = Conn::new();
    let mut app = app();
    for piece in input.chunks(chunk) {
        conn.receive(piece, &mut app);
    }
    let replies = drain(&mut conn, 1000);
    (replies, conn)
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

#[test]
fn answers_get_and_keeps_the_connection() {
    let (replies, conn) = exchange(GET, usize::MAX);
    assert_eq!(replies.len(), 1);
    let r = &replies[0];
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("connection"), Some("keep-alive"));
    assert!(String::from_utf8_lossy(&r.body).contains("\"boot_count\":3"));
    assert!(!conn.finished() && !conn.is_closing() && conn.wants_input());
}

#[test]
fn pipelined_requests_are_answered_in_order_however_they_are_split() {
    let mut input = Vec::new();
    input.extend_from_slice(GET);
    input.extend_from_slice(b"POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
    input.extend_from_slice(b"GET /missing HTTP/1.1\r\n\r\n");
    input.extend_from_slice(b"POST /echo?x=1 HTTP/1.1\r\ncontent-length: 0\r\n\r\n");
    for chunk in [1, 2, 7, 64, usize::MAX] {
        let (replies, conn) = exchange(&input, chunk);
        let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
        assert_eq!(statuses, [200, 200, 404, 200], "chunk {chunk}");
        assert_eq!(replies[1].body, b"hello");
        assert_eq!(replies[3].body, b"");
        assert!(!conn.finished());
    }
}

#[test]
fn connection_close_and_http_1_0_close_after_the_response() {
    for (req, keep) in [
        (&b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"[..], false),
        (b"GET / HTTP/1.1\r\nConnection: foo, Close\r\n\r\n", false),
        (b"GET / HTTP/1.0\r\n\r\n", false),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
    ] {
        let mut input = req.to_vec();
        input.extend_from_slice(GET); // ignored after a close
        let (replies, conn) = exchange(&input, usize::MAX);
        let expected = if keep { 2 } else { 1 };
        assert_eq!(replies.len(), expected, "{}", String::from_utf8_lossy(req));
        assert_eq!(replies[0].header("connection"), Some(if keep { "keep-alive" } else { "close" }));
        assert_eq!(conn.finished(), !keep);
    }
}

#[test]
fn garbage_gets_400_and_closes() {
    for garbage in [
        &b"\x00\x01\x02\xff\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx",
    ] {
        let mut conn = Conn::new();
        let mut app = app();
        conn.receive(garbage, &mut app);
        conn.receive(GET, &mut app); // after the 400 nothing more is read
        let replies = drain(&mut conn, 1000);
        assert_eq!(replies.len(), 1, "{garbage:?}");
        assert_eq!(replies[0].status, 400, "{garbage:?}");
        assert_eq!(replies[0].header("connection"), Some("close"));
        assert!(conn.finished() && conn.is_closing() && !conn.wants_input());
    }
}

#[test]
fn oversized_heads_get_431() {
    // A head that never ends.
    let mut endless = b"GET / HTTP/1.1\r\nX-Long: ".to_vec();
    endless.resize(MAX_HEAD + 1, b'a');
    // A complete head past the limit.
    let mut long = b"GET / HTTP/1.1\r\nX-Long: ".to_vec();
    long.resize(MAX_HEAD, b'a');
    long.extend_from_slice(b"\r\n\r\n");
    // Too many header lines.
    let mut many = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..=MAX_HEADERS {
        many.extend_from_slice(format!("X-{i}: 1\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    for (input, chunk) in [(&endless, 100), (&endless, usize::MAX), (&long, 512), (&many, usize::MAX)] {
        let (replies, conn) = exchange(input, chunk);
        assert_eq!(replies.len(), 1);
        assert_eq!(replies[0].status, 431);
        assert!(conn.finished());
    }
    // Just under the limit is fine.
    let mut fits = b"GET / HTTP/1.1\r\nX-Long: ".to_vec();
    fits.resize(MAX_HEAD - 4, b'a');
    fits.extend_from_slice(b"\r\n\r\n");
    assert_eq!(exchange(&fits, 300).0[0].status, 200);
}

#[test]
fn oversized_bodies_get_413_without_reading_them() {
    let head = format!("POST /echo HTTP/1.1\r\nContent-Length: {}\r\n\r\n", MAX_BODY + 1);
    let (replies, conn) = exchange(head.as_bytes(), usize::MAX);
    assert_eq!(replies[0].status, 413);
    assert!(conn.finished());
    let huge = b"POST /echo HTTP/1.1\r\nContent-Length: 99999999999999999999999999\r\n\r\n";
    assert_eq!(exchange(huge, usize::MAX).0[0].status, 413);
}

#[test]
fn a_truncated_request_is_dropped_when_the_client_closes() {
    for partial in [&b"POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"[..], b"GET / HTTP/1.1\r\nHost"] {
        let mut conn = Conn::new();
        conn.receive(partial, &mut app());
        assert!(conn.output().is_empty());
        conn.end_input();
        assert!(drain(&mut conn, 1000).is_empty());
        assert!(conn.finished());
    }
    // A complete request followed by the client's close is still answered.
    let mut conn = Conn::new();
    conn.receive(GET, &mut app());
    conn.end_input();
    assert!(!conn.finished());
    assert_eq!(drain(&mut conn, 1000)[0].status, 200);
    assert!(conn.finished());
}

#[test]
fn refused_requests_keep_the_connection_only_without_a_body() {
    let mut input = b"DELETE / HTTP/1.1\r\n\r\n".to_vec();
    input.extend_from_slice(b"GET /nope HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
    input.extend_from_slice(GET);
    let (replies, conn) = exchange(&input, usize::MAX);
    assert_eq!(replies.len(), 2);
    assert_eq!((replies[0].status, replies[0].header("allow")), (405, Some("GET")));
    assert_eq!(replies[0].header("connection"), Some("keep-alive"));
    assert_eq!((replies[1].status, replies[1].header("connection")), (404, Some("close")));
    assert!(conn.finished());
}

#[test]
fn expect_100_continue_is_answered_before_the_body() {
    let mut conn = Conn::new();
    let mut app = app();
    conn.receive(b"POST /echo HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n", &mut app);
    assert_eq!(conn.output(), b"HTTP/1.1 100 Continue\r\n\r\n");
    conn.consume(conn.output().len());
    conn.receive(b"ping", &mut app);
    let replies = drain(&mut conn, 1000);
    assert_eq!((replies[0].status, replies[0].body.as_slice()), (200, &b"ping"[..]));
}

#[test]
fn chunked_bodies_are_not_implemented() {
    let req = b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    let (replies, conn) = exchange(req, usize::MAX);
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].status, 501);
    assert!(conn.finished());
}

#[test]
fn echoes_a_mebibyte_exactly() {
    let body: Vec<u8> = (0..1 << 20).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let mut input = format!("POST /echo HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    input.extend_from_slice(&body);
    input.extend_from_slice(GET);
    let (replies, conn) = exchange(&input, 1460);
    assert_eq!(replies.len(), 2);
    assert_eq!(replies[0].header("content-length"), Some("1048576"));
    assert!(replies[0].body == body);
    assert_eq!(replies[1].status, 200);
    assert!(!conn.finished());
}

#[test]
fn stops_reading_while_much_output_waits() {
    let mut conn = Conn::new();
    let mut app = app();
    let body = vec![7u8; OUTPUT_HIGH_WATER];
    let mut input = format!("POST /echo HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    input.extend_from_slice(&body);
    conn.receive(&input, &mut app);
    assert!(!conn.wants_input());
    let head_len = conn.output().len();
    conn.consume(head_len);
    conn.consume(1000);
    assert!(conn.wants_input());
    assert_eq!(conn.pending_output(), OUTPUT_HIGH_WATER - 1000);
}

mod deadlines {
    use super::super::deadline::*;
    use super::*;

    const T0: u64 = 1_000;

    #[test]
    fn the_phase_follows_the_request_cycle() {
        let mut conn = Conn::new();
        let mut app = app();
        assert_eq!(conn.phase(), Phase::Waiting { first: true });
        conn.receive(b"GET / HTTP/1.1\r\nHo", &mut app);
        assert_eq!(conn.phase(), Phase::Head { first: true });
        conn.receive(b"st: x\r\n\r\n", &mut app);
        assert_eq!(conn.phase(), Phase::Answering);
        drain(&mut conn, 1000);
        assert_eq!(conn.phase(), Phase::Waiting { first: false });
        conn.receive(b"POST /echo HTTP/1.1\r\nContent-Length: 4\r\n\r\nab", &mut app);
        assert_eq!(conn.phase(), Phase::Body);
        conn.receive(b"cd", &mut app);
        drain(&mut conn, 1000);
        conn.receive(b"GET", &mut app);
        assert_eq!(conn.phase(), Phase::Head { first: false });
        conn.end_input();
        assert_eq!(conn.phase(), Phase::Closing);
    }

    #[test]
    fn the_first_head_is_due_from_the_opening_however_it_trickles() {
        let mut timer = Timer::new(T0);
        assert_eq!(timer.deadline(), T0 + HEADER_TIMEOUT_MS);
        // The first byte comes late, then one byte a second: the deadline does not move.
        timer.update(Phase::Head { first: true }, true, T0 + 9_000);
        for t in (T0 + 9_000..T0 + 20_000).step_by(1_000) {
            timer.update(Phase::Head { first: true }, true, t);
            assert_eq!(timer.deadline(), T0 + HEADER_TIMEOUT_MS, "at {t}");
        }
        assert_eq!(timer.expiry(), Expiry::Close);
    }

    #[test]
    fn a_kept_alive_connection_gets_the_keepalive_then_a_header_deadline() {
        let mut timer = Timer::new(T0);
        timer.update(Phase::Head { first: true }, true, T0 + 5);
        timer.update(Phase::Answering, true, T0 + 6);
        let answered = T0 + 7;
        timer.update(Phase::Waiting { first: false }, true, answered);
        assert_eq!(timer.deadline(), answered + KEEPALIVE_TIMEOUT_MS);
        assert_eq!(timer.expiry(), Expiry::Close);
        // The next head's deadline runs from its first byte.
        let started = answered + 20_000;
        timer.update(Phase::Head { first: false }, true, started);
        timer.update(Phase::Head { first: false }, true, started + 3_000);
        assert_eq!(timer.deadline(), started + HEADER_TIMEOUT_MS);
    }

    #[test]
    fn bodies_answers_and_closes_time_out_only_when_nothing_moves() {
        for (phase, expiry) in
            [(Phase::Body, Expiry::Close), (Phase::Answering, Expiry::Abort), (Phase::Closing, Expiry::Abort)]
        {
            let mut timer = Timer::new(T0);
            timer.update(phase, true, T0 + 10);
            assert_eq!(timer.deadline(), T0 + 10 + STALL_TIMEOUT_MS, "{phase:?}");
            timer.update(phase, false, T0 + 50_000);
            assert_eq!(timer.deadline(), T0 + 10 + STALL_TIMEOUT_MS, "{phase:?}: nothing moved");
            timer.update(phase, true, T0 + 50_000);
            assert_eq!(timer.deadline(), T0 + 50_000 + STALL_TIMEOUT_MS, "{phase:?}: bytes moved");
            assert_eq!(timer.expiry(), expiry, "{phase:?}");
        }
    }

    #[test]
    fn eviction_takes_closing_then_the_longest_waiting_then_the_stalest_transfer() {
        let at = |phase: Phase, t: u64| {
            let mut timer = Timer::new(t);
            timer.update(phase, true, t);
            timer
        };
        let fresh_idle = at(Phase::Waiting { first: true }, T0 + 500);
        let old_idle = at(Phase::Waiting { first: false }, T0 + 100);
        let slow_head = at(Phase::Head { first: false }, T0 + 50);
        let old_body = at(Phase::Body, T0);
        let old_answer = at(Phase::Answering, T0);
        let closing = at(Phase::Closing, T0 + 900);
        let mut all = [fresh_idle, old_idle, slow_head, old_body, old_answer, closing];
        all.sort_by_key(|t| t.rank(false));
        assert_eq!(all, [closing, slow_head, old_idle, fresh_idle, old_body, old_answer]);
        // Bytes the client has not acknowledged make any connection count as answering: a
        // closing connection whose last answer is still in flight is not cut short.
        assert_eq!(closing.rank(true), (3, T0 + 900));
        assert!(closing.rank(true) > old_answer.rank(false));
    }
}
