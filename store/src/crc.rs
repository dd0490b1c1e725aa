//! CRC-32 (IEEE 802.3, reflected polynomial `0xEDB88320`), the checksum of zlib and PNG, with a
//! table built at compile time.

const TABLE: [u32; 256] = table();

const fn table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

/// A running CRC-32.
#[derive(Debug, Clone, Copy)]
pub struct Crc32(u32);

impl Crc32 {
    /// A checksum of no bytes yet.
    pub fn new() -> Self {
        Crc32(!0)
    }

    /// Adds `bytes` to the checksum.
    pub fn update(mut self, bytes: &[u8]) -> Self {
        for &b in bytes {
            self.0 = TABLE[usize::from(self.0 as u8 ^ b)] ^ (self.0 >> 8);
        }
        self
    }

    /// The checksum of everything added.
    pub fn finish(self) -> u32 {
        !self.0
    }
}

#[cfg(test)]
mod tests {
    use super::Crc32;

    #[test]
    fn matches_the_standard_check_values() {
        assert_eq!(Crc32::new().finish(), 0);
        assert_eq!(Crc32::new().update(b"123456789").finish(), 0xCBF4_3926);
        let whole = Crc32::new().update(b"The quick brown fox jumps over the lazy dog").finish();
        assert_eq!(whole, 0x414F_A339);
        let split = Crc32::new().update(b"The quick brown ").update(b"fox jumps over the lazy dog");
        assert_eq!(split.finish(), whole);
    }
}
