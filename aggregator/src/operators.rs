//! The operator set file: who may sign, with which key (BN254 or BLS12-381: one scheme per
//! set), how much stake each has in which quorum, and where its node takes tasks. Every entry is
//! checked when the file is loaded; see `docs/aggregator.md` for the format.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::Path;

use avs_protocol::encoding::u256_string::parse_u256;
use avs_protocol::encoding::{from_hex, to_hex};
use avs_protocol::{OperatorPublicKey, Scheme, bls, bn254};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// Most operators a set may hold (a bound on per-task work, not a protocol limit).
pub const MAX_OPERATORS: usize = 10_000;

/// The file as written: an optional `scheme` and `[[operator]]` tables.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorSetFile {
    /// `"bn254"` or `"bls12-381"`; when absent, the scheme of the first operator's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// The operators, in any order.
    #[serde(default)]
    pub operator: Vec<OperatorEntry>,
}

/// One `[[operator]]` table, before validation: a BLS12-381 operator has `pubkey`, a BN254
/// operator `g1` and `g2`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorEntry {
    /// An optional label for logs and errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `0x` + 32 bytes: the operator id of the key (`keccak256(X ‖ Y)` of the G1 key for BN254,
    /// `keccak256(pubkey)` for BLS12-381).
    pub id: String,
    /// BLS12-381: `0x` + 48 bytes, the compressed G1 public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pubkey: Option<String>,
    /// BN254: the G1 public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub g1: Option<G1Key>,
    /// BN254: the G2 public key, in the contracts' order (`X.c1 ‖ X.c0 ‖ Y.c1 ‖ Y.c0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub g2: Option<G2Key>,
    /// The proof of possession of the key's secret: `0x` + 64 bytes (BN254,
    /// `avs_protocol::bn254::pop_prove`) or 96 bytes (BLS12-381, `PopProve`).
    pub pop: String,
    /// Stake per quorum number: `stake = { 0 = 100, 1 = 50 }`.
    pub stake: BTreeMap<String, u64>,
    /// The node's HTTP base URL; tasks are POSTed to `address` + `/task`.
    pub address: String,
}

/// A BN254 G1 key as written: `0x` hex of `X ‖ Y` (64 bytes), or its coordinates, each a
/// decimal or `0x` hex string (`{ x = "1", y = "2" }`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum G1Key {
    /// `0x` + 64 bytes.
    Hex(String),
    /// The affine coordinates.
    Coordinates {
        /// X, below the field modulus.
        x: String,
        /// Y, below the field modulus.
        y: String,
    },
}

/// A BN254 G2 key as written: `0x` hex of `X.c1 ‖ X.c0 ‖ Y.c1 ‖ Y.c0` (128 bytes), or its
/// coordinates in the same order, as `spacecore keys pubkey --json` prints them
/// (`{ x = ["<X.c1>", "<X.c0>"], y = ["<Y.c1>", "<Y.c0>"] }`, each a decimal or `0x` hex string).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum G2Key {
    /// `0x` + 128 bytes.
    Hex(String),
    /// The coordinates, imaginary part first.
    Coordinates {
        /// `[X.c1, X.c0]`.
        x: [String; 2],
        /// `[Y.c1, Y.c0]`.
        y: [String; 2],
    },
}

impl<'de> Deserialize<'de> for G2Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Coordinates {
            x: [String; 2],
            y: [String; 2],
        }
        struct G2Visitor;
        impl<'de> Visitor<'de> for G2Visitor {
            type Value = G2Key;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "`0x` hex of the 128 bytes X.c1 ‖ X.c0 ‖ Y.c1 ‖ Y.c0, or a table \
                     { x = [\"<X.c1>\", \"<X.c0>\"], y = [\"<Y.c1>\", \"<Y.c0>\"] }",
                )
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<G2Key, E> {
                Ok(G2Key::Hex(v.to_owned()))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<G2Key, A::Error> {
                let c = Coordinates::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(G2Key::Coordinates { x: c.x, y: c.y })
            }
        }
        d.deserialize_any(G2Visitor)
    }
}

impl<'de> Deserialize<'de> for G1Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Coordinates {
            x: String,
            y: String,
        }
        struct G1Visitor;
        impl<'de> Visitor<'de> for G1Visitor {
            type Value = G1Key;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`0x` hex of the 64 bytes X ‖ Y, or a table { x = \"…\", y = \"…\" }")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<G1Key, E> {
                Ok(G1Key::Hex(v.to_owned()))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<G1Key, A::Error> {
                let c = Coordinates::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(G1Key::Coordinates { x: c.x, y: c.y })
            }
        }
        d.deserialize_any(G1Visitor)
    }
}

