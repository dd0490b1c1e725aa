//! `keys pubkey`, `sign`, `verify`, `aggregate`, `pop` and `pop-verify` for BLS12-381.

use super::json::{parse_all, print, verdict};
use crate::Outcome;
use crate::hex;
use anyhow::Result;
use avs_protocol::bls::{self, PublicKey, SecretKey, Signature};
use serde_json::json;

pub fn pubkey(key: &SecretKey, as_json: bool) -> Result<Outcome> {
    let public = key.public_key();
    let pubkey = hex::encode(&public.to_bytes());
    if as_json {
        print(&json!({ "pubkey": pubkey, "operator_id": hex::encode(&public.operator_id()) }));
    } else {
        println!("{pubkey}");
    }
    Ok(Outcome::Done)
}

pub fn sign(key: &SecretKey, message_hex: &str, as_json: bool) -> Result<Outcome> {
    let message = hex::bytes(message_hex, "--message-hex")?;
    let signature = hex::encode(&key.sign(&message).to_bytes());
    if as_json {
        print(&json!({ "signature": signature }));
    } else {
        println!("{signature}");
    }
    Ok(Outcome::Done)
}

pub fn verify(pubkey: &str, message_hex: &str, signature: &str, as_json: bool) -> Result<Outcome> {
    let pubkey = hex::public_key(pubkey, "--pubkey")?;
    let message = hex::bytes(message_hex, "--message-hex")?;
    let signature = hex::signature(signature, "--signature")?;
    verdict(bls::verify(&pubkey, &message, &signature), as_json)
}

pub fn aggregate(signatures: &[String], pubkeys: &[String], as_json: bool) -> Result<Outcome> {
    let (name, sum) = if signatures.is_empty() {
        let keys = parse_all(pubkeys, "--pubkeys", hex::public_key)?;
        ("pubkey", bls::aggregate_public_keys(&keys.iter().collect::<Vec<&PublicKey>>())?.to_bytes().to_vec())
    } else {
        let sigs = parse_all(signatures, "--signatures", hex::signature)?;
        (
            "signature",
            bls::aggregate_signatures(&sigs.iter().collect::<Vec<&Signature>>())?.to_bytes().to_vec(),
        )
    };
    if as_json {
        print(&json!({ name: hex::encode(&sum) }));
    } else {
        println!("{}", hex::encode(&sum));
    }
    Ok(Outcome::Done)
}

pub fn pop(key: &SecretKey) -> Result<Outcome> {
    println!("{}", hex::encode(&bls::pop_prove(key).to_bytes()));
    Ok(Outcome::Done)
}

pub fn pop_verify(pubkey: &str, proof: &str) -> Result<Outcome> {
    let pubkey = hex::public_key(pubkey, "--pubkey")?;
    let proof = hex::signature(proof, "--proof")?;
    verdict(bls::pop_verify(&pubkey, &proof), false)
}
