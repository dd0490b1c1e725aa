//! Interoperability vectors computed by independent implementations (the Ethereum Foundation's
//! py_ecc for BLS, eth-abi and eth-hash/pycryptodome for the digest) with the script below, run
//! once in a throw-away virtualenv; its output is embedded here, so the tests need no Python.
//!
//! ```python
//! # pip install py_ecc==8.0.0 eth-abi==6.0.0 'eth-hash[pycryptodome]==0.8.0'
//! from eth_abi import encode
//! from eth_hash.auto import keccak
//! from py_ecc.bls import G2ProofOfPossession as bls
//! from py_ecc.bls.g2_primitives import G1_to_pubkey, G2_to_signature
//! from py_ecc.bls.point_compression import modular_squareroot_in_FQ2
//! from py_ecc.optimized_bls12_381 import FQ, FQ2, b, b2, multiply, curve_order, is_inf, field_modulus
//!
//! h = lambda bs: "0x" + bs.hex()
//! # 1. keccak256(abi.encode(TaskResponse)) for (index, square).
//! for idx, sq in [(7, 81), (0xDEADBEEF, (2**128 - 1) ** 2)]:
//!     enc = encode(["(uint32,uint256)"], [(idx, sq)])
//!     print("digest", idx, sq, h(enc), h(keccak(enc)))
//! # 2. BLS12-381 min-pk, proof-of-possession ciphersuite; message = the (7, 81) digest.
//! msg = keccak(encode(["(uint32,uint256)"], [(7, 81)]))
//! print("keygen", h(bytes(range(32))), hex(bls.KeyGen(bytes(range(32)))))
//! sks = [int.from_bytes(keccak(b"spacecore-avs-test-key-%d" % i), "big") % curve_order for i in range(3)]
//! for sk in sks:
//!     print("sk", h(sk.to_bytes(32, "big")), "pk", h(bls.SkToPk(sk)))
//!     print("  sig", h(bls.Sign(sk, msg)), "pop", h(bls.PopProve(sk)))
//! pks = [bls.SkToPk(sk) for sk in sks]
//! agg = bls.Aggregate([bls.Sign(sk, msg) for sk in sks])
//! assert bls.FastAggregateVerify(pks, msg, agg)
//! print("aggsig", h(agg), "aggpk", h(bls._AggregatePKs(pks)))
//! print("operator_id of key 0", h(keccak(pks[0])))
//! # 3. Points on the curves but outside the prime-order subgroups, and an x with no G1 point.
//! sqrt_fq = lambda a: (lambda r: r if r * r == a else None)(a ** ((field_modulus + 1) // 4))
//! def first_point(x, one, coeff, sqrt):
//!     while (y := sqrt(x ** 3 + coeff)) is None or is_inf(multiply((x, y, one), curve_order)):
//!         x += one
//!     return (x, y, one)
//! print("g1_outside_subgroup", h(G1_to_pubkey(first_point(FQ(1), FQ.one(), b, sqrt_fq))))
//! print("g2_outside_subgroup", h(G2_to_signature(first_point(FQ2([1, 1]), FQ2.one(), b2, modular_squareroot_in_FQ2))))
//! x = FQ(1)
//! while sqrt_fq(x ** 3 + b) is not None:
//!     x += 1
//! print("g1_no_point_at_x", x)
//! ```

use avs_protocol::bls::{self, PublicKey, SecretKey, Signature};
use avs_protocol::encoding::from_hex;
use avs_protocol::rpc::Request;
use avs_protocol::{SignedTaskResponse, TaskResponse, U256};

/// `N` bytes from `0x` hex.
fn bytes<const N: usize>(hex: &str) -> [u8; N] {
    from_hex(hex).expect("hex").try_into().expect("length")
}

include!("bls_vectors.in");

#[test]
fn digest_of_small_response() {
    let response = TaskResponse { reference_task_index: 7, number_squared: U256::from(81u32) };
    let expected_encoding = "0x0000000000000000000000000000000000000000000000000000000000000007\
                             0000000000000000000000000000000000000000000000000000000000000051";
    assert_eq!(response.abi_encode(), bytes::<64>(expected_encoding));
    assert_eq!(response.digest(), bytes::<32>(DIGEST_7_81));
}

