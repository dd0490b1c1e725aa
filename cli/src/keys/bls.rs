//! `keys pubkey`, `sign`, `verify`, `aggregate`, `pop` and `pop-verify`.

use super::SchemeArg;
use crate::Outcome;
use crate::hex;
use crate::secret::KeySource;
use anyhow::{Context, Result};
use avs_protocol::Error;
use avs_protocol::bls::{self, PublicKey, Signature};
use clap::Args;

/// `keys aggregate`.
#[derive(Debug, Args)]
#[group(id = "points", required = true, multiple = false)]
pub struct AggregateArgs {
    #[command(flatten)]
    scheme: SchemeArg,
    /// Signatures to add up (96 bytes each, hex), separated by commas.
    #[arg(long, value_name = "HEX,HEX,...", value_delimiter = ',', num_args = 1.., group = "points")]
    signatures: Vec<String>,
    /// Public keys to add up (48 bytes each, hex), separated by commas.
    #[arg(long, value_name = "HEX,HEX,...", value_delimiter = ',', num_args = 1.., group = "points")]
    pubkeys: Vec<String>,
}

pub fn pubkey(key: KeySource) -> Result<Outcome> {
    println!("{}", hex::encode(&key.secret_key()?.public_key().to_bytes()));
    Ok(Outcome::Done)
}

pub fn sign(key: KeySource, message_hex: &str) -> Result<Outcome> {
    let message = hex::bytes(message_hex, "--message-hex")?;
    println!("{}", hex::encode(&key.secret_key()?.sign(&message).to_bytes()));
    Ok(Outcome::Done)
}

pub fn verify(pubkey: &str, message_hex: &str, signature: &str) -> Result<Outcome> {
    let pubkey = hex::public_key(pubkey, "--pubkey")?;
    let message = hex::bytes(message_hex, "--message-hex")?;
    let signature = hex::signature(signature, "--signature")?;
    outcome(bls::verify(&pubkey, &message, &signature))
}

pub fn aggregate(args: AggregateArgs) -> Result<Outcome> {
    let sum = if args.signatures.is_empty() {
        let keys = parse_all(&args.pubkeys, "--pubkeys", hex::public_key)?;
        bls::aggregate_public_keys(&keys.iter().collect::<Vec<&PublicKey>>())?.to_bytes().to_vec()
    } else {
        let sigs = parse_all(&args.signatures, "--signatures", hex::signature)?;
        bls::aggregate_signatures(&sigs.iter().collect::<Vec<&Signature>>())?.to_bytes().to_vec()
    };
    println!("{}", hex::encode(&sum));
    Ok(Outcome::Done)
}

pub fn pop(key: KeySource) -> Result<Outcome> {
    println!("{}", hex::encode(&bls::pop_prove(&key.secret_key()?).to_bytes()));
    Ok(Outcome::Done)
}

pub fn pop_verify(pubkey: &str, proof: &str) -> Result<Outcome> {
    let pubkey = hex::public_key(pubkey, "--pubkey")?;
    let proof = hex::signature(proof, "--proof")?;
    outcome(bls::pop_verify(&pubkey, &proof))
}

/// Parses every item of a list argument, naming the item (from 1) in errors.
fn parse_all<T>(items: &[String], what: &str, parse: fn(&str, &str) -> Result<T>) -> Result<Vec<T>> {
    items.iter().enumerate().map(|(i, item)| parse(item, &format!("{what} item {}", i + 1))).collect()
}

/// Prints and returns the result of a check: a failed pairing is `invalid`; anything else that
/// went wrong (a point blst refused) is an error.
fn outcome(result: Result<(), Error>) -> Result<Outcome> {
    match result {
        Ok(()) => {
            println!("valid");
            Ok(Outcome::Done)
        }
        Err(Error::VerificationFailed) => {
            println!("invalid");
            Ok(Outcome::Invalid)
        }
        Err(e) => Err(e).context("cannot verify"),
    }
}
