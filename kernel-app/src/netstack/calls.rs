//! The client side of the stack: the calls of the image's AVS (`crate::sdk`) to the endpoints
//! its spec names. Each call opens a connection from an ephemeral port, sends one request, reads
//! one response ([`crate::http::client`], at most `spacecore_avs::MAX_REPLY` of body) and closes.
//! A call that has no complete answer after `spacecore_avs::CALL_TIMEOUT_MS` is aborted and
//! reported as failed.

use super::NetStack;
use crate::http::calls::{AvsCalls, CallRequest, Calls};
use crate::http::client::{self, ClientError, HttpResponse, ResponseReader};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp::{self, State};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::IpAddress;

/// Send buffer of a call's socket: a request goes out as the window allows.
pub(super) const CALL_BUFFER: usize = 8 * 1024;

/// Calls of the image's AVS made at once to each endpoint (the rest wait in its queue).
pub(super) const AVS_SLOTS: usize = 4;
/// Ephemeral ports of the AVS's calls: below the dynamic range, a share for each endpoint.
pub(super) const AVS_PORTS: core::ops::RangeInclusive<u16> = 40960..=49151;
/// Receive buffer of an AVS call's socket (answers are read as they come).
pub(super) const AVS_BUFFER: usize = 64 * 1024;

/// A call in flight.
pub(super) struct Call {
    id: u64,
    request: Vec<u8>,
    sent: usize,
    reader: ResponseReader,
    started: Instant,
    pub(super) deadline: Instant,
}

/// The client side: a server (a named endpoint) and the sockets of the calls to it.
pub(super) struct Client {
    server: core::net::SocketAddrV4,
    /// `Host` header value.
    host: String,
    pub(super) slots: Vec<(SocketHandle, Option<Call>)>,
    next_port: u16,
    /// Longest answer body accepted.
    max_body: usize,
    /// Longest time a call may take.
    timeout: Duration,
    /// Who the server is, in error messages.
    what: &'static str,
    /// The ephemeral ports its calls use.
    ports: core::ops::RangeInclusive<u16>,
}

impl Client {
    /// A client of `server` with `slots` sockets of `rx`/`tx`-byte buffers added to `sockets`;
    /// its ephemeral ports start at an offset of `seed` in `ports`.
    #[expect(clippy::too_many_arguments, reason = "each is one property of the client")]
    pub(super) fn new(
        sockets: &mut SocketSet<'static>,
        server: core::net::SocketAddrV4,
        slots: usize,
        (rx, tx): (usize, usize),
        ports: core::ops::RangeInclusive<u16>,
        seed: u64,
        (max_body, timeout): (usize, Duration),
        what: &'static str,
    ) -> Self {
        Client {
            server,
            host: server.to_string(),
            slots: (0..slots)
                .map(|_| {
                    // Untouched memory, as the server's: it costs nothing until a call is made.
                    let rx = tcp::SocketBuffer::new(crate::heap::static_buffer(rx));
                    let tx = tcp::SocketBuffer::new(crate::heap::static_buffer(tx));
                    let mut socket = tcp::Socket::new(rx, tx);
                    socket.set_nagle_enabled(false);
                    socket.set_ack_delay(None);
                    (sockets.add(socket), None)
                })
                .collect(),
            next_port: ports.start() + (seed % u64::from(ports.end() - ports.start())) as u16,
            max_body,
            timeout,
            what,
            ports,
        }
    }
}

impl NetStack {
    /// Starts the queued calls of the image's AVS, to each named endpoint, and moves the bytes
    /// of those in flight; returns whether anything happened.
    pub fn call_avs(&mut self, now: Instant, calls: &mut dyn AvsCalls) -> bool {
        let mut progress = false;
        for (endpoint, client) in &mut self.avs {
            let mut calls = EndpointCalls { endpoint, inner: &mut *calls };
            progress |= drive(client, &mut self.sockets, &mut self.iface, self.stopping, now, &mut calls);
        }
        progress
    }
}

