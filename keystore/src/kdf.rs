//! The `crypto.kdf` module: scrypt and PBKDF2-HMAC-SHA256, with cost limits.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use serde_json::{Map, Value};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::Error;

/// The largest KDF costs [`Keystore::decrypt`](crate::Keystore::decrypt) and
/// [`Keystore::encrypt`](crate::Keystore::encrypt) accept.
///
/// They admit the parameters every common tool writes (scrypt `n = 2^18, r = 8, p = 1`, PBKDF2
/// `c = 2^18`) with headroom, and bound the worst case at a few seconds of CPU and
/// [`SCRYPT_MAX_MEMORY`](limits::SCRYPT_MAX_MEMORY) of memory.
pub mod limits {
    /// Largest scrypt `n` (CPU/memory cost): 2^18. `n` must also be a power of two, at least 2.
    pub const SCRYPT_MAX_N: u64 = 1 << 18;
    /// Largest scrypt `r` (block size).
    pub const SCRYPT_MAX_R: u64 = 8;
    /// Largest scrypt `p` (parallelism; computed sequentially here, so it multiplies the time).
    pub const SCRYPT_MAX_P: u64 = 4;
    /// Most memory scrypt may need for its table, `n * r * 128` bytes: 256 MiB.
    pub const SCRYPT_MAX_MEMORY: u64 = 256 << 20;
    /// Largest PBKDF2 iteration count `c`: 2^20.
    pub const PBKDF2_MAX_C: u64 = 1 << 20;
}

const _: () = assert!(limits::SCRYPT_MAX_N * limits::SCRYPT_MAX_R * 128 <= limits::SCRYPT_MAX_MEMORY);

/// A key-derivation function with its cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kdf {
    /// scrypt (RFC 7914). `n` is the cost itself (a power of two), not its logarithm.
    Scrypt {
        /// CPU/memory cost, a power of two, 2..=[`limits::SCRYPT_MAX_N`].
        n: u64,
        /// Block size, 1..=[`limits::SCRYPT_MAX_R`].
        r: u64,
        /// Parallelism, 1..=[`limits::SCRYPT_MAX_P`].
        p: u64,
    },
    /// PBKDF2 with HMAC-SHA256 (RFC 8018).
    Pbkdf2 {
        /// Iteration count, 1..=[`limits::PBKDF2_MAX_C`].
        c: u64,
    },
}

impl Kdf {
    /// What the EIP-2335 scrypt test vector and most tools use: `n = 2^18, r = 8, p = 1`.
    pub const SCRYPT_DEFAULT: Kdf = Kdf::Scrypt { n: 1 << 18, r: 8, p: 1 };
    /// What the EIP-2335 PBKDF2 test vector and most tools use: `c = 2^18`.
    pub const PBKDF2_DEFAULT: Kdf = Kdf::Pbkdf2 { c: 1 << 18 };

    /// Checks the parameters are valid and within [`limits`], without computing anything.
    ///
    /// # Errors
    /// [`Error::Malformed`] for a zero or (scrypt `n`) non-power-of-two value,
    /// [`Error::KdfTooCostly`] for a value above its limit.
    pub fn check(&self) -> Result<(), Error> {
        match *self {
            Kdf::Scrypt { n, r, p } => {
                if n < 2 || !n.is_power_of_two() {
                    return Err(Error::malformed(
                        "crypto.kdf.params.n",
                        "must be a power of two, at least 2",
                    ));
                }
                positive("crypto.kdf.params.r", r)?;
                positive("crypto.kdf.params.p", p)?;
                at_most("crypto.kdf.params.n", n, limits::SCRYPT_MAX_N)?;
                at_most("crypto.kdf.params.r", r, limits::SCRYPT_MAX_R)?;
                at_most("crypto.kdf.params.p", p, limits::SCRYPT_MAX_P)
            }
            Kdf::Pbkdf2 { c } => {
                positive("crypto.kdf.params.c", c)?;
                at_most("crypto.kdf.params.c", c, limits::PBKDF2_MAX_C)
            }
        }
    }