/// Where an operator's node listens, parsed from its `address`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorAddress {
    /// The URL as written.
    pub url: String,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port (80 when the URL has none).
    pub port: u16,
    /// The `Host` header value (`host[:port]` as written).
    pub authority: String,
    /// The base path without a trailing `/` (often empty).
    pub base_path: String,
}

impl OperatorAddress {
    /// Parses an `http://host[:port][/path]` URL; HTTPS, queries and fragments are refused.
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: hyper::Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err("must start with http:// (HTTPS is not supported)".into());
        }
        let authority = uri.authority().ok_or("has no host")?;
        if authority.as_str().contains('@') {
            return Err("must not contain user information".into());
        }
        if uri.query().is_some() || url.contains('#') {
            return Err("must not have a query or fragment".into());
        }
        let host = authority.host().trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err("has an empty host".into());
        }
        Ok(OperatorAddress {
            url: url.to_owned(),
            host: host.to_owned(),
            port: authority.port_u16().unwrap_or(80),
            authority: authority.as_str().to_owned(),
            base_path: uri.path().trim_end_matches('/').to_owned(),
        })
    }

    /// The path of `suffix` (such as `/task`) under the base path.
    pub fn path(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.base_path)
    }
}

/// A validated operator.
#[derive(Debug, Clone)]
pub struct Operator {
    /// The label from the file, if any.
    pub name: Option<String>,
    /// The operator id of [`Operator::public_key`].
    pub id: [u8; 32],
    /// The group-checked public key: from a file, its proof of possession verified; from the
    /// chain, registered in EigenLayer's BLSApkRegistry (which checked its registration
    /// signature).
    pub public_key: OperatorPublicKey,
    /// Stake per quorum the operator is in: non-zero from a file; from the chain, the
    /// StakeRegistry's stake at the task's block, which may be 0.
    pub stake: BTreeMap<u8, u128>,
    /// Where tasks are delivered (from a file); `None` for an operator read from the chain,
    /// whose node reads its tasks from the chain.
    pub address: Option<OperatorAddress>,
    /// The operator's Ethereum account (read from the chain); `None` from a file.
    pub account: Option<[u8; 20]>,
}

impl Operator {
    /// The operator's stake in `quorum` (0 when it is not in it).
    pub fn stake_in(&self, quorum: u8) -> u128 {
        self.stake.get(&quorum).copied().unwrap_or(0)
    }

    /// Whether the operator is in any of `quorums` (has a stake entry for it).
    pub fn in_any(&self, quorums: &[u8]) -> bool {
        quorums.iter().any(|q| self.stake.contains_key(q))
    }

    /// The key's scheme.
    pub fn scheme(&self) -> Scheme {
        self.public_key.scheme()
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{name} ({})", to_hex(&self.id)),
            None => f.write_str(&to_hex(&self.id)),
        }
    }
}

/// Why an operator set was refused.
#[derive(Debug, thiserror::Error)]
pub enum OperatorSetError {
    /// The file could not be read.
    #[error("cannot read operator set {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// The cause (in the message, so not also a `source`).
        error: std::io::Error,
    },
    /// Not TOML, or not the expected tables and fields (the message has the line and column).
    #[error("operator set is not valid: {0}")]
    Syntax(toml::de::Error),
    /// The top-level `scheme` is not a scheme's name.
    #[error("operator set: field `scheme`: {0:?} is not \"bn254\" or \"bls12-381\"")]
    UnknownScheme(String),
    /// No `[[operator]]` at all.
    #[error("operator set has no [[operator]] entries")]
    Empty,
    /// More than [`MAX_OPERATORS`].
    #[error("operator set has {0} operators, more than the {MAX_OPERATORS} allowed")]
    TooMany(usize),
    /// One field of one operator is wrong.
    #[error("operator {operator}: field `{field}`: {reason}")]
    Field {
        /// `#N` (1-based position in the file) and the name, if any.
        operator: String,
        /// The field at fault.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// An operator whose key is of another scheme than the set's.
    #[error(
        "operator {operator}: has a {scheme} key, but the operator set is {set} ({decided_by}); \
         one set has one scheme"
    )]
    MixedSchemes {
        /// `#N` and the name, if any.
        operator: String,
        /// The scheme of its key.
        scheme: Scheme,
        /// The set's scheme.
        set: Scheme,
        /// What decided the set's scheme: its `scheme` field or the first operator.
        decided_by: String,
    },
    /// The BN254 G1 keys of a quorum sum to the identity, so the quorum has no aggregate key.
    #[error("operator set: the G1 keys of quorum {0} sum to the identity")]
    IdentityQuorumApk(u8),
}