/// The calls of the image's AVS to one endpoint, as [`drive`] makes them.
struct EndpointCalls<'a> {
    endpoint: &'static str,
    inner: &'a mut dyn AvsCalls,
}

impl Calls for EndpointCalls<'_> {
    fn next_call(&mut self, _now_ms: u64) -> Option<(u64, CallRequest)> {
        self.inner.next_call(self.endpoint)
    }

    fn call_done(
        &mut self,
        id: u64,
        result: Result<HttpResponse, String>,
        _now_ms: u64,
        _elapsed_us: u64,
    ) -> Option<String> {
        self.inner.call_done(id, result);
        None
    }
}

/// Prints a line about a finished call, if there is one.
fn report(line: Option<String>) {
    if let Some(line) = line {
        crate::println!("{line}");
    }
}

/// Starts the due calls of `client` and moves the bytes of those in flight; returns whether
/// anything happened.
fn drive(
    client: &mut Client,
    sockets: &mut SocketSet<'static>,
    iface: &mut Interface,
    stopping: bool,
    now: Instant,
    calls: &mut dyn Calls,
) -> bool {
    let now_ms = now.total_millis() as u64;

    let mut progress = false;
    for (handle, slot) in &mut client.slots {
        let socket = sockets.get_mut::<tcp::Socket>(*handle);
        let Some(call) = slot else {
            if socket.state() == State::TimeWait {
                // Our side closed first: the next call uses another port, so the wait
                // protects nothing here.
                socket.abort();
            }
            if stopping || socket.state() != State::Closed {
                continue;
            }
            let Some((id, request)) = calls.next_call(now_ms) else { continue };
            let CallRequest { method, path, body } = request;
            let request = client::request(&method, &client.host, &path, body.as_deref());
            let local = client.next_port;
            let (first, last) = (*client.ports.start(), *client.ports.end());
            client.next_port = if local == last { first } else { local + 1 };
            let remote = (IpAddress::Ipv4(*client.server.ip()), client.server.port());
            match socket.connect(iface.context(), remote, local) {
                Ok(()) => {
                    let (started, deadline) = (now, now + client.timeout);
                    let reader = ResponseReader::with_limit(client.max_body);
                    *slot = Some(Call { id, request, sent: 0, reader, started, deadline });
                }
                Err(e) => report(calls.call_done(id, Err(alloc::format!("cannot connect: {e}")), now_ms, 0)),
            }
            progress = true;
            continue;
        };
        let mut result = None;
        if socket.can_send()
            && call.sent < call.request.len()
            && let Ok(n) = socket.send_slice(&call.request[call.sent..])
        {
            call.sent += n;
            progress |= n > 0;
        }
        while result.is_none() && socket.can_recv() {
            let _ = socket.recv(|data| {
                result = call.reader.receive(data);
                (data.len(), ())
            });
            progress = true;
        }
        if result.is_none() && call.sent > 0 && !socket.may_recv() && socket.state() != State::SynSent {
            // The server closed its side (or the connection is gone): what came is all.
            result = Some(call.reader.finish());
        }
        let outcome = match result {
            Some(Err(ClientError::BodyTooLong)) => Err(spacecore_avs::REPLY_TOO_LONG.to_string()),
            Some(r) => r.map_err(|e| alloc::format!("bad answer from {}: {e:?}", client.what)),
            None if !socket.is_open() => Err("connection refused or reset".to_string()),
            None if now >= call.deadline => Err("no answer in time".to_string()),
            None => continue,
        };
        // Done with this connection: close politely if it still stands, else drop it.
        if socket.is_open() && outcome.is_ok() {
            socket.close();
        } else {
            socket.abort();
        }
        let (id, elapsed_us) = (call.id, (now - call.started).total_micros());
        *slot = None;
        report(calls.call_done(id, outcome, now_ms, elapsed_us));
        progress = true;
    }
    progress
}
