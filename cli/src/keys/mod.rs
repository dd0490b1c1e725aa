//! `spacecore keys`: the subcommands and their arguments.

mod bls;
mod generate;

use crate::Outcome;
use crate::secret::KeySource;
use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;

/// The signature scheme (only one for now).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scheme {
    /// BLS12-381, Ethereum consensus ciphersuite: min-pk (48-byte public keys, 96-byte
    /// signatures), proof-of-possession DSTs.
    #[value(name = "bls12-381")]
    Bls12381,
}

/// `--scheme`, default `bls12-381`.
#[derive(Debug, Args)]
pub struct SchemeArg {
    /// The signature scheme.
    #[arg(long, value_enum, default_value = "bls12-381")]
    pub scheme: Scheme,
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
    /// Generate a new random secret key into a new EIP-2335 keystore file (mode 0600); print its
    /// public key and operator id.
    Generate(generate::GenerateArgs),
    /// Print the 48-byte public key (0x hex) of a secret key.
    Pubkey {
        #[command(flatten)]
        scheme: SchemeArg,
        #[command(flatten)]
        key: KeySource,
    },
    /// Sign a message; print the 96-byte signature (0x hex).
    Sign {
        #[command(flatten)]
        scheme: SchemeArg,
        #[command(flatten)]
        key: KeySource,
        /// The message, as hex (any length; `0x` is the empty message). The AVS signs the
        /// 32-byte digest of its task response.
        #[arg(long, value_name = "HEX")]
        message_hex: String,
    },
    /// Check a signature: print `valid` (exit 0) or `invalid` (exit 1). A key or signature that
    /// is not a valid point of the right subgroup is an error (exit 2).
    Verify {
        #[command(flatten)]
        scheme: SchemeArg,
        /// The signer's public key (48 bytes, hex).
        #[arg(long, value_name = "HEX")]
        pubkey: String,
        /// The signed message, as hex.
        #[arg(long, value_name = "HEX")]
        message_hex: String,
        /// The signature (96 bytes, hex).
        #[arg(long, value_name = "HEX")]
        signature: String,
    },
    /// Aggregate signatures, or public keys, into one; print it (0x hex).
    Aggregate(bls::AggregateArgs),
    /// Print the proof of possession of a secret key (a signature of its public key under the
    /// POP domain tag), 96 bytes, 0x hex.
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
        /// The public key (48 bytes, hex).
        #[arg(long, value_name = "HEX")]
        pubkey: String,
        /// The proof of possession (96 bytes, hex).
        #[arg(long, value_name = "HEX")]
        proof: String,
    },
    /// Write a keystore into the Keystore record of a spacecore's disk image. The spacecore must
    /// be stopped (its hac-launch holds a lock on the disk).
    Import {
        /// The EIP-2335 keystore file. Its JSON and its pubkey field are checked; the password
        /// is not needed.
        #[arg(long, value_name = "FILE")]
        keystore: PathBuf,
        /// The spacecore's raw disk image, created by hac-launch at the spacecore's first boot
        /// (by default <state dir>/<name>/disk.img).
        #[arg(long, value_name = "DISK_IMAGE")]
        disk: PathBuf,
        /// Also decrypt the keystore with this password file first, to check the password and
        /// that the pubkey field is the secret's public key.
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
    /// Print the public key (0x hex) of the keystore stored on a spacecore's disk image, as its
    /// pubkey field says (no password needed).
    Show {
        /// The spacecore's raw disk image.
        #[arg(long, value_name = "DISK_IMAGE")]
        disk: PathBuf,
    },
}

impl Keys {
    /// Runs the command.
    pub fn run(self) -> Result<Outcome> {
        match self {
            Keys::Generate(args) => generate::run(args),
            Keys::Pubkey { scheme: _, key } => bls::pubkey(key),
            Keys::Sign { scheme: _, key, message_hex } => bls::sign(key, &message_hex),
            Keys::Verify { scheme: _, pubkey, message_hex, signature } => {
                bls::verify(&pubkey, &message_hex, &signature)
            }
            Keys::Aggregate(args) => bls::aggregate(args),
            Keys::Pop { scheme: _, key } => bls::pop(key),
            Keys::PopVerify { scheme: _, pubkey, proof } => bls::pop_verify(&pubkey, &proof),
            Keys::Import { keystore, disk, password_file } => {
                crate::disk::import(&keystore, &disk, password_file.as_deref())
            }
            Keys::Show { disk } => crate::disk::show(&disk),
        }
    }
}
