//! The operator set file: who may sign, with which key, how much stake each has in which
//! quorum, and where its node takes tasks. Every entry is checked when the file is loaded; see
//! `docs/aggregator.md` for the format.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::Path;

use avs_protocol::bls::{self, PUBLIC_KEY_LEN, PublicKey, SIGNATURE_LEN, Signature};
use avs_protocol::encoding::{from_hex, to_hex};
use serde::{Deserialize, Serialize};

/// Most operators a set may hold (a bound on per-task work, not a protocol limit).
pub const MAX_OPERATORS: usize = 10_000;

/// The file as written: `[[operator]]` tables.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorSetFile {
    /// The operators, in any order.
    #[serde(default)]
    pub operator: Vec<OperatorEntry>,
}

/// One `[[operator]]` table, before validation.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorEntry {
    /// An optional label for logs and errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `0x` + 32 bytes: must be `PublicKey::operator_id()` of `pubkey`.
    pub id: String,
    /// `0x` + 48 bytes: the compressed BLS12-381 G1 public key.
    pub pubkey: String,
    /// `0x` + 96 bytes: the proof of possession of `pubkey`'s secret key.
    pub pop: String,
    /// Stake per quorum number: `stake = { 0 = 100, 1 = 50 }`.
    pub stake: BTreeMap<String, u64>,
    /// The node's HTTP base URL; tasks are POSTed to `address` + `/task`.
    pub address: String,
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
    /// `keccak256` of the compressed public key.
    pub id: [u8; 32],
    /// The group-checked public key, whose proof of possession verified.
    pub public_key: PublicKey,
    /// Non-zero stake per quorum number.
    pub stake: BTreeMap<u8, u64>,
    /// Where tasks are delivered.
    pub address: OperatorAddress,
}

impl Operator {
    /// The operator's stake in `quorum` (0 when it is not in it).
    pub fn stake_in(&self, quorum: u8) -> u64 {
        self.stake.get(&quorum).copied().unwrap_or(0)
    }

    /// Whether the operator has stake in any of `quorums`.
    pub fn in_any(&self, quorums: &[u8]) -> bool {
        quorums.iter().any(|q| self.stake_in(*q) > 0)
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
}

/// The validated set, indexed by operator id.
#[derive(Debug, Clone)]
pub struct OperatorSet {
    operators: Vec<Operator>,
    by_id: HashMap<[u8; 32], usize>,
}

fn decode_fixed<const N: usize>(value: &str) -> Result<[u8; N], String> {
    let bytes = from_hex(value.trim()).ok_or("not 0x-prefixed hex")?;
    let len = bytes.len();
    <[u8; N]>::try_from(bytes).map_err(|_| format!("{len} bytes, expected {N}"))
}

fn validate(index: usize, entry: &OperatorEntry) -> Result<Operator, OperatorSetError> {
    let label = match &entry.name {
        Some(name) => format!("#{} ({name:?})", index + 1),
        None => format!("#{}", index + 1),
    };
    let field = |field: &'static str, reason: String| OperatorSetError::Field {
        operator: label.clone(),
        field,
        reason,
    };
    let pk_bytes: [u8; PUBLIC_KEY_LEN] = decode_fixed(&entry.pubkey).map_err(|r| field("pubkey", r))?;
    let public_key =
        PublicKey::from_bytes(&pk_bytes).map_err(|e| field("pubkey", format!("not a valid key: {e}")))?;
    let id: [u8; 32] = decode_fixed(&entry.id).map_err(|r| field("id", r))?;
    if id != public_key.operator_id() {
        let expected = to_hex(&public_key.operator_id());
        return Err(field(
            "id",
            format!("is not the operator id of `pubkey` (keccak256 of it is {expected})"),
        ));
    }
    let pop_bytes: [u8; SIGNATURE_LEN] = decode_fixed(&entry.pop).map_err(|r| field("pop", r))?;
    let pop =
        Signature::from_bytes(&pop_bytes).map_err(|e| field("pop", format!("not a valid signature: {e}")))?;
    bls::pop_verify(&public_key, &pop)
        .map_err(|e| field("pop", format!("proof of possession does not verify for `pubkey`: {e}")))?;
    if entry.stake.is_empty() {
        return Err(field("stake", "is empty: the operator must have stake in at least one quorum".into()));
    }
    let mut stake = BTreeMap::new();
    for (quorum, amount) in &entry.stake {
        let q: u8 = quorum
            .trim()
            .parse()
            .map_err(|_| field("stake", format!("quorum {quorum:?} is not a number from 0 to 255")))?;
        if *amount == 0 {
            return Err(field("stake", format!("stake in quorum {q} is 0 (leave the quorum out instead)")));
        }
        if stake.insert(q, *amount).is_some() {
            return Err(field("stake", format!("quorum {q} is given twice")));
        }
    }
    let address = OperatorAddress::parse(entry.address.trim()).map_err(|r| field("address", r))?;
    Ok(Operator { name: entry.name.clone(), id, public_key, stake, address })
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
        Self::from_entries(&file.operator)
    }

    /// Validates entries: keys, ids, proofs of possession, stakes, addresses, no duplicates.
    pub fn from_entries(entries: &[OperatorEntry]) -> Result<Self, OperatorSetError> {
        if entries.is_empty() {
            return Err(OperatorSetError::Empty);
        }
        if entries.len() > MAX_OPERATORS {
            return Err(OperatorSetError::TooMany(entries.len()));
        }
        let mut operators = Vec::with_capacity(entries.len());
        let mut by_id = HashMap::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            let operator = validate(index, entry)?;
            if let Some(first) = by_id.insert(operator.id, index) {
                return Err(OperatorSetError::Field {
                    operator: format!("#{}", index + 1),
                    field: "pubkey",
                    reason: format!("same key and id as operator #{}", first + 1),
                });
            }
            operators.push(operator);
        }
        Ok(OperatorSet { operators, by_id })
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
        self.operators.iter().map(|o| u128::from(o.stake_in(quorum))).sum()
    }
}
