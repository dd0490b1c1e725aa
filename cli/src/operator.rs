//! `spacecore operator register`: registers the operator of an eigensdk BN254 key file and an
//! Ethereum v3 keystore with EigenLayer (DelegationManager), optionally deposits into a
//! strategy (StrategyManager), and registers it with an AVS through its registry coordinator
//! (BN254 key-registration signature, ECDSA AVS-registration signature). The transactions are
//! sent from, and paid by, the keystore's account. The work is `spacecore_operator::register`.

use crate::Outcome;
use crate::keyfile::{self, KeyFile};
use crate::secret::read_password_file;
use alloy::primitives::{Address, U256};
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::json;
use spacecore_operator::{DEFAULT_SIGNATURE_VALIDITY_SECONDS, Request};
use std::path::{Path, PathBuf};

#[derive(Debug, Subcommand)]
pub enum Operator {
    /// Register with EigenLayer and with an AVS: `DelegationManager.registerAsOperator`,
    /// `StrategyManager.depositIntoStrategy` (with --strategy and --deposit), and the AVS
    /// registry coordinator's `registerOperator`; a step the chain shows done is skipped.
    Register(RegisterArgs),
}

impl Operator {
    pub fn run(self) -> Result<Outcome> {
        match self {
            Operator::Register(args) => register(args),
        }
    }
}

#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// The Ethereum JSON-RPC endpoint (http:// or https://).
    #[arg(long, value_name = "URL")]
    eth_rpc: String,
    /// The AVS's registry coordinator; every other contract is read from it.
    #[arg(long, value_name = "ADDRESS")]
    registry_coordinator: Address,
    /// The operator's eigensdk BN254 key file (`keys generate --scheme bn254`).
    #[arg(long, value_name = "FILE")]
    bls_key_file: PathBuf,
    /// The BN254 key file's password: the file's content, less one trailing newline.
    #[arg(long, value_name = "FILE")]
    bls_password_file: PathBuf,
    /// The operator's Ethereum v3 keystore (`keys generate --scheme ecdsa`): its address is the
    /// operator's, and it pays for the transactions.
    #[arg(long, value_name = "FILE")]
    ecdsa_key_file: PathBuf,
    /// The ECDSA keystore's password file.
    #[arg(long, value_name = "FILE")]
    ecdsa_password_file: PathBuf,
    /// The quorums to join, comma-separated, ascending.
    #[arg(long, value_name = "N,...", value_delimiter = ',', default_value = "0")]
    quorums: Vec<u8>,
    /// The strategy to deposit into (with --deposit).
    #[arg(long, value_name = "ADDRESS", requires = "deposit")]
    strategy: Option<Address>,
    /// How much of the strategy's token to deposit, in its smallest unit; the account must hold
    /// it. A deposit is made each time the command is given --deposit.
    #[arg(long, value_name = "AMOUNT", requires = "strategy")]
    deposit: Option<U256>,
    /// The operator's metadata URI, as the DelegationManager records it.
    #[arg(long, value_name = "URI", default_value = "")]
    metadata_uri: String,
    /// How long the AVS-registration signature stays valid, in seconds from the latest block.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_SIGNATURE_VALIDITY_SECONDS)]
    signature_validity: u64,
    /// Print the result as one JSON object (docs/cli.md gives its shape).
    #[arg(long)]
    json: bool,
}

/// Reads and decrypts a key file of the expected kind.
fn read_key<T>(
    path: &Path,
    password: &Path,
    kind: &str,
    decrypt: impl FnOnce(&KeyFile, &str) -> Option<Result<T>>,
) -> Result<T> {
    let (file, _) = keyfile::read(path)?;
    let password = read_password_file(password)?;
    match decrypt(&file, &password) {
        Some(key) => key.with_context(|| format!("key file {}", path.display())),
        None => bail!("key file {}: {}, not {kind}", path.display(), file.kind()),
    }
}

fn register(args: RegisterArgs) -> Result<Outcome> {
    if args.quorums.is_empty() || args.quorums.windows(2).any(|w| w[0] >= w[1]) {
        bail!("--quorums: give distinct quorum numbers in ascending order");
    }
    let bn254_key = read_key(
        &args.bls_key_file,
        &args.bls_password_file,
        "an eigensdk BN254 key file",
        |f, p| match f {
            KeyFile::Bn254(file) => Some(keyfile::decrypt_bn254(file, p)),
            _ => None,
        },
    )?;
    let ecdsa_key = read_key(
        &args.ecdsa_key_file,
        &args.ecdsa_password_file,
        "an Ethereum v3 keystore",
        |f, p| match f {
            KeyFile::Ecdsa(file) => Some(keyfile::decrypt_ecdsa(file, p)),
            _ => None,
        },
    )?;
    let request = Request {
        coordinator: args.registry_coordinator,
        quorums: args.quorums,
        deposit: args.strategy.zip(args.deposit),
        metadata_uri: args.metadata_uri,
        signature_validity_seconds: args.signature_validity,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the I/O runtime")?;
    let report = runtime.block_on(async {
        let provider = spacecore_operator::wallet_provider(&args.eth_rpc, &ecdsa_key).await?;
        spacecore_operator::register(&provider, &bn254_key, &ecdsa_key, &request, &mut |line| {
            eprintln!("{line}")
        })
        .await
    })?;
    if args.json {
        let value = json!({
            "operator": report.operator.to_string(),
            "operator_id": report.operator_id.to_string(),
            "transactions": report.sent.iter().map(|s| json!({
                "step": s.step,
                "hash": s.hash.to_string(),
                "block": s.block,
                "gas_used": s.gas_used,
            })).collect::<Vec<_>>(),
            "shares": report.shares.map(|s| s.to_string()),
            "stakes": report.stakes.iter().map(|(q, s)| json!({"quorum": q, "stake": s.to_string()})).collect::<Vec<_>>(),
            "contracts": {
                "registry_coordinator": report.contracts.coordinator.to_string(),
                "stake_registry": report.contracts.stake_registry.to_string(),
                "service_manager": report.contracts.service_manager.to_string(),
                "delegation_manager": report.contracts.delegation_manager.to_string(),
                "strategy_manager": report.contracts.strategy_manager.to_string(),
                "avs_directory": report.contracts.avs_directory.to_string(),
            },
        });
        println!("{value}");
    } else {
        println!("operator:    {}", report.operator);
        println!("operator id: {}", report.operator_id);
        for sent in &report.sent {
            println!("{:<20} {} (block {}, gas {})", sent.step, sent.hash, sent.block, sent.gas_used);
        }
        if report.sent.is_empty() {
            println!("nothing to do: already registered");
        }
        if let Some(shares) = report.shares {
            println!("shares:      {shares}");
        }
        for (quorum, stake) in &report.stakes {
            println!("stake in quorum {quorum}: {stake}");
        }
    }
    Ok(Outcome::Done)
}
