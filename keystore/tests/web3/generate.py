#!/usr/bin/env python3
"""Writes vectors.json: Web3 Secret Storage v3 key files made by implementations this project
did not write, for keystore/tests/web3.rs.

Run by hand (not in CI), in a throwaway virtual environment:

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install eth-keyfile py_ecc
    /tmp/venv/bin/python keystore/tests/web3/generate.py > keystore/tests/web3/vectors.json

- ECDSA keystores: `eth_keyfile.create_keyfile_json` (version 3), scrypt with a small n and
  pbkdf2 with a small c, so that the tests stay fast. Its address comes from `eth-keys`.
- BLS key files in eigensdk's layout, `{"pubKey": "E([X,Y])", "crypto": ...}`: the `crypto`
  object is eth-keyfile's, around the 32-byte big-endian BN254 scalar, and `pubKey` is the G1
  key computed by py_ecc's bn128 (X and Y in decimal, as eigensdk-go's gnark points print).

Salts and IVs are random, so every run writes different files; any of them must pass.
Each file is also decrypted back with eth-keyfile before it is written.
"""
import json
import sys

from eth_keyfile import create_keyfile_json, decode_keyfile_json
from eth_keys import keys
from py_ecc.optimized_bn128 import G1, multiply, normalize

# (name, kind, secret key, password, kdf, cost)
CASES = [
    ("ecdsa-scrypt", "ecdsa", "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318", "correct horse", "scrypt", 1024),
    ("ecdsa-pbkdf2", "ecdsa", "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318", "correct horse", "pbkdf2", 1000),
    # A password that is not ASCII and not in NFKD form: used as raw UTF-8 bytes.
    ("ecdsa-pbkdf2-unicode", "ecdsa", "0000000000000000000000000000000000000000000000000000000000000001", "p\u00e4ssw\u00f6rd \U0001F511", "pbkdf2", 16),
    ("ecdsa-scrypt-empty-password", "ecdsa", "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364140", "", "scrypt", 16),
    ("bls-scrypt", "bls", "05f2f2b4a3c9b5d6a3e1c0a3bc1e9c18c5bd0cfa3b67fd5a1a9a4fd1e43a8f21", "a long passphrase", "scrypt", 1024),
    ("bls-pbkdf2", "bls", "0000000000000000000000000000000000000000000000000000000000000003", "hunter2", "pbkdf2", 1000),
]


def main():
    out = []
    for name, kind, secret_hex, password, kdf, cost in CASES:
        secret = bytes.fromhex(secret_hex)
        pw = password.encode("utf-8")
        ks = create_keyfile_json(secret, pw, version=3, kdf=kdf, iterations=cost)
        assert decode_keyfile_json(ks, pw) == secret
        entry = {"name": name, "kind": kind, "secret": secret_hex, "password": password}
        if kind == "ecdsa":
            entry["address"] = keys.PrivateKey(secret).public_key.to_address()[2:]
            entry["file"] = json.dumps(ks)
        else:
            x, y = normalize(multiply(G1, int(secret_hex, 16)))
            entry["g1"] = "%064x%064x" % (int(x), int(y))
            entry["file"] = json.dumps({"pubKey": "E([%d,%d])" % (int(x), int(y)), "crypto": ks["crypto"]})
        out.append(entry)
    json.dump(out, sys.stdout, indent=1, ensure_ascii=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
