//! The node: its keys, the signing history and signing.

use super::history::{Check, History};
use super::{ChainKey, Identity, Operator, Records, Stats, TaskError};
use crate::status::Status;
use alloc::format;
use alloc::string::String;
use avs_protocol::OperatorSignature;
use spacecore_store::RecordKey;

/// Whether the node can sign.
#[derive(Debug)]
enum KeyState {
    /// The keystore has not been decrypted yet.
    Loading,
    /// Loaded (boxed: the enum stays small while loading or unusable).
    Ready(alloc::boxed::Box<Operator>),
    /// No usable key or history: the reason.
    Unusable(String),
}

/// The operator's ECDSA key, as far as the node has it.
#[derive(Debug)]
enum ChainState {
    /// Not loaded (yet).
    Loading,
    /// Loaded; the identity statement once the BLS key is loaded too.
    Ready(alloc::boxed::Box<ChainKey>, Option<Identity>),
    /// No ECDSA key: the reason.
    Absent(String),
}

/// The operator side of the node.
#[derive(Debug)]
pub struct AvsNode {
    key: KeyState,
    chain: ChainState,
    history: History,
    /// The AVS's authority (`spacecore.task_signer`): the Ethereum address the AVS checks its
    /// pushed work against.
    task_source: Option<[u8; 20]>,
    /// Whether this is an operator node (its spec names an aggregator): its signer is essential.
    sends: bool,
    /// The counters.
    pub stats: Stats,
}

/// Why a node whose disk holds a key but no signing history does not sign.
pub const MISSING_HISTORY: &str = "the disk holds a key but no signing history (wiped or lost): import the \
     history with `spacecore history import`, or start an empty one with `spacecore history new` if \
     this key never signed elsewhere";

impl AvsNode {
    /// A node whose key is still to be loaded, with the signing history read from `records`
    /// (an unreadable history, or a key record without a history, means the node will never
    /// sign); `sends`: whether it is an operator node (its spec names an aggregator).
    pub fn new(records: Option<&mut dyn Records>, sends: bool) -> Self {
        let mut node = AvsNode {
            key: KeyState::Loading,
            chain: ChainState::Loading,
            history: History::new(),
            task_source: None,
            sends,
            stats: Stats::default(),
        };
        let Some(records) = records else {
            node.key = KeyState::Unusable("no disk: the signing history has nowhere to live".into());
            return node;
        };
        match records.get(RecordKey::SigningHistory) {
            Err(e) => node.key = KeyState::Unusable(format!("cannot read the signing history: {e}")),
            // `spacecore keys import` starts an empty history with the first key it puts on a
            // disk: a key without a history means the history was wiped or lost, and signing
            // from an empty one could sign a task again differently.
            Ok(None) => match records.get(RecordKey::Keystore) {
                Ok(None) => {}
                Ok(Some(_)) => node.key = KeyState::Unusable(MISSING_HISTORY.into()),
                Err(e) => node.key = KeyState::Unusable(format!("cannot read the key record: {e}")),
            },
            Ok(Some(bytes)) => match History::decode(&bytes) {
                Ok(history) => node.history = history,
                Err(e) => node.key = KeyState::Unusable(format!("the signing history is corrupt: {e:?}")),
            },
        }
        node
    }

    /// The AVS's authority: the Ethereum address the spec names (`spec.avs.task_signer`).
    pub fn set_task_source(&mut self, source: Option<[u8; 20]>) {
        self.task_source = source;
    }

    /// Installs the operator key (unless the history is unusable); returns the reason the node
    /// will not sign, if any.
    pub fn set_operator(&mut self, operator: Result<Operator, String>) -> Result<&Operator, String> {
        if let KeyState::Unusable(why) = &self.key {
            return Err(why.clone());
        }
        self.key = match operator {
            Ok(op) => KeyState::Ready(alloc::boxed::Box::new(op)),
            Err(why) => KeyState::Unusable(why),
        };
        match &self.key {
            KeyState::Ready(op) => Ok(op),
            KeyState::Unusable(why) => Err(why.clone()),
            KeyState::Loading => unreachable!(),
        }
    }

    /// Installs the operator's ECDSA key, or the reason there is none, and signs the identity
    /// statement if the BLS key is loaded. Returns the address, or the reason.
    pub fn set_chain_key(&mut self, key: Result<ChainKey, String>) -> Result<[u8; 20], String> {
        self.chain = match key {
            Ok(key) => {
                let identity = self.operator().map(|op| Identity::new(op, &key));
                ChainState::Ready(alloc::boxed::Box::new(key), identity)
            }
            Err(why) => ChainState::Absent(why),
        };
        match &self.chain {
            ChainState::Ready(key, _) => Ok(key.address()),
            ChainState::Absent(why) => Err(why.clone()),
            ChainState::Loading => unreachable!(),
        }
    }