/// One operator as the chain records it at a block: its account and id
/// (`OperatorStateRetriever`), its G1 key (`BLSApkRegistry.getRegisteredPubkey`) and G2 key
/// (`BLSApkRegistry.getOperatorPubkeyG2`) as the contracts encode them (`X ‖ Y`;
/// `X.c1 ‖ X.c0 ‖ Y.c1 ‖ Y.c0`), and its stake in each quorum it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainOperator {
    /// The operator's Ethereum account.
    pub account: [u8; 20],
    /// EigenLayer's operator id, `keccak256(X ‖ Y)` of the G1 key.
    pub id: [u8; 32],
    /// The G1 key, `X ‖ Y`.
    pub g1: [u8; bn254::G1_LEN],
    /// The G2 key, `X.c1 ‖ X.c0 ‖ Y.c1 ‖ Y.c0`.
    pub g2: [u8; bn254::G2_LEN],
    /// Stake per quorum the operator is in (0 is possible).
    pub stake: BTreeMap<u8, u128>,
}

/// The validated set, indexed by operator id.
#[derive(Debug, Clone)]
pub struct OperatorSet {
    scheme: Scheme,
    operators: Vec<Operator>,
    by_id: HashMap<[u8; 32], usize>,
    quorum_apks: BTreeMap<u8, bn254::G1Point>,
}

fn decode_fixed<const N: usize>(value: &str) -> Result<[u8; N], String> {
    let bytes = from_hex(value.trim()).ok_or("not 0x-prefixed hex")?;
    let len = bytes.len();
    <[u8; N]>::try_from(bytes).map_err(|_| format!("{len} bytes, expected {N}"))
}

/// `#N ("name")`, how errors name an entry.
fn label(index: usize, entry: &OperatorEntry) -> String {
    match &entry.name {
        Some(name) => format!("#{} ({name:?})", index + 1),
        None => format!("#{}", index + 1),
    }
}

/// The scheme an entry's key fields say: `pubkey` is BLS12-381, `g1` and `g2` are BN254.
fn entry_scheme(entry: &OperatorEntry) -> Result<Scheme, (&'static str, String)> {
    let bn254 = entry.g1.is_some() || entry.g2.is_some();
    match (entry.pubkey.is_some(), bn254) {
        (true, true) => Err((
            "pubkey",
            "is a BLS12-381 key, but the entry also has BN254 `g1`/`g2`: give one scheme's keys".into(),
        )),
        (true, false) => Ok(Scheme::Bls12381),
        (false, true) => Ok(Scheme::Bn254),
        (false, false) => Err((
            "g1",
            "is missing: give `g1` and `g2` (a BN254 operator) or `pubkey` (a BLS12-381 operator)".into(),
        )),
    }
}

/// A 32-byte big-endian coordinate from a decimal or `0x` hex string.
fn coordinate(name: &str, text: &str) -> Result<[u8; 32], String> {
    parse_u256(text.trim())
        .map(|v| v.to_be_bytes::<32>())
        .ok_or_else(|| format!("`{name}` is not a decimal or 0x hex number below 2^256: {text:?}"))
}

/// The G1 key of a BN254 entry, decoded and checked.
fn g1_key(key: &G1Key) -> Result<bn254::G1Point, String> {
    let bytes: [u8; bn254::G1_LEN] = match key {
        G1Key::Hex(hex) => decode_fixed(hex)?,
        G1Key::Coordinates { x, y } => {
            let mut bytes = [0u8; bn254::G1_LEN];
            bytes[..32].copy_from_slice(&coordinate("x", x)?);
            bytes[32..].copy_from_slice(&coordinate("y", y)?);
            bytes
        }
    };
    bn254::G1Point::from_bytes(&bytes).map_err(|e| format!("not a valid G1 point: {e}"))
}

