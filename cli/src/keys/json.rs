//! The outputs of the `keys` commands: text lines or one JSON object (`--json`), and the
//! valid/invalid verdict of the checks.

use crate::Outcome;
use crate::hex::encode;
use anyhow::{Context, Result};
use avs_protocol::Error;
use serde_json::{Value, json};

/// A G1 point `X ‖ Y` as `{"x": "0x..", "y": "0x.."}`.
pub fn g1(xy: &[u8; 64]) -> Value {
    json!({ "x": encode(&xy[..32]), "y": encode(&xy[32..]) })
}

/// A G2 point in the contracts' order `X.c1 ‖ X.c0 ‖ Y.c1 ‖ Y.c0` as
/// `{"x": ["0x<c1>", "0x<c0>"], "y": ["0x<c1>", "0x<c0>"]}` (the order of `BN254.G2Point`).
pub fn g2(bytes: &[u8; 128]) -> Value {
    json!({
        "x": [encode(&bytes[..32]), encode(&bytes[32..64])],
        "y": [encode(&bytes[64..96]), encode(&bytes[96..])],
    })
}

/// Prints `value` as one line of JSON.
pub fn print(value: &Value) {
    println!("{value}");
}

/// Prints and returns the result of a check: a failed pairing is `invalid` (exit 1); anything
/// else that went wrong (a point refused) is an error. With `json`, `{"valid": true|false}`.
pub fn verdict(result: Result<(), Error>, as_json: bool) -> Result<Outcome> {
    let valid = match result {
        Ok(()) => true,
        Err(Error::VerificationFailed) => false,
        Err(e) => return Err(e).context("cannot verify"),
    };
    if as_json {
        print(&json!({ "valid": valid }));
    } else {
        println!("{}", if valid { "valid" } else { "invalid" });
    }
    Ok(if valid { Outcome::Done } else { Outcome::Invalid })
}

/// Parses every item of a list argument, naming the item (from 1) in errors.
pub fn parse_all<T>(items: &[String], what: &str, parse: impl Fn(&str, &str) -> Result<T>) -> Result<Vec<T>> {
    items.iter().enumerate().map(|(i, item)| parse(item, &format!("{what} item {}", i + 1))).collect()
}
