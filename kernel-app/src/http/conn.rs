//! One client connection: bytes in, requests to the handler, response bytes out.

use super::deadline::Phase;
use super::request::{self, Head};
use super::response::{CONTINUE, Response};
use super::{Handler, OUTPUT_HIGH_WATER};
use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// The state of one connection.
#[derive(Debug, Default)]
pub struct Conn {
    /// Received bytes not yet part of a request.
    input: Vec<u8>,
    /// An accepted request whose body is still arriving.
    pending: Option<Pending>,
    /// Response bytes to send, in order; the first chunk is sent from `sent`.
    out: VecDeque<Vec<u8>>,
    sent: usize,
    /// Unsent bytes in `out`.
    out_len: usize,
    /// No more requests are read: close once the output is sent.
    closing: bool,
    /// A request head was complete on this connection.
    started: bool,
}

#[derive(Debug)]
struct Pending {
    head: Head,
    body: Vec<u8>,
}

impl Conn {
    /// A fresh connection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the connection reads no more requests (and will close once its output is sent).
    pub fn is_closing(&self) -> bool {
        self.closing
    }

    /// Where the connection is in its request cycle, for its timeouts
    /// ([`super::deadline::Timer`]).
    pub fn phase(&self) -> Phase {
        let first = !self.started;
        if self.closing {
            Phase::Closing
        } else if self.pending_output() > 0 {
            Phase::Answering
        } else if self.pending.is_some() {
            Phase::Body
        } else if !self.input.is_empty() {
            Phase::Head { first }
        } else {
            Phase::Waiting { first }
        }
    }

    /// Whether the connection takes more input now.
    pub fn wants_input(&self) -> bool {
        !self.closing && self.out_len < OUTPUT_HIGH_WATER
    }

    /// Takes bytes from the client and answers every request they complete.
    pub fn receive(&mut self, mut data: &[u8], handler: &mut dyn Handler) {
        if self.closing {
            return;
        }
        if let Some(p) = &mut self.pending
            && self.input.is_empty()
        {
            // The common case of a body arriving: straight into the body, no copy through input.
            let take = (p.head.content_length - p.body.len()).min(data.len());
            p.body.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        self.input.extend_from_slice(data);
        self.process(handler);
    }

    /// No more requests are read: the client closed its side, or the server is closing the
    /// connection. A request cut short is dropped unanswered; the connection closes once what is
    /// already answered has been sent.
    pub fn end_input(&mut self) {
        self.pending = None;
        self.input = Vec::new();
        self.closing = true;
    }

    /// The next bytes to send (empty when there are none).
    pub fn output(&self) -> &[u8] {
        self.out.front().map_or(&[], |chunk| &chunk[self.sent..])
    }

    /// Marks `n` bytes of [`Conn::output`] as sent.
    pub fn consume(&mut self, n: usize) {
        let Some(front) = self.out.front() else { return };
        let n = n.min(front.len() - self.sent);
        self.sent += n;
        self.out_len -= n;
        if self.sent == front.len() {
            self.out.pop_front();
            self.sent = 0;
        }
    }

    /// Response bytes not yet sent.
    pub fn pending_output(&self) -> usize {
        self.out_len
    }

    /// Whether the connection should be closed now: it reads no more requests and everything
    /// it answered has been sent.
    pub fn finished(&self) -> bool {
        self.closing && self.out_len == 0
    }

    fn process(&mut self, handler: &mut dyn Handler) {
        loop {
            if self.closing {
                self.input = Vec::new();
                return;
            }
            if let Some(p) = &mut self.pending {
                let take = (p.head.content_length - p.body.len()).min(self.input.len());
                p.body.extend_from_slice(&self.input[..take]);
                self.input.drain(..take);
                if p.body.len() < p.head.content_length {
                    return;
                }
                let Pending { head, body } = self.pending.take().expect("checked above");
                let response = handler.handle(&head.method, &head.target, body);
                self.respond(response, head.keep_alive);
                continue;
            }
            if self.input.is_empty() {
                return;
            }
            match request::parse(&self.input) {
                Ok(None) => return,
                Err(status) => self.respond(Response::error(status), false),
                Ok(Some((head, len))) => {
                    self.input.drain(..len);
                    self.started = true;
                    match handler.accept(&head.method, &head.target) {
                        // The announced body is not read: the connection cannot go on after it.
                        Err(response) => self.respond(response, head.keep_alive && head.content_length == 0),
                        Ok(()) => {
                            // Reserved whole (at most `MAX_BODY`): growing it would copy it.
                            // Without the memory for it, the request is refused as too large.
                            let mut body = Vec::new();
                            if body.try_reserve_exact(head.content_length).is_err() {
                                self.respond(Response::error(413), false);
                                continue;
                            }
                            if head.expect_continue && head.minor_version >= 1 && self.input.is_empty() {
                                self.push(CONTINUE.to_vec());
                            }
                            self.pending = Some(Pending { head, body });
                        }
                    }
                }
            }
        }
    }

    fn respond(&mut self, response: Response, keep_alive: bool) {
        self.push(response.head(keep_alive));
        self.push(response.body);
        if !keep_alive {
            self.closing = true;
        }
    }

    fn push(&mut self, chunk: Vec<u8>) {
        if !chunk.is_empty() {
            self.out_len += chunk.len();
            self.out.push_back(chunk);
        }
    }
}
