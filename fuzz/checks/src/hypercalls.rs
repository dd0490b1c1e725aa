//! Port writes and guest memory for the `hypercall` target.
//!
//! # Input format
//!
//! | bytes | meaning |
//! |-------|---------|
//! | 0     | bits 0..=1: vCPUs - 1; bits 2..=3: the BLS key file's password, bits 4..=5: the ECDSA keystore's ([`Password`]: 0 none, 1 short, 2 or 3 the longest) |
//! | 1     | how many port writes follow, modulo [`MAX_CALLS`] + 1 |
//! | 2..   | the port writes, [`CALL_LEN`] bytes each, then guest memory from `GUEST_BASE`, at most [`IMAGE_LEN`] bytes; the rest is zero |
//!
//! A port write is: the port as an offset from `PORT_BASE - 16` (so every hypercall port and
//! some ports on either side); the write's width, modulo 9 (0 to 8 bytes); the vCPU, modulo the
//! vCPUs; a byte ignored; then eight bytes of data, little endian as `eax` (and zero bytes past
//! it), of which the write takes `width`.

use host_launcher::keystore_password::KeystorePassword;
use spacecore_abi::hypercall::{Hypercall, MAX_KEYSTORE_PASSWORD, PORT_BASE};
use spacecore_abi::layout::GUEST_BASE;
use std::sync::Arc;

use crate::Reader;

/// Most port writes in one input.
pub const MAX_CALLS: u8 = 16;
/// Bytes of one port write.
pub const CALL_LEN: usize = 12;
/// Most bytes of guest memory the input gives, from `GUEST_BASE`.
pub const IMAGE_LEN: usize = 0x10000;
/// Guest memory: the smallest a guest may have (4 MiB), laid out as the launcher lays it.
pub const MEMORY: u64 = spacecore_abi::layout::MIN_MEMORY;

/// A password a boot may be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Password {
    /// None configured.
    None,
    /// `fuzz-password`.
    Short,
    /// [`MAX_KEYSTORE_PASSWORD`] bytes.
    Longest,
}

impl Password {
    fn from_bits(bits: u8) -> Self {
        match bits & 3 {
            0 => Password::None,
            1 => Password::Short,
            _ => Password::Longest,
        }
    }

    /// Its bytes, if any.
    pub fn bytes(self) -> Option<Vec<u8>> {
        match self {
            Password::None => None,
            Password::Short => Some(b"fuzz-password".to_vec()),
            Password::Longest => Some(vec![b'p'; MAX_KEYSTORE_PASSWORD]),
        }
    }

    /// As the launcher holds it.
    pub fn load(self) -> Option<Arc<KeystorePassword>> {
        let bytes = zeroize::Zeroizing::new(self.bytes()?);
        Some(Arc::new(KeystorePassword::from_file_bytes(bytes, false).expect("a valid password")))
    }

    fn bits(self) -> u8 {
        match self {
            Password::None => 0,
            Password::Short => 1,
            Password::Longest => 2,
        }
    }
}

/// One port write of the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The vCPU that makes it.
    pub vcpu: u32,
    /// The port.
    pub port: u16,
    /// What is written (0 to 8 bytes).
    pub data: Vec<u8>,
}

impl Call {
    /// A 4-byte write of `arg` to `call`'s port from vCPU 0, as the guest makes every hypercall.
    pub fn new(call: Hypercall, arg: u32) -> Self {
        Call { vcpu: 0, port: call.port(), data: arg.to_le_bytes().to_vec() }
    }
}

/// A decoded `hypercall` input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HypercallCase {
    /// 1 to 4.
    pub vcpus: u32,
    /// The BLS key file's password.
    pub keystore: Password,
    /// The ECDSA keystore's password.
    pub ecdsa: Password,
    /// The port writes, in order.
    pub calls: Vec<Call>,
    /// Guest memory from `GUEST_BASE`.
    pub image: Vec<u8>,
}

impl HypercallCase {
    /// Decodes an input (module docs).
    pub fn parse(data: &[u8]) -> Self {
        let mut r = Reader::new(data);
        let config = r.u8();
        let vcpus = u32::from(config & 3) + 1;
        let count = r.u8() % (MAX_CALLS + 1);
        let calls = (0..count)
            .map(|_| {
                let [port, width, vcpu, _] = r.array::<4>();
                let bytes = r.array::<8>();
                Call {
                    vcpu: u32::from(vcpu) % vcpus,
                    port: (PORT_BASE - 16).wrapping_add(u16::from(port)),
                    data: bytes[..usize::from(width % 9)].to_vec(),
                }
            })
            .collect();
        HypercallCase {
            vcpus,
            keystore: Password::from_bits(config >> 2),
            ecdsa: Password::from_bits(config >> 4),
            calls,
            image: r.bytes(IMAGE_LEN).to_vec(),
        }
    }

    /// Encodes the case (the image is cut at [`IMAGE_LEN`], the calls at [`MAX_CALLS`]).
    pub fn encode(&self) -> Vec<u8> {
        assert!((1..=4).contains(&self.vcpus) && self.calls.len() <= usize::from(MAX_CALLS));
        let config = (self.vcpus - 1) as u8 | self.keystore.bits() << 2 | self.ecdsa.bits() << 4;
        let mut out = vec![config, self.calls.len() as u8];
        for call in &self.calls {
            let offset = call.port.wrapping_sub(PORT_BASE - 16);
            assert!(offset < 256 && call.data.len() <= 8 && call.vcpu < self.vcpus);
            out.extend_from_slice(&[offset as u8, call.data.len() as u8, call.vcpu as u8, 0]);
            let mut bytes = [0; 8];
            bytes[..call.data.len()].copy_from_slice(&call.data);
            out.extend_from_slice(&bytes);
        }
        out.extend_from_slice(&self.image[..self.image.len().min(IMAGE_LEN)]);
        out
    }

    /// Puts `bytes` at guest address `addr` of the image (at or above `GUEST_BASE`).
    pub fn poke(&mut self, addr: u64, bytes: &[u8]) -> &mut Self {
        let at = usize::try_from(addr - GUEST_BASE).expect("an address in the image");
        assert!(at + bytes.len() <= IMAGE_LEN);
        if self.image.len() < at + bytes.len() {
            self.image.resize(at + bytes.len(), 0);
        }
        self.image[at..at + bytes.len()].copy_from_slice(bytes);
        self
    }
}