    /// Reads a `crypto.kdf` module: the function, its cost parameters and the salt. Checks
    /// `dklen` (32) and `prf` (`hmac-sha256`), and the limits.
    pub(crate) fn from_module(function: &str, params: &Map<String, Value>) -> Result<(Kdf, Vec<u8>), Error> {
        let kdf = match function {
            "scrypt" => Kdf::Scrypt {
                n: uint(params, "n", "crypto.kdf.params.n")?,
                r: uint(params, "r", "crypto.kdf.params.r")?,
                p: uint(params, "p", "crypto.kdf.params.p")?,
            },
            "pbkdf2" => {
                let prf = string(params, "prf", "crypto.kdf.params.prf")?;
                if prf != "hmac-sha256" {
                    return Err(Error::unsupported("crypto.kdf.params.prf", prf));
                }
                Kdf::Pbkdf2 { c: uint(params, "c", "crypto.kdf.params.c")? }
            }
            other => return Err(Error::unsupported("crypto.kdf.function", other)),
        };
        let dklen = uint(params, "dklen", "crypto.kdf.params.dklen")?;
        if dklen != 32 {
            return Err(Error::unsupported("crypto.kdf.params.dklen", &dklen.to_string()));
        }
        kdf.check()?;
        let salt = string(params, "salt", "crypto.kdf.params.salt")?;
        let salt =
            hex::decode(salt).map_err(|e| Error::malformed("crypto.kdf.params.salt", e.to_string()))?;
        Ok((kdf, salt))
    }

    /// The `function` name and `params` object of a `crypto.kdf` module.
    pub(crate) fn to_module(self, salt: &[u8]) -> (&'static str, Map<String, Value>) {
        let mut params = Map::new();
        params.insert("dklen".into(), 32.into());
        let function = match self {
            Kdf::Scrypt { n, r, p } => {
                params.insert("n".into(), n.into());
                params.insert("r".into(), r.into());
                params.insert("p".into(), p.into());
                "scrypt"
            }
            Kdf::Pbkdf2 { c } => {
                params.insert("c".into(), c.into());
                params.insert("prf".into(), "hmac-sha256".into());
                "pbkdf2"
            }
        };
        params.insert("salt".into(), hex::encode(salt).into());
        (function, params)
    }

    /// Derives the 32-byte decryption key. The parameters must have passed [`Kdf::check`].
    pub(crate) fn derive(self, password: &[u8], salt: &[u8]) -> Result<Zeroizing<[u8; 32]>, Error> {
        let mut key = Zeroizing::new([0u8; 32]);
        match self {
            Kdf::Scrypt { n, r, p } => {
                let invalid = |_| Error::malformed("crypto.kdf.params", "invalid scrypt parameters");
                // Within the limits these conversions cannot fail; map them to errors anyway.
                let log_n = u8::try_from(n.trailing_zeros()).map_err(invalid)?;
                let r = u32::try_from(r).map_err(invalid)?;
                let p = u32::try_from(p).map_err(invalid)?;
                let params = scrypt::Params::new(log_n, r, p)
                    .map_err(|_| Error::malformed("crypto.kdf.params", "invalid scrypt parameters"))?;
                reserve_probe(n, r)?;
                scrypt::scrypt(password, salt, &params, key.as_mut_slice())
                    .map_err(|_| Error::malformed("crypto.kdf.params.dklen", "invalid output length"))?;
            }
            Kdf::Pbkdf2 { c } => {
                let c = u32::try_from(c)
                    .map_err(|_| Error::malformed("crypto.kdf.params.c", "invalid iteration count"))?;
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, c, key.as_mut_slice());
            }
        }
        Ok(key)
    }
}

/// Fails cleanly, instead of aborting inside `scrypt`, when the heap cannot hold its table.
fn reserve_probe(n: u64, r: u32) -> Result<(), Error> {
    let bytes = usize::try_from(n.saturating_mul(u64::from(r)).saturating_mul(128)).unwrap_or(usize::MAX);
    let mut probe: Vec<u8> = Vec::new();
    probe.try_reserve_exact(bytes).map_err(|_| Error::OutOfMemory { bytes })
}

fn positive(param: &'static str, value: u64) -> Result<(), Error> {
    if value == 0 { Err(Error::malformed(param, "must be at least 1")) } else { Ok(()) }
}

fn at_most(param: &'static str, value: u64, max: u64) -> Result<(), Error> {
    if value > max { Err(Error::KdfTooCostly { param, value, max }) } else { Ok(()) }
}

fn field<'a>(params: &'a Map<String, Value>, key: &str, path: &'static str) -> Result<&'a Value, Error> {
    params.get(key).ok_or_else(|| Error::malformed(path, "missing"))
}

fn uint(params: &Map<String, Value>, key: &str, path: &'static str) -> Result<u64, Error> {
    field(params, key, path)?.as_u64().ok_or_else(|| Error::malformed(path, "must be an unsigned integer"))
}

