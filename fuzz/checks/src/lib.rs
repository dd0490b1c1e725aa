//! The fuzz targets' bodies ([`targets`], one `run` per target of `fuzz/fuzz_targets/`) and what
//! they share: the input formats of the structured targets (decoded here, and encoded for the
//! seed corpora by `fuzz/examples/seeds.rs`), guest memory with virtqueues in it, and the fake
//! backends the device targets run against. It builds on stable: libFuzzer runs the bodies from
//! `fuzz/` (nightly), and `tests/corpus.rs` replays every committed seed through them.
//!
//! The text targets (`spec`, `avs_json`, `keystore`) and `bls` take their input as it is; the
//! formats below are for the others. Every format accepts every byte string: missing bytes read
//! as zero, extra bytes are ignored.

pub mod disk;
pub mod fakes;
pub mod hypercalls;
pub mod mmio_ops;
pub mod ring;
pub mod targets;

/// The guest's HTTP/1.1 server core (`kernel-app/src/http/`), compiled from the guest's own
/// sources: see `fuzz/guest-http/`.
pub use spacecore_guest_http::http;

/// Reads an input from the front; past its end every read gives zeros.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next `n` bytes, or fewer at the end of the input.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.data.split_at(n.min(self.data.len()));
        self.data = tail;
        head
    }

    /// The next `N` bytes, zero-padded at the end of the input.
    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0; N];
        let head = self.bytes(N);
        out[..head.len()].copy_from_slice(head);
        out
    }

    /// The next byte.
    pub fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }

    /// The next little-endian `u16`.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }
}
