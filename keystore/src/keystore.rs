//! The keystore JSON model, decryption and encryption.

use aes::Aes128;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use ctr::Ctr128BE;
use ctr::cipher::{KeyIvInit, StreamCipher};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::kdf::Fields;
use crate::{Error, Kdf, Secret, process_password};

/// An EIP-2335 keystore, as its JSON has it. Unknown top-level fields are ignored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keystore {
    /// The three modules: `kdf`, `checksum` and `cipher`.
    pub crypto: Crypto,
    /// Free text; optional in the JSON (empty if absent).
    #[serde(default)]
    pub description: String,
    /// The public key of the secret, as hex (48 bytes for BLS12-381); optional in the JSON.
    #[serde(default)]
    pub pubkey: String,
    /// The EIP-2334 derivation path, e.g. `m/12381/3600/0/0/0`, or empty.
    pub path: String,
    /// An RFC 4122 UUID naming the keystore.
    pub uuid: String,
    /// Always 4 for EIP-2335; other values are [`Error::Unsupported`] on decrypt.
    pub version: u64,
}

/// The `crypto` object of a keystore.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Crypto {
    /// Password to decryption key: `scrypt` or `pbkdf2`; `params` hold the cost and the salt.
    pub kdf: Module,
    /// Password check: `sha256`; `message` is SHA-256(key[16..32] ‖ ciphertext) as hex.
    pub checksum: Module,
    /// The encrypted secret: `aes-128-ctr`; `params.iv` and the ciphertext `message` are hex.
    pub cipher: Module,
}

/// One EIP-2335 module: a function name, its parameters, and its input `message`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Module {
    /// Which construction, e.g. `scrypt`, `sha256`, `aes-128-ctr`.
    pub function: String,
    /// Its parameters, kept as JSON so that unknown functions still round-trip.
    pub params: Map<String, Value>,
    /// Its input, as hex (empty for the KDF).
    pub message: String,
}

/// The parts of a keystore needed to check the password and decrypt, validated up front.
struct Parsed {
    kdf: Kdf,
    salt: Vec<u8>,
    checksum: [u8; 32],
    iv: [u8; 16],
    ciphertext: [u8; 32],
}

impl Keystore {
    /// Parses keystore JSON. Only the structure is checked here (required fields and their
    /// JSON types); the values are checked by [`Keystore::decrypt`].
    ///
    /// # Errors
    /// [`Error::Malformed`] with `field` = `json` and serde_json's message.
    pub fn from_json(json: &str) -> Result<Self, Error> {
        serde_json::from_str(json).map_err(|e| Error::malformed("json", e.to_string()))
    }

