//! The task generator's and the aggregator's secp256k1 keys, from Ethereum v3 keystores and
//! password files; and the Ethereum endpoint, which must be plain HTTP on loopback.

use std::fs::File;
use std::io::Read;
use std::net::IpAddr;
use std::path::Path;

use alloy::primitives::B256;
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, anyhow, bail};
use eip2335::Zeroizing;
use eip2335::web3::EcdsaKeystore;

/// Largest keystore file read.
pub const MAX_KEYSTORE_FILE: u64 = 64 * 1024;
/// Largest password file read.
pub const MAX_PASSWORD_FILE: u64 = 4096;

fn read_limited(path: &Path, limit: u64, what: &str) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let context = || format!("{what} {}", path.display());
    let file = File::open(path).with_context(context)?;
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(limit + 1).read_to_end(&mut bytes).with_context(context)?;
    if bytes.len() as u64 > limit {
        bail!("{}: larger than {limit} bytes", context());
    }
    Ok(bytes)
}

/// The key of the Ethereum v3 keystore at `keystore`, decrypted with the password in
/// `password` (UTF-8; one trailing `\n` or `\r\n` is removed). The keystore's `address`, when
/// present, must be the key's. Errors name the file and the field; the key is never printed.
pub fn load_signer(keystore: &Path, password: &Path) -> anyhow::Result<PrivateKeySigner> {
    let what = || format!("keystore {}", keystore.display());
    let text = read_limited(keystore, MAX_KEYSTORE_FILE, "keystore")?;
    let text = std::str::from_utf8(&text).map_err(|_| anyhow!("{}: not UTF-8 text", what()))?;
    let file = EcdsaKeystore::from_json(text).map_err(|e| anyhow!("{}: {e}", what()))?;
    let mut secret = read_limited(password, MAX_PASSWORD_FILE, "password file")?;
    if std::str::from_utf8(&secret).is_err() {
        bail!("password file {}: not UTF-8 text", password.display());
    }
    if secret.ends_with(b"\n") {
        secret.pop();
        if secret.ends_with(b"\r") {
            secret.pop();
        }
    }
    let key = file.decrypt(&secret).map_err(|e| match e {
        eip2335::Error::WrongPassword => anyhow!(
            "{}: crypto.mac: wrong password (the MAC does not match: a wrong password, or an altered file)",
            what()
        ),
        other => anyhow!("{}: {other}", what()),
    })?;
    let signer = PrivateKeySigner::from_bytes(&B256::from(*key))
        .map_err(|_| anyhow!("{}: crypto.ciphertext: not a valid secp256k1 secret key", what()))?;
    if let Some(address) = file.address
        && address != signer.address().0.0
    {
        bail!(
            "{}: address: 0x{} is not the address of the keystore's key ({})",
            what(),
            alloy::hex::encode(address),
            signer.address()
        );
    }
    Ok(signer)
}

/// Checks an Ethereum JSON-RPC URL: `http://` (no TLS is compiled in), a loopback host
/// (`127.0.0.0/8`, `[::1]` or `localhost`), no user information.
pub fn check_rpc_url(url: &str) -> Result<(), String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!(
            "{url:?} must start with http:// (the aggregator speaks plain HTTP to a local node)"
        ));
    }
    let authority = uri.authority().ok_or_else(|| format!("{url:?} has no host"))?;
    if authority.as_str().contains('@') {
        return Err(format!("{url:?} must not contain user information"));
    }
    let host = authority.host().trim_start_matches('[').trim_end_matches(']');
    let loopback =
        host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return Err(format!(
            "{url:?}: the host {host:?} is not on loopback; run the Ethereum node (or a proxy to it) on 127.0.0.1"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_urls() {
        for good in
            ["http://127.0.0.1:8545", "http://localhost:8545/", "http://[::1]:8545", "http://127.1.2.3/rpc"]
        {
            assert_eq!(check_rpc_url(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("https://127.0.0.1:8545", "http://"),
            ("ws://127.0.0.1:8545", "http://"),
            ("http://10.0.0.1:8545", "not on loopback"),
            ("http://example.org:8545", "not on loopback"),
            ("http://user@127.0.0.1:8545", "user information"),
            ("127.0.0.1:8545", "http://"),
            ("", "not a URL"),
        ] {
            let error = check_rpc_url(bad).unwrap_err();
            assert!(error.contains(why), "{bad}: {error}");
        }
    }
}