    /// The operator's ECDSA key, once loaded (for the chain client).
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "the chain client, which uses it, is not in the guest yet")
    )]
    pub fn chain_key(&self) -> Option<&ChainKey> {
        match &self.chain {
            ChainState::Ready(key, _) => Some(key),
            _ => None,
        }
    }

    /// `GET /spacecore/identity`: the operator's scheme, id and public key, and its ECDSA address
    /// with the signed identity statement (`null`s and `ecdsa_error` without an ECDSA key).
    /// `Err((503, why))` while the BLS key is not loaded.
    pub fn identity_json(&self) -> Result<serde_json::Value, (u16, String)> {
        use avs_protocol::OperatorPublicKey;
        use avs_protocol::encoding::to_hex;
        use serde_json::{Value, json};
        let operator = match &self.key {
            KeyState::Ready(op) => op,
            KeyState::Loading => return Err((503, "the operator key is still loading".into())),
            KeyState::Unusable(why) => return Err((503, format!("not signing: {why}"))),
        };
        let mut out = json!({
            "scheme": operator.scheme().name(),
            "operator_id": to_hex(&operator.id),
        });
        match operator.public_key() {
            OperatorPublicKey::Bn254(key) => {
                out["g1"] = to_hex(&key.g1().to_bytes()).into();
                out["g2"] = to_hex(&key.g2().to_bytes()).into();
            }
            OperatorPublicKey::Bls12381(key) => out["pubkey"] = to_hex(&key.to_bytes()).into(),
        }
        let (address, statement, signature, error) = match &self.chain {
            ChainState::Ready(key, Some(identity)) => (
                to_hex(&key.address()).into(),
                identity.statement.clone().into(),
                to_hex(&identity.signature).into(),
                Value::Null,
            ),
            ChainState::Ready(key, None) => {
                // Loaded before the BLS key: sign now (deterministic, so always the same).
                let identity = Identity::new(operator, key);
                (
                    to_hex(&identity.address).into(),
                    identity.statement.into(),
                    to_hex(&identity.signature).into(),
                    Value::Null,
                )
            }
            ChainState::Loading => {
                (Value::Null, Value::Null, Value::Null, "the ECDSA key is still loading".into())
            }
            ChainState::Absent(why) => (Value::Null, Value::Null, Value::Null, why.as_str().into()),
        };
        out["ecdsa_address"] = address;
        out["statement"] = statement;
        out["signature"] = signature;
        out["ecdsa_error"] = error;
        Ok(out)
    }

    /// The operator, once its key is loaded.
    pub fn operator(&self) -> Option<&Operator> {
        match &self.key {
            KeyState::Ready(op) => Some(op),
            _ => None,
        }
    }

    /// The `signer` service: initializing while the key loads, up once it is loaded, down when
    /// the node will not sign (no key, no disk, unusable history).
    pub fn signer_status(&self) -> Status {
        match self.key {
            KeyState::Loading => Status::Initializing,
            KeyState::Ready(_) => Status::Up,
            KeyState::Unusable(_) => Status::Down,
        }
    }

    /// Whether this is an operator node (its spec names an aggregator).
    pub fn sends(&self) -> bool {
        self.sends
    }

    /// How much of the signing history is in use, and its floor.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The loaded operator key, or why the node does not sign.
    fn ready_operator(&self) -> Result<&Operator, TaskError> {
        match &self.key {
            KeyState::Ready(op) => Ok(op),
            KeyState::Loading => Err(TaskError::NotSigning("the operator key is still loading".into())),
            KeyState::Unusable(why) => Err(TaskError::NotSigning(format!("not signing: {why}"))),
        }
    }

    /// Signs `digest` as the answer to task `index` under the slashing protection: the history
    /// that allows it is on the disk before the signature exists. Returns the signature and the
    /// clock reading after it. The one signing path of the node: the AVS SDK's `sign_task`.
    pub fn sign_digest(
        &mut self,
        index: u32,
        digest: &[u8; 32],
        records: Option<&mut dyn Records>,
        now: &dyn Fn() -> u64,
    ) -> Result<(OperatorSignature, u64), TaskError> {
        self.ready_operator()?;
        match self.history.check(index, digest) {
            Check::Repeat => {}
            Check::New => {
                let records =
                    records.ok_or_else(|| TaskError::NotSigning("no disk for the signing history".into()))?;
                let mut updated = self.history.clone();
                updated.record(index, *digest).map_err(|check| refusal(index, check, &self.history))?;
                records.put(RecordKey::SigningHistory, &updated.encode()).map_err(|e| {
                    TaskError::Storage(format!("cannot record the signature of task {index}: {e}"))
                })?;
                self.history = updated;
            }
            check => return Err(refusal(index, check, &self.history)),
        }
        let operator = self.ready_operator()?;
        let start = now();
        let signature = operator.sign(digest);
        let end = now();
        self.stats.signing.observe(end.saturating_sub(start));
        Ok((signature, end))
    }

    /// Signs `digest` with no slashing protection: for the AVS SDK's domain-separated
    /// attestations only (`crate::sdk`), which can never be a task response's digest.
    pub fn sign_attestation(
        &mut self,
        digest: &[u8; 32],
        now: &dyn Fn() -> u64,
    ) -> Result<OperatorSignature, TaskError> {
        let operator = self.ready_operator()?;
        let start = now();
        let signature = operator.sign(digest);
        self.stats.signing.observe(now().saturating_sub(start));
        Ok(signature)
    }

    /// The task source (`spacecore.task_signer`), if any.
    pub fn task_source(&self) -> Option<&[u8; 20]> {
        self.task_source.as_ref()
    }
}

fn refusal(index: u32, check: Check, history: &History) -> TaskError {
    TaskError::Refused(match check {
        Check::Conflict => {
            format!("task {index}: a different response was already signed (slashing protection)")
        }
        _ => format!(
            "task {index}: older than the signing history covers (it starts at task {}); not signed",
            history.floor()
        ),
    })
}
