//! BN254 vectors computed by an independent implementation (the Ethereum Foundation's py_ecc,
//! `bn128`, with eth-hash for keccak256) with the script below, run once in a throw-away
//! virtualenv; its output is embedded here, so the tests need no Python. The script follows
//! EigenLayer's definitions (docs/protocol.md): try-and-increment hash to G1 with the contracts'
//! square root, G2 keys in the contracts' order, operator id = keccak256(X ‖ Y).
//!
//! ```python
//! # pip install py_ecc==8.0.0 'eth-hash[pycryptodome]==0.8.0'
//! from eth_hash.auto import keccak
//! from py_ecc.bn128 import G1, G2, FQ, add, multiply, curve_order, field_modulus as p, pairing, neg
//!
//! h32 = lambda n: "%064x" % int(n)
//! def g1(P): return h32(P[0].n) + h32(P[1].n)
//! def g2(Q): return h32(Q[0].coeffs[1]) + h32(Q[0].coeffs[0]) + h32(Q[1].coeffs[1]) + h32(Q[1].coeffs[0])
//! def hash_to_g1(msg):
//!     x = int.from_bytes(msg, "big") % p
//!     while True:
//!         beta = (x * x * x + 3) % p
//!         y = pow(beta, (p + 1) // 4, p)
//!         if y * y % p == beta:
//!             return (FQ(x), FQ(y))
//!         x = (x + 1) % p
//! digest = keccak((7).to_bytes(32, "big") + (81).to_bytes(32, "big"))
//! msgs = [digest, bytes(32), b"\xff" * 32, p.to_bytes(32, "big")]
//! for m in msgs:
//!     print('("%s", "%s"),' % (m.hex(), g1(hash_to_g1(m))))
//! sks = [int.from_bytes(keccak(b"spacecore-bn254-test-key-%d" % i), "big") % curve_order for i in range(3)]
//! H = hash_to_g1(digest)
//! sigs = []
//! for sk in sks:
//!     pk1, pk2, sig = multiply(G1, sk), multiply(G2, sk), multiply(H, sk)
//!     sigs.append(sig)
//!     print('Key { secret: "%s", g1: "%s", g2: "%s", operator_id: "%s", signature: "%s" },' % (
//!         h32(sk), g1(pk1), g2(pk2), keccak(bytes.fromhex(g1(pk1))).hex(), g1(sig)))
//! agg = sigs[0]
//! for s in sigs[1:]: agg = add(agg, s)
//! apk2 = multiply(G2, sum(sks) % curve_order)
//! assert pairing(apk2, H) == pairing(G2, agg)
//! print("aggregate", g1(agg), g2(apk2))
//! ```

use avs_protocol::bn254::{self, G1Point, G2Point, PublicKey, SecretKey, Signature};
use avs_protocol::encoding::from_hex;

/// (message, hash_to_g1(message)): the (7, 81) task response digest, then 0, 2^256 − 1 and p,
/// where `x = msg mod p` wraps.
const HASHES: &[(&str, &str)] = &[
    (
        "28b08f6abf7f06678e9af8f957a660fe6be44b778e4a7a5cfaff67468fdc6170",
        "28b08f6abf7f06678e9af8f957a660fe6be44b778e4a7a5cfaff67468fdc617117782cfcff58f57e2ec612c6d01d50a835118d2cbf74f7536058272f1ff049c7",
    ),
    (
        "0000000000000000000000000000000000000000000000000000000000000000",
        "00000000000000000000000000000000000000000000000000000000000000010000000000000000000000000000000000000000000000000000000000000002",
    ),
    (
        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "0e0a77c19a07df2f666ea36f7879462c0a78eb28f5c70b3dd35d438dc58f0d9c14be43b98e05db3bee1459f626263fc7bccd58e77b8182329f8ac7453c92c0ca",
    ),
    (
        "30644e72e131a029b85045b68181585d97816a916871ca8d3c208c16d87cfd47",
        "00000000000000000000000000000000000000000000000000000000000000010000000000000000000000000000000000000000000000000000000000000002",
    ),
];

struct Key {
    secret: &'static str,
    g1: &'static str,
    g2: &'static str,
    operator_id: &'static str,
    /// The signature of the (7, 81) digest.
    signature: &'static str,
}