#[test]
fn digest_of_largest_square() {
    let max_root = U256::from(u128::MAX);
    let response = TaskResponse {
        reference_task_index: 0xdead_beef,
        number_squared: avs_protocol::square(max_root).unwrap(),
    };
    let expected_encoding = "0x00000000000000000000000000000000000000000000000000000000deadbeef\
                             fffffffffffffffffffffffffffffffe00000000000000000000000000000001";
    assert_eq!(response.abi_encode(), bytes::<64>(expected_encoding));
    assert_eq!(
        response.digest(),
        bytes::<32>("0xfaa5db1172a0c868619ab004fdcdc284b7bc0d545e2247a52fb427ced8436b5d")
    );
}

#[test]
fn key_gen_matches_py_ecc() {
    let sk = SecretKey::key_gen(&bytes::<32>(
        "0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
    ))
    .unwrap();
    assert_eq!(
        *sk.to_bytes(),
        bytes::<32>("0x23360db7e337b0a32b264e06bc11c1b474d16f55665373de1ce93cf15ddb3456")
    );
}

#[test]
fn keys_signatures_and_proofs_match_py_ecc() {
    let msg = bytes::<32>(DIGEST_7_81);
    for (sk_hex, pk_hex, sig_hex, pop_hex) in KEYS {
        let sk = SecretKey::from_bytes(&bytes(sk_hex)).unwrap();
        let pk = sk.public_key();
        assert_eq!(pk.to_bytes(), bytes::<48>(pk_hex));
        assert_eq!(PublicKey::from_bytes(&bytes(pk_hex)).unwrap(), pk);

        let sig = sk.sign(&msg);
        assert_eq!(sig.to_bytes(), bytes::<96>(sig_hex));
        assert_eq!(bls::verify(&pk, &msg, &Signature::from_bytes(&bytes(sig_hex)).unwrap()), Ok(()));

        let pop = bls::pop_prove(&sk);
        assert_eq!(pop.to_bytes(), bytes::<96>(pop_hex));
        assert_eq!(bls::pop_verify(&pk, &pop), Ok(()));
    }
}

#[test]
fn aggregates_match_py_ecc() {
    let msg = bytes::<32>(DIGEST_7_81);
    let pks: Vec<PublicKey> = KEYS.iter().map(|k| PublicKey::from_bytes(&bytes(k.1)).unwrap()).collect();
    let sigs: Vec<Signature> = KEYS.iter().map(|k| Signature::from_bytes(&bytes(k.2)).unwrap()).collect();
    let pk_refs: Vec<&PublicKey> = pks.iter().collect();
    let sig_refs: Vec<&Signature> = sigs.iter().collect();

    let aggregate = bls::aggregate_signatures(&sig_refs).unwrap();
    assert_eq!(aggregate.to_bytes(), bytes::<96>(AGGREGATE_SIGNATURE));
    assert_eq!(bls::aggregate_public_keys(&pk_refs).unwrap().to_bytes(), bytes::<48>(AGGREGATE_PUBLIC_KEY));
    assert_eq!(bls::fast_aggregate_verify(&pk_refs, &msg, &aggregate), Ok(()));
    // Missing a signer, or a different message, fails.
    assert!(bls::fast_aggregate_verify(&pk_refs[..2], &msg, &aggregate).is_err());
    assert!(bls::fast_aggregate_verify(&pk_refs, &[0; 32], &aggregate).is_err());
}

/// The example request of `docs/protocol.md`, byte for byte.
#[test]
fn documented_request_example() {
    let sk = SecretKey::from_bytes(&bytes(KEYS[0].0)).unwrap();
    let response = TaskResponse { reference_task_index: 7, number_squared: U256::from(81u32) };
    let signed = SignedTaskResponse::sign(response, &sk);
    assert_eq!(signed.operator_id, bytes::<32>(OPERATOR_ID_0));
    let json = serde_json::to_string(&Request::process_signed_task_response(1, signed)).unwrap();
    let expected = format!(
        r#"{{"jsonrpc":"2.0","method":"process_signed_task_response","params":{{"task_response":{{"reference_task_index":7,"number_squared":"81"}},"signature":"{}","operator_id":"{OPERATOR_ID_0}"}},"id":1}}"#,
        KEYS[0].2
    );
    assert_eq!(json, expected);
}

/// keccak256 of the first key's compressed public key.
const OPERATOR_ID_0: &str = "0x32702bc994bd0d546ea47e835bc9bf0948305d1078b691d85a90a695bb3b01c2";
