//! `keys pubkey`, `sign`, `verify`, `aggregate`, `pop` and `pop-verify` for BN254, as
//! EigenLayer signs and checks (`avs_protocol::bn254`).

use super::json::{self, parse_all, print, verdict};
use crate::Outcome;
use crate::hex;
use anyhow::{Context, Result, bail};
use avs_protocol::bn254::{self, G1Point, G2Point, PublicKey, SecretKey, Signature};
use serde_json::json;

pub fn pubkey(key: &SecretKey, as_json: bool) -> Result<Outcome> {
    let public = key.public_key();
    let (g1, g2) = (public.g1().to_bytes(), public.g2().to_bytes());
    let operator_id = hex::encode(&public.operator_id());
    if as_json {
        print(&json!({ "g1": json::g1(&g1), "g2": json::g2(&g2), "operator_id": operator_id }));
    } else {
        println!("g1: {}", hex::encode(&g1));
        println!("g2: {}", hex::encode(&g2));
        println!("operator_id: {operator_id}");
    }
    Ok(Outcome::Done)
}

pub fn sign(key: &SecretKey, message_hex: &str, as_json: bool) -> Result<Outcome> {
    let message = digest(message_hex)?;
    print_signature(&key.sign(&message).to_bytes(), as_json);
    Ok(Outcome::Done)
}

pub fn verify(pubkey: &str, message_hex: &str, signature: &str, as_json: bool) -> Result<Outcome> {
    let pubkey = hex::bn254_g2(pubkey, "--pubkey")?;
    let message = digest(message_hex)?;
    let signature = hex::bn254_signature(signature, "--signature")?;
    verdict(bn254::verify(&pubkey, &message, &signature), as_json)
}

pub fn aggregate(signatures: &[String], pubkeys: &[String], as_json: bool) -> Result<Outcome> {
    if !signatures.is_empty() {
        let sigs = parse_all(signatures, "--signatures", hex::bn254_signature)?;
        let sum = bn254::aggregate_signatures(&sigs.iter().collect::<Vec<&Signature>>())?;
        print_signature(&sum.to_bytes(), as_json);
        return Ok(Outcome::Done);
    }
    // The first key's length tells the group; every key must be of it.
    let first = crate::hex::decode(&pubkeys[0]).map(|b| b.len()).unwrap_or(0);
    if first == bn254::G2_LEN {
        let keys = parse_all(pubkeys, "--pubkeys", hex::bn254_g2)?;
        let sum = bn254::aggregate_g2(&keys.iter().collect::<Vec<&G2Point>>())?.to_bytes();
        if as_json {
            print(&json!({ "g2": json::g2(&sum) }));
        } else {
            println!("{}", hex::encode(&sum));
        }
    } else {
        let keys = parse_all(pubkeys, "--pubkeys", hex::bn254_g1)?;
        let sum = bn254::aggregate_g1(&keys.iter().collect::<Vec<&G1Point>>())?.to_bytes();
        if as_json {
            print(&json!({ "g1": json::g1(&sum) }));
        } else {
            println!("{}", hex::encode(&sum));
        }
    }
    Ok(Outcome::Done)
}

pub fn pop(key: &SecretKey) -> Result<Outcome> {
    println!("{}", hex::encode(&bn254::pop_prove(key).to_bytes()));
    Ok(Outcome::Done)
}

pub fn pop_verify(g2: &str, g1: &str, proof: &str) -> Result<Outcome> {
    let g2 = hex::bn254_g2(g2, "--pubkey")?;
    let g1 = hex::bn254_g1(g1, "--g1")?;
    let proof = hex::bn254_signature(proof, "--proof")?;
    let key = PublicKey::new(g1, g2).context("--g1 and --pubkey are not the G1 and G2 keys of one secret")?;
    verdict(bn254::pop_verify(&key, &proof), false)
}

/// A BN254 message: exactly 32 bytes.
fn digest(message_hex: &str) -> Result<[u8; 32]> {
    let message = hex::bytes(message_hex, "--message-hex")?;
    let len = message.len();
    match message.try_into() {
        Ok(digest) => Ok(digest),
        Err(_) => bail!("--message-hex: {len} bytes; a bn254 message is exactly 32 bytes (a digest)"),
    }
}

fn print_signature(signature: &[u8; 64], as_json: bool) {
    if as_json {
        print(&json!({ "signature": json::g1(signature) }));
    } else {
        println!("{}", hex::encode(signature));
    }
}