    /// The keystore as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        // Strings, integers and maps with string keys always serialise.
        serde_json::to_string_pretty(self).expect("a keystore always serialises to JSON")
    }

    /// Recovers the 32-byte secret with `password`, processed as EIP-2335 requires (see
    /// [`process_password`]).
    ///
    /// Every field is validated, and the KDF cost checked against [`crate::limits`], before the
    /// KDF runs. The checksum is compared in constant time.
    ///
    /// # Errors
    /// [`Error::WrongPassword`] if the checksum does not match; [`Error::Unsupported`],
    /// [`Error::Malformed`], [`Error::KdfTooCostly`] or [`Error::OutOfMemory`] if the keystore
    /// cannot be used (checked before any expensive work, except `OutOfMemory`).
    pub fn decrypt(&self, password: &str) -> Result<Secret, Error> {
        let parsed = self.parse()?;
        let password = process_password(password);
        let key = parsed.kdf.derive(&password, &parsed.salt)?;
        let expected = checksum(&key, &parsed.ciphertext);
        if !bool::from(expected.ct_eq(&parsed.checksum)) {
            return Err(Error::WrongPassword);
        }
        let mut secret = Zeroizing::new(parsed.ciphertext);
        aes_ctr(&key, &parsed.iv, secret.as_mut_slice());
        Ok(secret)
    }

    /// Makes a keystore holding `secret` under `password`.
    ///
    /// `salt` (KDF salt), `iv` (AES-CTR IV) and `uuid` (an RFC 4122 v4 UUID, as text) **must come
    /// from a cryptographically secure RNG**, fresh for every keystore: a repeated salt and IV
    /// with the same password repeat the AES key stream. `pubkey_hex` is the public key of
    /// `secret` as hex without `0x` (empty if none); `path` its EIP-2334 path (may be empty). The
    /// description is left empty; set the field afterwards if wanted.
    ///
    /// # Errors
    /// [`Error::Malformed`] if `pubkey_hex` is not hex or `kdf` is invalid,
    /// [`Error::KdfTooCostly`] if `kdf` is above [`crate::limits`] (the limits apply to both
    /// directions, so this crate can always decrypt what it makes), [`Error::OutOfMemory`].
    #[expect(clippy::too_many_arguments, reason = "mirrors the fields of the keystore")]
    pub fn encrypt(
        secret: &[u8; 32],
        password: &str,
        pubkey_hex: &str,
        path: &str,
        kdf: Kdf,
        salt: [u8; 32],
        iv: [u8; 16],
        uuid: &str,
    ) -> Result<Keystore, Error> {
        kdf.check()?;
        hex::decode(pubkey_hex).map_err(|e| Error::malformed("pubkey", e.to_string()))?;
        let password = process_password(password);
        let key = kdf.derive(&password, &salt)?;
        let mut ciphertext = Zeroizing::new(*secret);
        aes_ctr(&key, &iv, ciphertext.as_mut_slice());

        let (function, params) = kdf.to_module(&salt);
        let mut cipher_params = Map::new();
        cipher_params.insert("iv".into(), hex::encode(iv).into());
        Ok(Keystore {
            crypto: Crypto {
                kdf: Module { function: function.into(), params, message: String::new() },
                checksum: Module {
                    function: "sha256".into(),
                    params: Map::new(),
                    message: hex::encode(checksum(&key, &ciphertext)),
                },
                cipher: Module {
                    function: "aes-128-ctr".into(),
                    params: cipher_params,
                    message: hex::encode(*ciphertext),
                },
            },
            description: String::new(),
            pubkey: pubkey_hex.into(),
            path: path.into(),
            uuid: uuid.into(),
            version: 4,
        })
    }

    /// Validates everything `decrypt` reads, so that no work is done on a bad keystore.
    fn parse(&self) -> Result<Parsed, Error> {
        if self.version != 4 {
            return Err(Error::unsupported("version", &self.version.to_string()));
        }
        let Crypto { kdf, checksum, cipher } = &self.crypto;
        let (kdf, salt) = Kdf::from_module(&kdf.function, &kdf.params, &Fields::EIP2335)?;

        if checksum.function != "sha256" {
            return Err(Error::unsupported("crypto.checksum.function", &checksum.function));
        }
        let checksum = hex_array(&checksum.message, "crypto.checksum.message")?;

        if cipher.function != "aes-128-ctr" {
            return Err(Error::unsupported("crypto.cipher.function", &cipher.function));
        }
        let iv = cipher
            .params
            .get("iv")
            .ok_or_else(|| Error::malformed("crypto.cipher.params.iv", "missing"))?
            .as_str()
            .ok_or_else(|| Error::malformed("crypto.cipher.params.iv", "must be a string"))?;
        let iv = hex_array(iv, "crypto.cipher.params.iv")?;
        let ciphertext = hex_array(&cipher.message, "crypto.cipher.message")?;
        Ok(Parsed { kdf, salt, checksum, iv, ciphertext })
    }
}

/// SHA-256(key[16..32] ‖ ciphertext), the EIP-2335 password checksum.
fn checksum(key: &[u8; 32], ciphertext: &[u8; 32]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(&key[16..]);
    hash.update(ciphertext);
    hash.finalize().into()
}

/// AES-128-CTR (128-bit big-endian counter, as RFC 3686 and EIP-2335) keyed by key[..16],
/// applied in place. Web3 v3 files use the same cipher.
pub(crate) fn aes_ctr(key: &[u8; 32], iv: &[u8; 16], data: &mut [u8]) {
    let aes_key: &[u8; 16] = key[..16].try_into().expect("16 of 32 bytes");
    let mut cipher = Ctr128BE::<Aes128>::new(aes_key.into(), iv.into());
    cipher.apply_keystream(data);
}

/// Hex text of exactly `N` bytes.
fn hex_array<const N: usize>(text: &str, field: &'static str) -> Result<[u8; N], Error> {
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).map_err(|e| match e {
        hex::FromHexError::InvalidStringLength | hex::FromHexError::OddLength => {
            Error::malformed(field, alloc::format!("must be {N} bytes ({} hex digits)", 2 * N))
        }
        other => Error::malformed(field, other.to_string()),
    })?;
    Ok(out)
}
