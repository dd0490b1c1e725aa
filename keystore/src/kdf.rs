//! Key derivation: scrypt and PBKDF2-HMAC-SHA256, with cost limits, shared by the EIP-2335
//! `crypto.kdf` module and the Web3 Secret Storage `crypto.kdf`/`crypto.kdfparams` pair (whose
//! parameter names are the same; only the JSON paths named in errors differ, see [`Fields`]).

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use serde_json::{Map, Value};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::Error;

/// The largest KDF costs the keystores of this crate accept, to decrypt and to encrypt
/// ([`Keystore`](crate::Keystore), [`web3::Crypto`](crate::web3::Crypto)).
///
/// They admit the parameters every common tool writes (scrypt `n = 2^18, r = 8, p = 1`, the
/// Web3 Secret Storage test vector's `n = 2^18, r = 1, p = 8`, PBKDF2 `c = 2^18`) with headroom,
/// and bound the worst case at a few seconds of CPU and
/// [`SCRYPT_MAX_MEMORY`](limits::SCRYPT_MAX_MEMORY) of memory.
pub mod limits {
    /// Largest scrypt `n` (CPU/memory cost): 2^18. `n` must also be a power of two, at least 2.
    pub const SCRYPT_MAX_N: u64 = 1 << 18;
    /// Largest scrypt `r` (block size).
    pub const SCRYPT_MAX_R: u64 = 8;
    /// Largest scrypt `p` (parallelism; computed sequentially here, so it multiplies the time).
    pub const SCRYPT_MAX_P: u64 = 16;
    /// Largest scrypt work `n * r * p` (the time is proportional to it): 2^23, four times the
    /// common `n = 2^18, r = 8, p = 1`.
    pub const SCRYPT_MAX_WORK: u64 = 1 << 23;
    /// Most memory scrypt may need for its table, `n * r * 128` bytes: 256 MiB.
    pub const SCRYPT_MAX_MEMORY: u64 = 256 << 20;
    /// Largest PBKDF2 iteration count `c`: 2^20.
    pub const PBKDF2_MAX_C: u64 = 1 << 20;
}

const _: () = assert!(limits::SCRYPT_MAX_N * limits::SCRYPT_MAX_R * 128 <= limits::SCRYPT_MAX_MEMORY);

/// The JSON paths a KDF error names, for one keystore format.
#[derive(Debug)]
pub(crate) struct Fields {
    pub function: &'static str,
    pub params: &'static str,
    pub n: &'static str,
    pub r: &'static str,
    pub p: &'static str,
    pub c: &'static str,
    pub prf: &'static str,
    pub dklen: &'static str,
    pub salt: &'static str,
}