const KEYS: &[Key] = &[
    Key {
        secret: "1d6ac8c5fb960186f22e7ef13c4ca46e31531f2dc7925e07e76f41b922b2d31d",
        g1: "1f9fe5034680021a2b8ce98f3099bfa63266eba28b343d4698054d5d3dae775d0d15fa6d4851736331bcd070c8da385baa297e86c30cfb7bb882329d8669232b",
        g2: "213888983542420f8742dac127441eab46d70d4f14d62849006010ae547e73ac11f50af4f4bfccb03335e2a13046ad3bb5babfa2d2196c6e2e916596aef9ec2e00fc54c269d5d568d2d13abfe32a2e755208270eb965cac7fcdf926f0b57aed226c1a9572e26e041291b5a4fc20a4c0833bd06279c35074aee2baa8015be98b3",
        operator_id: "d26bac5cc91d6128c806668753abccd519269e162f8793af1b01c99252a2c5e8",
        signature: "16d3d068dee4c5dafe95109da315337c81a99adb82c761153fd6b113128660842595c77bd9a474a1470b6fea76bb3222d624bfa8837d44dbfa740652b00e4c65",
    },
    Key {
        secret: "0fedfe14774af8a216c8a7e087ad53219af69ea7a0b0867bc8cf2df31196571c",
        g1: "27aab3465daedcaeba2e61010b941163f9b731a5bb267a7e013509f0f7629df429c0639dfb674b2081dcaddb534f70d930ebb1235cdf741225f8e04e01476d04",
        g2: "24a9e270e6ffbe59bb0e58c16c8261b1b2004c6e57499d0e06a855b297d3544a00ef17db25de82c25b4ae84ea7cc6957c0c540c3a6e8e186d1c173e9b133f8f92915da4e74a30e027696802b0c32e9d41f4e7e11530bfcc55bf4afc8308684390a57f104dc9248638e0d9186fee8625e18afd29d7841987b589b5bec447fb444",
        operator_id: "f355a6a14dac59e7f2ee1f9842e866cb2c2276cd70086f5faa08b1e66722d6a2",
        signature: "04306c0c8339730069284dea50bee471aefa247c5274ac6ce7457a82923a5b3b1c83ba1cfe96a67e5435d7682baa7dc2e314f24e395df86a9f2ba5540574bbee",
    },
    Key {
        secret: "04d7ff901fc6a6cb62d73eec9d20d128f5a3f5dc4e0c6eed5e882a7d76b0623f",
        g1: "04d220630c7f85907de31de8d8f22009e7e6f7841aa48396b4863f7ccccae4a00ed3cfe0d5c3b747ab7ea99ccb4e49e1ed581ceed7c7fc064a53af922e10fb3f",
        g2: "1434c87af203a6b029f93accd1c6707dd751d2529091c73ef7485586022c1bd8271fc2c7e39ee75eb298716d8c701bdc73c369cfa6c8a5bf27c0a43a7422870e0c0025eab3daf03be06a6120fa573322052c2472f77e83d3fc4becb7ef43ebf617836f2ee8416dbedcee1141cd29207af993977159565b5b2704f6f578a24f21",
        operator_id: "cf808d17c288293b8766e13e798ae7450ca92fe3f1ea2208fd0afc817e7e285b",
        signature: "25fd4bf64f1ae5e77e9cf5ae7af4d577a05c04b59f581d6f92c09bc6a43f1c8004fa678545fe23a2a7b4f66177b8b5318efcbc65d104f8f5147f829059aac7d8",
    },
];

/// The sum of the three signatures, and of the three G2 keys.
const AGGREGATE_SIGNATURE: &str = "07b379d9defdabd7cacb598c19e5b5874eb1f730e4fe912351e4a834660a80ac11ab7fbcd61e2274b74b5529ace1fd379493876613d9bd02c52da374551b6c5e";
const AGGREGATE_G2: &str = "17ddc9b80411927035e111a5709b745609b40df739925288ada001e9f3d37ac0252f0a8cdad6643a412067997c6586958e69525734862dd52d5d43b7b23f66ed2356516d991f50a83480a324e6a0ea5b103bb1a4be87ebcc256340b4faa1af481bcecf356b7092a8442d265c8efb28383b1439df646b32bcfebf542163be12fb";

fn bytes<const N: usize>(hex: &str) -> [u8; N] {
    from_hex(&format!("0x{hex}")).unwrap().try_into().unwrap()
}

#[test]
fn hash_to_g1() {
    for (msg, point) in HASHES {
        assert_eq!(bn254::hash_to_g1(&bytes(msg)).to_bytes(), bytes::<64>(point), "message {msg}");
    }
}

#[test]
fn keys_operator_ids_and_signatures() {
    let digest = bytes(HASHES[0].0);
    for key in KEYS {
        let secret = SecretKey::from_bytes(&bytes(key.secret)).unwrap();
        let public = secret.public_key();
        assert_eq!(public.g1().to_bytes(), bytes::<64>(key.g1));
        assert_eq!(public.g2().to_bytes(), bytes::<128>(key.g2));
        assert_eq!(public.operator_id(), bytes::<32>(key.operator_id));
        assert_eq!(secret.sign(&digest).to_bytes(), bytes::<64>(key.signature));
        // Parsed back from the vectors' encodings, the halves match and the signature verifies.
        let parsed = PublicKey::new(
            G1Point::from_bytes(&bytes(key.g1)).unwrap(),
            G2Point::from_bytes(&bytes(key.g2)).unwrap(),
        )
        .unwrap();
        bn254::verify(&parsed.g2(), &digest, &Signature::from_bytes(&bytes(key.signature)).unwrap()).unwrap();
    }
}

#[test]
fn aggregate() {
    let digest = bytes(HASHES[0].0);
    let signatures: Vec<Signature> =
        KEYS.iter().map(|k| Signature::from_bytes(&bytes(k.signature)).unwrap()).collect();
    let g2s: Vec<G2Point> = KEYS.iter().map(|k| G2Point::from_bytes(&bytes(k.g2)).unwrap()).collect();
    let aggregate = bn254::aggregate_signatures(&signatures.iter().collect::<Vec<_>>()).unwrap();
    let apk = bn254::aggregate_g2(&g2s.iter().collect::<Vec<_>>()).unwrap();
    assert_eq!(aggregate.to_bytes(), bytes::<64>(AGGREGATE_SIGNATURE));
    assert_eq!(apk.to_bytes(), bytes::<128>(AGGREGATE_G2));
    bn254::verify(&apk, &digest, &aggregate).unwrap();
}