fn string<'a>(params: &'a Map<String, Value>, key: &str, path: &'static str) -> Result<&'a str, Error> {
    field(params, key, path)?.as_str().ok_or_else(|| Error::malformed(path, "must be a string"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn too_costly(kdf: Kdf) -> &'static str {
        match kdf.check() {
            Err(Error::KdfTooCostly { param, .. }) => param,
            other => panic!("{kdf:?}: expected KdfTooCostly, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_within_limits() {
        Kdf::SCRYPT_DEFAULT.check().unwrap();
        Kdf::PBKDF2_DEFAULT.check().unwrap();
        Kdf::Scrypt { n: limits::SCRYPT_MAX_N, r: limits::SCRYPT_MAX_R, p: limits::SCRYPT_MAX_P }
            .check()
            .unwrap();
        Kdf::Pbkdf2 { c: limits::PBKDF2_MAX_C }.check().unwrap();
        Kdf::Scrypt { n: 2, r: 1, p: 1 }.check().unwrap();
        Kdf::Pbkdf2 { c: 1 }.check().unwrap();
    }

    #[test]
    fn over_limit_is_refused() {
        assert_eq!(too_costly(Kdf::Scrypt { n: 1 << 19, r: 8, p: 1 }), "crypto.kdf.params.n");
        assert_eq!(too_costly(Kdf::Scrypt { n: 1 << 63, r: 1, p: 1 }), "crypto.kdf.params.n");
        assert_eq!(too_costly(Kdf::Scrypt { n: 1 << 10, r: 9, p: 1 }), "crypto.kdf.params.r");
        assert_eq!(too_costly(Kdf::Scrypt { n: 1 << 10, r: u64::MAX, p: 1 }), "crypto.kdf.params.r");
        assert_eq!(too_costly(Kdf::Scrypt { n: 1 << 10, r: 1, p: 5 }), "crypto.kdf.params.p");
        assert_eq!(too_costly(Kdf::Pbkdf2 { c: (1 << 20) + 1 }), "crypto.kdf.params.c");
        assert_eq!(too_costly(Kdf::Pbkdf2 { c: u64::MAX }), "crypto.kdf.params.c");
    }

    #[test]
    fn invalid_values_are_malformed() {
        for kdf in [
            Kdf::Scrypt { n: 0, r: 1, p: 1 },
            Kdf::Scrypt { n: 1, r: 1, p: 1 },
            Kdf::Scrypt { n: 3, r: 1, p: 1 },
            Kdf::Scrypt { n: (1 << 18) + 1, r: 1, p: 1 },
            Kdf::Scrypt { n: 4, r: 0, p: 1 },
            Kdf::Scrypt { n: 4, r: 1, p: 0 },
            Kdf::Pbkdf2 { c: 0 },
        ] {
            assert!(matches!(kdf.check(), Err(Error::Malformed { .. })), "{kdf:?}");
        }
    }

    #[test]
    fn module_round_trip() {
        let salt = [7u8; 32];
        for kdf in [Kdf::SCRYPT_DEFAULT, Kdf::PBKDF2_DEFAULT] {
            let (function, params) = kdf.to_module(&salt);
            assert_eq!(Kdf::from_module(function, &params).unwrap(), (kdf, salt.to_vec()));
        }
    }

    #[test]
    fn module_checks_prf_and_dklen() {
        let (function, mut params) = Kdf::PBKDF2_DEFAULT.to_module(&[1; 32]);
        params.insert("prf".into(), "hmac-sha512".into());
        let err = Kdf::from_module(function, &params).unwrap_err();
        assert!(matches!(err, Error::Unsupported { field: "crypto.kdf.params.prf", .. }));
        params.remove("prf");
        let err = Kdf::from_module(function, &params).unwrap_err();
        assert!(matches!(err, Error::Malformed { field: "crypto.kdf.params.prf", .. }));

        let (function, mut params) = Kdf::SCRYPT_DEFAULT.to_module(&[1; 32]);
        params.insert("dklen".into(), 64.into());
        let err = Kdf::from_module(function, &params).unwrap_err();
        assert!(matches!(err, Error::Unsupported { field: "crypto.kdf.params.dklen", .. }));
        params.insert("dklen".into(), (-32).into());
        let err = Kdf::from_module(function, &params).unwrap_err();
        assert!(matches!(err, Error::Malformed { field: "crypto.kdf.params.dklen", .. }));
    }

    #[test]
    fn rfc7914_scrypt_vector() {
        // RFC 7914 section 12, second vector (first 32 of its 64 output bytes; scrypt's output is
        // a PBKDF2 stream, so a shorter output is a prefix of the longer one).
        let key = Kdf::Scrypt { n: 1024, r: 8, p: 16 };
        // p = 16 is above our limit; derive() itself does not re-check, check() does.
        assert!(key.check().is_err());
        let out = key.derive(b"password", b"NaCl").unwrap();
        assert_eq!(hex::encode(*out), "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162");
    }
}
