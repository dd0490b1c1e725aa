//! `spacecore keys`: the subcommands and their arguments.

mod bls;
mod bn254;
mod generate;
pub(crate) mod json;

use crate::Outcome;
use crate::disk::ImportArgs;
use crate::secret::KeySource;
pub use crate::secret::Scheme;
use anyhow::{Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;

/// `--scheme`: given, or the key file's, or `bn254`.
#[derive(Debug, Args)]
pub struct SchemeArg {
    /// The signature scheme [default: the key file's, else bn254].
    #[arg(long, value_enum)]
    pub scheme: Option<Scheme>,
}

/// `--json`.
#[derive(Debug, Args)]
pub struct JsonArg {
    /// Print the result as one JSON object (docs/cli.md gives the shapes).
    #[arg(long)]
    pub json: bool,
}

/// The key-derivation function of a new keystore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KdfChoice {
    /// scrypt, n = 2^18, r = 8, p = 1 (256 MiB, about a second).
    Scrypt,
    /// PBKDF2-HMAC-SHA256, c = 2^18.
    Pbkdf2,
}

#[derive(Debug, Subcommand)]
pub enum Keys {
    /// Generate a new random secret key into a new key file (mode 0600): an EIP-2335 keystore
    /// (bls12-381), an eigensdk BLS key file (bn254) or an Ethereum v3 keystore (ecdsa); print
    /// its public key and operator id, or its address.
    Generate(generate::GenerateArgs),
    /// Print the public key of a secret key: bls12-381, 48 bytes (0x hex); bn254, the G1 and G2
    /// keys and the operator id.
    Pubkey {
        #[command(flatten)]
        scheme: SchemeArg,
        #[command(flatten)]
        key: KeySource,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Sign a message; print the signature (0x hex): bls12-381, 96 bytes; bn254, 64 bytes (X ‖ Y).
    Sign {
        #[command(flatten)]
        scheme: SchemeArg,
        #[command(flatten)]
        key: KeySource,
        /// The message, as hex. bls12-381: any length (`0x` is the empty message); bn254: a
        /// 32-byte digest. The AVS signs the 32-byte digest of its task response.
        #[arg(long, value_name = "HEX")]
        message_hex: String,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Check a signature: print `valid` (exit 0) or `invalid` (exit 1). A key or signature that
    /// is not a valid point of the right subgroup is an error (exit 2).
    Verify {
        #[command(flatten)]
        scheme: SchemeArg,
        /// The signer's public key: bls12-381, 48 bytes; bn254, the G2 key, 128 bytes in the
        /// contracts' order (X.c1, X.c0, Y.c1, Y.c0). Hex.
        #[arg(long, value_name = "HEX")]
        pubkey: String,
        /// The signed message, as hex (bn254: 32 bytes).
        #[arg(long, value_name = "HEX")]
        message_hex: String,
        /// The signature (bls12-381: 96 bytes; bn254: 64 bytes), hex.
        #[arg(long, value_name = "HEX")]
        signature: String,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Aggregate signatures, or public keys, into one; print it (0x hex).
    Aggregate(AggregateArgs),
    /// Print the proof of possession of a secret key (a signature of its public key under the
    /// POP domain tag; bn254: the avs-protocol POP message), 0x hex.
    Pop {
        #[command(flatten)]
        scheme: SchemeArg,
        #[command(flatten)]
        key: KeySource,
    },
    /// Check a proof of possession: print `valid` (exit 0) or `invalid` (exit 1); bad encodings
    /// are an error (exit 2).
    PopVerify {
        #[command(flatten)]
        scheme: SchemeArg,
        /// The public key: bls12-381, 48 bytes; bn254, the G2 key (128 bytes). Hex.
        #[arg(long, value_name = "HEX")]
        pubkey: String,
        /// bn254 only: the G1 key of the same secret (64 bytes, X ‖ Y), hex.
        #[arg(long, value_name = "HEX")]
        g1: Option<String>,
        /// The proof of possession (bls12-381: 96 bytes; bn254: 64 bytes), hex.
        #[arg(long, value_name = "HEX")]
        proof: String,
    },
    /// Write key files into a spacecore's disk image: the BLS key (an EIP-2335 keystore or an
    /// eigensdk BLS key file) into the Keystore record, an Ethereum v3 keystore into the
    /// EcdsaKeystore record. The spacecore must be stopped (its hac-launch locks the disk).
    Import(ImportArgs),
    /// Print the scheme and public key of the BLS key stored on a spacecore's disk image, and
    /// the address of its ECDSA keystore, as the files record them (no password needed).
    Show {
        /// The spacecore's raw disk image.
        #[arg(long, value_name = "DISK_IMAGE")]
        disk: PathBuf,
    },
}

/// `keys aggregate`.
#[derive(Debug, Args)]
#[group(id = "points", required = true, multiple = false)]
pub struct AggregateArgs {
    #[command(flatten)]
    scheme: SchemeArg,
    /// Signatures to add up (bls12-381: 96 bytes each; bn254: 64), hex, separated by commas.
    #[arg(long, value_name = "HEX,HEX,...", value_delimiter = ',', num_args = 1.., group = "points")]
    signatures: Vec<String>,
    /// Public keys to add up, hex, separated by commas: bls12-381, 48 bytes each; bn254, G1
    /// keys (64 bytes each) or G2 keys (128 bytes each), all of one group.
    #[arg(long, value_name = "HEX,HEX,...", value_delimiter = ',', num_args = 1.., group = "points")]
    pubkeys: Vec<String>,
    #[command(flatten)]
    json: JsonArg,
}

impl Keys {
    /// Runs the command.
    pub fn run(self) -> Result<Outcome> {
        match self {
            Keys::Generate(args) => generate::run(args),
            Keys::Pubkey { scheme, key, json } => {
                let key = key.secret_key(scheme.scheme)?;
                match key {
                    avs_protocol::OperatorSecretKey::Bn254(key) => bn254::pubkey(&key, json.json),
                    avs_protocol::OperatorSecretKey::Bls12381(key) => bls::pubkey(&key, json.json),
                }
            }
            Keys::Sign { scheme, key, message_hex, json } => match key.secret_key(scheme.scheme)? {
                avs_protocol::OperatorSecretKey::Bn254(key) => bn254::sign(&key, &message_hex, json.json),
                avs_protocol::OperatorSecretKey::Bls12381(key) => bls::sign(&key, &message_hex, json.json),
            },
            Keys::Verify { scheme, pubkey, message_hex, signature, json } => {
                match scheme.scheme.unwrap_or_default() {
                    Scheme::Bn254 => bn254::verify(&pubkey, &message_hex, &signature, json.json),
                    Scheme::Bls12381 => bls::verify(&pubkey, &message_hex, &signature, json.json),
                }
            }
            Keys::Aggregate(args) => match args.scheme.scheme.unwrap_or_default() {
                Scheme::Bn254 => bn254::aggregate(&args.signatures, &args.pubkeys, args.json.json),
                Scheme::Bls12381 => bls::aggregate(&args.signatures, &args.pubkeys, args.json.json),
            },
            Keys::Pop { scheme, key } => match key.secret_key(scheme.scheme)? {
                avs_protocol::OperatorSecretKey::Bn254(key) => bn254::pop(&key),
                avs_protocol::OperatorSecretKey::Bls12381(key) => bls::pop(&key),
            },
            Keys::PopVerify { scheme, pubkey, g1, proof } => match (scheme.scheme.unwrap_or_default(), g1) {
                (Scheme::Bn254, Some(g1)) => bn254::pop_verify(&pubkey, &g1, &proof),
                (Scheme::Bn254, None) => bail!("--scheme bn254 needs --g1, the G1 key of the same secret"),
                (Scheme::Bls12381, None) => bls::pop_verify(&pubkey, &proof),
                (Scheme::Bls12381, Some(_)) => bail!("--g1 is for --scheme bn254 only"),
            },
            Keys::Import(args) => crate::disk::import(&args),
            Keys::Show { disk } => crate::disk::show(&disk),
        }
    }
}