impl Fields {
    /// EIP-2335: `crypto.kdf.function` and `crypto.kdf.params.*`.
    pub const EIP2335: Fields = Fields {
        function: "crypto.kdf.function",
        params: "crypto.kdf.params",
        n: "crypto.kdf.params.n",
        r: "crypto.kdf.params.r",
        p: "crypto.kdf.params.p",
        c: "crypto.kdf.params.c",
        prf: "crypto.kdf.params.prf",
        dklen: "crypto.kdf.params.dklen",
        salt: "crypto.kdf.params.salt",
    };
    /// Web3 Secret Storage v3: `crypto.kdf` and `crypto.kdfparams.*`.
    pub const WEB3: Fields = Fields {
        function: "crypto.kdf",
        params: "crypto.kdfparams",
        n: "crypto.kdfparams.n",
        r: "crypto.kdfparams.r",
        p: "crypto.kdfparams.p",
        c: "crypto.kdfparams.c",
        prf: "crypto.kdfparams.prf",
        dklen: "crypto.kdfparams.dklen",
        salt: "crypto.kdfparams.salt",
    };
}

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
    /// Errors name the EIP-2335 paths (`crypto.kdf.params.n`, ...).
    ///
    /// # Errors
    /// [`Error::Malformed`] for a zero or (scrypt `n`) non-power-of-two value,
    /// [`Error::KdfTooCostly`] for a value above its limit (for scrypt's total work
    /// `n * r * p`, it names `p`, with the largest `p` the given `n` and `r` allow).
    pub fn check(&self) -> Result<(), Error> {
        self.check_named(&Fields::EIP2335)
    }

    /// [`Kdf::check`], naming the paths of `fields`.
    pub(crate) fn check_named(&self, fields: &Fields) -> Result<(), Error> {
        match *self {
            Kdf::Scrypt { n, r, p } => {
                if n < 2 || !n.is_power_of_two() {
                    return Err(Error::malformed(fields.n, "must be a power of two, at least 2"));
                }
                positive(fields.r, r)?;
                positive(fields.p, p)?;
                at_most(fields.n, n, limits::SCRYPT_MAX_N)?;
                at_most(fields.r, r, limits::SCRYPT_MAX_R)?;
                at_most(fields.p, p, limits::SCRYPT_MAX_P)?;
                // n * r <= 2^21 here, so the products cannot overflow.
                at_most(fields.p, p, limits::SCRYPT_MAX_WORK / (n * r))
            }
            Kdf::Pbkdf2 { c } => {
                positive(fields.c, c)?;
                at_most(fields.c, c, limits::PBKDF2_MAX_C)
            }
        }
    }

    /// Reads a KDF: the function, its cost parameters and the salt. Checks `dklen` (32) and
    /// `prf` (`hmac-sha256`), and the limits; errors name the paths of `fields`.
    pub(crate) fn from_module(
        function: &str,
        params: &Map<String, Value>,
        fields: &Fields,
    ) -> Result<(Kdf, Vec<u8>), Error> {
        let kdf = match function {
            "scrypt" => Kdf::Scrypt {
                n: uint(params, "n", fields.n)?,
                r: uint(params, "r", fields.r)?,
                p: uint(params, "p", fields.p)?,
            },
            "pbkdf2" => {
                let prf = string(params, "prf", fields.prf)?;
                if prf != "hmac-sha256" {
                    return Err(Error::unsupported(fields.prf, prf));
                }
                Kdf::Pbkdf2 { c: uint(params, "c", fields.c)? }
            }
            other => return Err(Error::unsupported(fields.function, other)),
        };
        let dklen = uint(params, "dklen", fields.dklen)?;
        if dklen != 32 {
            return Err(Error::unsupported(fields.dklen, &dklen.to_string()));
        }
        kdf.check_named(fields)?;
        let salt = string(params, "salt", fields.salt)?;
        let salt = hex::decode(salt).map_err(|e| Error::malformed(fields.salt, e.to_string()))?;
        Ok((kdf, salt))
    }

    /// The `function` name and `params` object of a `crypto.kdf` module (the same object is
    /// Web3 Secret Storage's `crypto.kdfparams`).
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
        self.derive_named(password, salt, &Fields::EIP2335)
    }

    /// [`Kdf::derive`], naming the paths of `fields` in (unexpected) errors.
    pub(crate) fn derive_named(
        self,
        password: &[u8],
        salt: &[u8],
        fields: &'static Fields,
    ) -> Result<Zeroizing<[u8; 32]>, Error> {
        let mut key = Zeroizing::new([0u8; 32]);
        match self {
            Kdf::Scrypt { n, r, p } => {
                let invalid = |_| Error::malformed(fields.params, "invalid scrypt parameters");
                // Within the limits these conversions cannot fail; map them to errors anyway.
                let log_n = u8::try_from(n.trailing_zeros()).map_err(invalid)?;
                let r = u32::try_from(r).map_err(invalid)?;
                let p = u32::try_from(p).map_err(invalid)?;
                let params = scrypt::Params::new(log_n, r, p)
                    .map_err(|_| Error::malformed(fields.params, "invalid scrypt parameters"))?;
                reserve_probe(n, r)?;
                scrypt::scrypt(password, salt, &params, key.as_mut_slice())
                    .map_err(|_| Error::malformed(fields.dklen, "invalid output length"))?;
            }
            Kdf::Pbkdf2 { c } => {
                let c =
                    u32::try_from(c).map_err(|_| Error::malformed(fields.c, "invalid iteration count"))?;
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
        let (n, r) = (limits::SCRYPT_MAX_N, limits::SCRYPT_MAX_R);
        Kdf::Scrypt { n, r, p: limits::SCRYPT_MAX_WORK / (n * r) }.check().unwrap();
        Kdf::Scrypt { n: 1 << 10, r, p: limits::SCRYPT_MAX_P }.check().unwrap();
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
        assert_eq!(too_costly(Kdf::Scrypt { n: 1 << 10, r: 1, p: 17 }), "crypto.kdf.params.p");
        // Each within its own limit, but n * r * p above SCRYPT_MAX_WORK.
        assert_eq!(too_costly(Kdf::Scrypt { n: 1 << 18, r: 8, p: 5 }), "crypto.kdf.params.p");
        assert_eq!(
            Kdf::Scrypt { n: 1 << 18, r: 8, p: 5 }.check(),
            Err(Error::KdfTooCostly { param: "crypto.kdf.params.p", value: 5, max: 4 })
        );
        // At the work limit exactly: accepted.
        Kdf::Scrypt { n: 1 << 18, r: 2, p: 16 }.check().unwrap();
        Kdf::Scrypt { n: 1 << 18, r: 8, p: 4 }.check().unwrap();
        Kdf::Scrypt { n: 1 << 18, r: 1, p: 8 }.check().unwrap();
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
            assert_eq!(Kdf::from_module(function, &params, &Fields::EIP2335).unwrap(), (kdf, salt.to_vec()));
        }
    }

    #[test]
    fn module_checks_prf_and_dklen() {
        let (function, mut params) = Kdf::PBKDF2_DEFAULT.to_module(&[1; 32]);
        params.insert("prf".into(), "hmac-sha512".into());
        let err = Kdf::from_module(function, &params, &Fields::EIP2335).unwrap_err();
        assert!(matches!(err, Error::Unsupported { field: "crypto.kdf.params.prf", .. }));
        params.remove("prf");
        let err = Kdf::from_module(function, &params, &Fields::EIP2335).unwrap_err();
        assert!(matches!(err, Error::Malformed { field: "crypto.kdf.params.prf", .. }));

        let (function, mut params) = Kdf::SCRYPT_DEFAULT.to_module(&[1; 32]);
        params.insert("dklen".into(), 64.into());
        let err = Kdf::from_module(function, &params, &Fields::EIP2335).unwrap_err();
        assert!(matches!(err, Error::Unsupported { field: "crypto.kdf.params.dklen", .. }));
        params.insert("dklen".into(), (-32).into());
        let err = Kdf::from_module(function, &params, &Fields::EIP2335).unwrap_err();
        assert!(matches!(err, Error::Malformed { field: "crypto.kdf.params.dklen", .. }));
    }

    #[test]
    fn rfc7914_scrypt_vector() {
        // RFC 7914 section 12, second vector (first 32 of its 64 output bytes; scrypt's output is
        // a PBKDF2 stream, so a shorter output is a prefix of the longer one).
        let key = Kdf::Scrypt { n: 1024, r: 8, p: 16 };
        key.check().unwrap();
        let out = key.derive(b"password", b"NaCl").unwrap();
        assert_eq!(hex::encode(*out), "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162");
    }
}