/// The G2 key of a BN254 entry, decoded and checked.
fn g2_key(key: &G2Key) -> Result<bn254::G2Point, String> {
    let bytes: [u8; bn254::G2_LEN] = match key {
        G2Key::Hex(hex) => decode_fixed(hex)?,
        G2Key::Coordinates { x, y } => {
            let mut bytes = [0u8; bn254::G2_LEN];
            let parts = [("x[0]", &x[0]), ("x[1]", &x[1]), ("y[0]", &y[0]), ("y[1]", &y[1])];
            for (i, (name, text)) in parts.into_iter().enumerate() {
                bytes[32 * i..32 * (i + 1)].copy_from_slice(&coordinate(name, text)?);
            }
            bytes
        }
    };
    bn254::G2Point::from_bytes(&bytes)
        .map_err(|e| format!("not a valid G2 point (order X.c1, X.c0, Y.c1, Y.c0): {e}"))
}

type FieldError = (&'static str, String);

/// A BN254 entry's key, with its proof of possession checked.
fn bn254_key(entry: &OperatorEntry) -> Result<OperatorPublicKey, FieldError> {
    let g1 = entry.g1.as_ref().ok_or(("g1", "is missing: a BN254 operator needs `g1` and `g2`".into()))?;
    let g1 = g1_key(g1).map_err(|r| ("g1", r))?;
    let g2 = entry.g2.as_ref().ok_or(("g2", "is missing: a BN254 operator needs `g1` and `g2`".into()))?;
    let g2 = g2_key(g2).map_err(|r| ("g2", r))?;
    let public_key = bn254::PublicKey::new(g1, g2)
        .map_err(|_| ("g2", "is not the G2 key of the same secret as `g1`".to_owned()))?;
    let pop: [u8; bn254::SIGNATURE_LEN] = decode_fixed(&entry.pop).map_err(|r| ("pop", r))?;
    let pop =
        bn254::Signature::from_bytes(&pop).map_err(|e| ("pop", format!("not a valid signature: {e}")))?;
    bn254::pop_verify(&public_key, &pop)
        .map_err(|e| ("pop", format!("proof of possession does not verify for `g1`/`g2`: {e}")))?;
    Ok(OperatorPublicKey::Bn254(public_key))
}

/// A BLS12-381 entry's key, with its proof of possession checked.
fn bls_key(entry: &OperatorEntry) -> Result<OperatorPublicKey, FieldError> {
    let pubkey = entry.pubkey.as_deref().unwrap_or_default();
    let pk_bytes: [u8; bls::PUBLIC_KEY_LEN] = decode_fixed(pubkey).map_err(|r| ("pubkey", r))?;
    let public_key =
        bls::PublicKey::from_bytes(&pk_bytes).map_err(|e| ("pubkey", format!("not a valid key: {e}")))?;
    let pop_bytes: [u8; bls::SIGNATURE_LEN] = decode_fixed(&entry.pop).map_err(|r| ("pop", r))?;
    let pop =
        bls::Signature::from_bytes(&pop_bytes).map_err(|e| ("pop", format!("not a valid signature: {e}")))?;
    bls::pop_verify(&public_key, &pop)
        .map_err(|e| ("pop", format!("proof of possession does not verify for `pubkey`: {e}")))?;
    Ok(OperatorPublicKey::Bls12381(public_key))
}

fn validate(scheme: Scheme, index: usize, entry: &OperatorEntry) -> Result<Operator, OperatorSetError> {
    let label = label(index, entry);
    let field =
        |(field, reason): FieldError| OperatorSetError::Field { operator: label.clone(), field, reason };
    let public_key = match scheme {
        Scheme::Bn254 => bn254_key(entry),
        Scheme::Bls12381 => bls_key(entry),
    }
    .map_err(field)?;
    let key_field = if scheme == Scheme::Bn254 { "`g1`" } else { "`pubkey`" };
    let id: [u8; 32] = decode_fixed(&entry.id).map_err(|r| field(("id", r)))?;
    if id != public_key.operator_id() {
        let expected = to_hex(&public_key.operator_id());
        return Err(field((
            "id",
            format!("is not the operator id of {key_field} (keccak256 of it is {expected})"),
        )));
    }
    if entry.stake.is_empty() {
        return Err(field(("stake", "is empty: the operator must have stake in at least one quorum".into())));
    }
    let mut stake = BTreeMap::new();
    for (quorum, amount) in &entry.stake {
        let q: u8 = quorum
            .trim()
            .parse()
            .map_err(|_| field(("stake", format!("quorum {quorum:?} is not a number from 0 to 255"))))?;
        if *amount == 0 {
            return Err(field(("stake", format!("stake in quorum {q} is 0 (leave the quorum out instead)"))));
        }
        if stake.insert(q, u128::from(*amount)).is_some() {
            return Err(field(("stake", format!("quorum {q} is given twice"))));
        }
    }
    let address = OperatorAddress::parse(entry.address.trim()).map_err(|r| field(("address", r)))?;
    Ok(Operator { name: entry.name.clone(), id, public_key, stake, address: Some(address), account: None })
}

impl OperatorSet {
    /// Reads and validates the TOML file at `path`.
    pub fn load(path: &Path) -> Result<Self, OperatorSetError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| OperatorSetError::Read { path: path.display().to_string(), error })?;
        Self::from_toml_str(&text)
    }

    /// Parses and validates TOML text.
    pub fn from_toml_str(text: &str) -> Result<Self, OperatorSetError> {
        let file: OperatorSetFile = toml::from_str(text).map_err(OperatorSetError::Syntax)?;
        Self::from_file(&file)
    }

    /// Validates a parsed file: its `scheme`, if any, then its entries.
    pub fn from_file(file: &OperatorSetFile) -> Result<Self, OperatorSetError> {
        let scheme = match &file.scheme {
            None => None,
            Some(name) => {
                Some(name.trim().parse().map_err(|_| OperatorSetError::UnknownScheme(name.clone()))?)
            }
        };
        Self::with_scheme(scheme, &file.operator)
    }

    /// Validates entries whose scheme is told by their fields (the first entry's decides):
    /// keys, ids, proofs of possession, stakes, addresses, no duplicates.
    pub fn from_entries(entries: &[OperatorEntry]) -> Result<Self, OperatorSetError> {
        Self::with_scheme(None, entries)
    }

    /// Validates entries that must all be of `scheme` (when `None`, the first entry's).
    pub fn with_scheme(scheme: Option<Scheme>, entries: &[OperatorEntry]) -> Result<Self, OperatorSetError> {
        if entries.is_empty() {
            return Err(OperatorSetError::Empty);
        }
        if entries.len() > MAX_OPERATORS {
            return Err(OperatorSetError::TooMany(entries.len()));
        }
        let mut decided = scheme.map(|s| (s, "set by its `scheme` field".to_owned()));
        let mut operators = Vec::with_capacity(entries.len());
        let mut by_id = HashMap::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            let own = entry_scheme(entry).map_err(|(field, reason)| OperatorSetError::Field {
                operator: label(index, entry),
                field,
                reason,
            })?;
            let (set, decided_by) = decided
                .get_or_insert_with(|| (own, format!("set by operator {}'s key", label(index, entry))));
            if own != *set {
                return Err(OperatorSetError::MixedSchemes {
                    operator: label(index, entry),
                    scheme: own,
                    set: *set,
                    decided_by: decided_by.clone(),
                });
            }
            let operator = validate(own, index, entry)?;
            if let Some(first) = by_id.insert(operator.id, index) {
                return Err(OperatorSetError::Field {
                    operator: label(index, entry),
                    field: if own == Scheme::Bn254 { "g1" } else { "pubkey" },
                    reason: format!("same key and id as operator #{}", first + 1),
                });
            }
            operators.push(operator);
        }
        let scheme = decided.map_or(Scheme::default(), |(s, _)| s);
        let quorum_apks = if scheme == Scheme::Bn254 { quorum_apks(&operators)? } else { BTreeMap::new() };
        Ok(OperatorSet { scheme, operators, by_id, quorum_apks })
    }

    /// The scheme every operator's key is of.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The operator with this id.
    pub fn get(&self, id: &[u8; 32]) -> Option<&Operator> {
        self.by_id.get(id).map(|i| &self.operators[*i])
    }

    /// All operators, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &Operator> {
        self.operators.iter()
    }

    /// How many operators there are.
    pub fn len(&self) -> usize {
        self.operators.len()
    }

    /// Whether the set is empty (never, once validated).
    pub fn is_empty(&self) -> bool {
        self.operators.is_empty()
    }

    /// Every quorum number some operator has stake in.
    pub fn quorums(&self) -> BTreeSet<u8> {
        self.operators.iter().flat_map(|o| o.stake.keys().copied()).collect()
    }

    /// The total stake of `quorum`.
    pub fn total_stake(&self, quorum: u8) -> u128 {
        self.operators.iter().map(|o| o.stake_in(quorum)).sum()
    }

    /// Whether some operator is in `quorum` (with a stake entry for it, even 0).
    pub fn has_quorum(&self, quorum: u8) -> bool {
        self.operators.iter().any(|o| o.stake.contains_key(&quorum))
    }

    /// The BN254 operator set of the chain at one block, as read from EigenLayer's registries
    /// (`OperatorStateRetriever.getOperatorState` and `BLSApkRegistry`). Each key is decoded and
    /// group-checked, its G1 and G2 halves must have one secret and its id must be the G1 key's;
    /// no proof of possession is asked, as BLSApkRegistry checked the registration signature.
    /// Errors name the operator's account and the field.
    pub fn from_chain(members: &[ChainOperator]) -> Result<Self, OperatorSetError> {
        if members.is_empty() {
            return Err(OperatorSetError::Empty);
        }
        if members.len() > MAX_OPERATORS {
            return Err(OperatorSetError::TooMany(members.len()));
        }
        let mut operators = Vec::with_capacity(members.len());
        let mut by_id = HashMap::with_capacity(members.len());
        for (index, member) in members.iter().enumerate() {
            let label = format!("{} (account {})", to_hex(&member.id), to_hex(&member.account));
            let field = |field: &'static str, reason: String| OperatorSetError::Field {
                operator: label.clone(),
                field,
                reason,
            };
            let g1 = bn254::G1Point::from_bytes(&member.g1)
                .map_err(|e| field("g1", format!("BLSApkRegistry's G1 key is not a valid point: {e}")))?;
            let g2 = bn254::G2Point::from_bytes(&member.g2)
                .map_err(|e| field("g2", format!("BLSApkRegistry's G2 key is not a valid point: {e}")))?;
            let public_key = bn254::PublicKey::new(g1, g2)
                .map_err(|_| field("g2", "is not the G2 key of the same secret as `g1`".into()))?;
            if public_key.operator_id() != member.id {
                let expected = to_hex(&public_key.operator_id());
                return Err(field(
                    "id",
                    format!("is not the operator id of `g1` (keccak256 of it is {expected})"),
                ));
            }
            if member.stake.is_empty() {
                return Err(field("stake", "the operator is in none of the task's quorums".into()));
            }
            if let Some(first) = by_id.insert(member.id, index) {
                return Err(field("id", format!("listed twice (first as operator #{})", first + 1)));
            }
            operators.push(Operator {
                name: None,
                id: member.id,
                public_key: OperatorPublicKey::Bn254(public_key),
                stake: member.stake.clone(),
                address: None,
                account: Some(member.account),
            });
        }
        let quorum_apks = quorum_apks(&operators)?;
        Ok(OperatorSet { scheme: Scheme::Bn254, operators, by_id, quorum_apks })
    }

    /// A BN254 set's aggregate G1 key of `quorum`: the sum of the G1 keys of every operator with
    /// stake in it (EigenLayer's `quorumApk`). `None` for a BLS12-381 set or an empty quorum.
    pub fn quorum_apk(&self, quorum: u8) -> Option<&bn254::G1Point> {
        self.quorum_apks.get(&quorum)
    }
}

/// Every quorum's aggregate G1 key, from BN254 operators.
fn quorum_apks(operators: &[Operator]) -> Result<BTreeMap<u8, bn254::G1Point>, OperatorSetError> {
    let mut members: BTreeMap<u8, Vec<&bn254::G1Point>> = BTreeMap::new();
    let keys: Vec<(bn254::G1Point, &Operator)> = operators
        .iter()
        .filter_map(|o| match &o.public_key {
            OperatorPublicKey::Bn254(key) => Some((key.g1(), o)),
            _ => None,
        })
        .collect();
    for (g1, operator) in &keys {
        for quorum in operator.stake.keys() {
            members.entry(*quorum).or_default().push(g1);
        }
    }
    members
        .into_iter()
        .map(|(q, points)| {
            bn254::aggregate_g1(&points)
                .map(|apk| (q, apk))
                .map_err(|_| OperatorSetError::IdentityQuorumApk(q))
        })
        .collect()
}
