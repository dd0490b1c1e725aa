//! `spacecore operator register` against EigenLayer's own contracts on a local Anvil: the
//! deployment of `interop::avs::Deployment` (EigenLayer's DelegationManager, StrategyManager,
//! AllocationManager, AVSDirectory, EigenPodManager and PermissionController behind proxies,
//! its registries and service manager, from eigen-utils' bytecode; this project's registry
//! coordinator and strategy), and operator keys made by `spacecore keys generate`.
//!
//! What EigenLayer's contracts must then show is read through eigen-utils' bindings, not
//! through the code under test: the DelegationManager knows the operator and its shares, the
//! AVSDirectory records it as registered with the AVS (it checked the ECDSA signature), the
//! StakeRegistry has its stake and BLSApkRegistry the quorum's aggregate key. The contracts
//! must refuse an AVS registration by an account that is no EigenLayer operator, an ECDSA
//! signature by another key, for another AVS or expired, and a stake under the minimum.
//!
//! Needs `SPACECORE_ANVIL` and `SPACECORE_SOLCJS` (`cargo xtask test` sets them); fails without.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider};
use avs_protocol::{bn254, ecdsa};
use eigen_utils::slashing::core::avs_directory::AVSDirectory::{self, AVSDirectoryErrors};
use eigen_utils::slashing::core::delegation_manager::DelegationManager;
use eigen_utils::slashing::middleware::bls_apk_registry::BLSApkRegistry;
use eigen_utils::slashing::middleware::stake_registry::StakeRegistry;
use eigen_utils::slashing::sdk::mock_erc20::MockERC20;
use interop::avs::{self, Deployment, QUORUM, Roles, SpacecoreRegistryCoordinator, g1_words, secret_key};
use interop::chain::Anvil;
use serde_json::Value;

const PASSWORD: &str = "operator register test password";

fn spacecore(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spacecore")).args(args).output().expect("run the spacecore CLI")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Key files made by the CLI: an eigensdk BN254 key file and an Ethereum v3 keystore.
struct OperatorFiles {
    bls: PathBuf,
    ecdsa: PathBuf,
    password: PathBuf,
    bn254_key: bn254::SecretKey,
    address: Address,
}

fn make_operator(dir: &Path, name: &str) -> OperatorFiles {
    let password = dir.join(format!("{name}.password"));
    std::fs::write(&password, PASSWORD).unwrap();
    std::fs::set_permissions(&password, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let bls = dir.join(format!("{name}.bls.json"));
    let ecdsa_path = dir.join(format!("{name}.ecdsa.json"));
    for (scheme, path) in [("bn254", &bls), ("ecdsa", &ecdsa_path)] {
        let out = spacecore(&[
            "keys",
            "generate",
            "--scheme",
            scheme,
            "--out",
            path.to_str().unwrap(),
            "--password-file",
            password.to_str().unwrap(),
            "--kdf",
            "pbkdf2",
        ]);
        assert!(out.status.success(), "keys generate --scheme {scheme}: {}", text(&out));
    }
    let file = eip2335::web3::BlsKeyFile::from_json(&std::fs::read_to_string(&bls).unwrap()).unwrap();
    let bn254_key = bn254::SecretKey::from_bytes(&file.decrypt(PASSWORD.as_bytes()).unwrap()).unwrap();
    let keystore =
        eip2335::web3::EcdsaKeystore::from_json(&std::fs::read_to_string(&ecdsa_path).unwrap()).unwrap();
    let key = ecdsa::SecretKey::from_bytes(&keystore.decrypt(PASSWORD.as_bytes()).unwrap()).unwrap();
    OperatorFiles { bls, ecdsa: ecdsa_path, password, bn254_key, address: Address::from(key.address()) }
}

fn register(anvil: &Anvil, d: &Deployment, files: &OperatorFiles, extra: &[&str]) -> Output {
    let endpoint = anvil.endpoint();
    let coordinator = d.coordinator.address().to_string();
    let mut args = vec![
        "operator",
        "register",
        "--eth-rpc",
        &endpoint,
        "--registry-coordinator",
        &coordinator,
        "--bls-key-file",
        files.bls.to_str().unwrap(),
        "--bls-password-file",
        files.password.to_str().unwrap(),
        "--ecdsa-key-file",
        files.ecdsa.to_str().unwrap(),
        "--ecdsa-password-file",
        files.password.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    spacecore(&args)
}

fn assert_fails(out: &Output, needle: &str, what: &str) {
    assert_eq!(out.status.code(), Some(2), "{what}: exit status 2 expected: {}", text(out));
    assert!(text(out).contains(needle), "{what}: the error names {needle:?}: {}", text(out));
}

/// An AVS registration by `files`' operator, with `signature`, must revert with the
/// AVSDirectory's `expected` error.
async fn assert_avs_refused(
    d: &Deployment,
    files: &OperatorFiles,
    signature: SpacecoreRegistryCoordinator::SignatureWithSaltAndExpiry,
    expected: fn(&AVSDirectoryErrors) -> bool,
    what: &str,
) {
    let params = avs::registration(&d.coordinator, &files.bn254_key, files.address).await.unwrap();
    let result = d
        .coordinator
        .registerOperator(Bytes::from(vec![QUORUM]), params, signature)
        .from(files.address)
        .call()
        .await;
    let error = match result {
        Ok(id) => panic!("{what}: the AVS registration went through (operator id {id})"),
        Err(e) => e,
    };
    let decoded = error.as_decoded_interface_error::<AVSDirectoryErrors>();
    assert!(decoded.as_ref().is_some_and(expected), "{what}: reverted with {decoded:?} ({error})");
    eprintln!("refused by EigenLayer's AVSDirectory as expected, {what}: {decoded:?}");
}

async fn signature(
    d: &Deployment,
    signer: &ecdsa::SecretKey,
    operator: Address,
    avs_address: Address,
    expiry: u64,
) -> SpacecoreRegistryCoordinator::SignatureWithSaltAndExpiry {
    let salt = B256::from(avs_protocol::keccak256(format!("{operator} {avs_address} {expiry}").as_bytes()));
    let digest = AVSDirectory::new(d.core.avs_directory, &d.provider)
        .calculateOperatorAVSRegistrationDigestHash(operator, avs_address, salt, U256::from(expiry))
        .call()
        .await
        .unwrap();
    SpacecoreRegistryCoordinator::SignatureWithSaltAndExpiry {
        signature: Bytes::from(signer.sign_prehash(&digest.0).to_vec()),
        salt,
        expiry: U256::from(expiry),
    }
}

async fn mint(d: &Deployment, to: Address, amount: u64) {
    let tx = MockERC20::new(d.core.token, &d.provider)
        .mint(to, U256::from(amount))
        .from(d.owner)
        .into_transaction_request();
    avs::send(&d.provider, tx, "mint").await.unwrap();
}

async fn latest_timestamp(provider: &DynProvider) -> u64 {
    provider
        .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
        .await
        .unwrap()
        .unwrap()
        .header
        .timestamp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_register_is_accepted_by_eigenlayers_contracts() {
    let anvil = Anvil::start().unwrap_or_else(|e| panic!("cannot start the pinned Anvil: {e}"));
    let accounts = anvil_accounts(&anvil).await;
    let roles = Roles { task_generator: accounts[6], aggregator: accounts[7], response_window_blocks: 100 };
    let d = Deployment::deploy(&anvil, &[], roles).await.unwrap_or_else(|e| panic!("cannot deploy: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let strategy = d.core.strategy.to_string();
    let operator = make_operator(dir.path(), "alice");

    // An account without ether is told so before anything is sent.
    let out = register(&anvil, &d, &operator, &["--strategy", &strategy, "--deposit", "5000"]);
    assert_fails(&out, "holds no ether", "an unfunded account");

    avs::fund(&d.provider, operator.address).await.unwrap();
    // Not enough tokens for the deposit: refused before any transaction.
    mint(&d, operator.address, 5_000).await;
    let out = register(&anvil, &d, &operator, &["--strategy", &strategy, "--deposit", "6000"]);
    assert_fails(&out, "less than the deposit", "a deposit above the balance");

    // The AVS registration alone, before the account is an EigenLayer operator, is refused
    // by EigenLayer's AVSDirectory.
    let ecdsa_key = {
        let keystore =
            eip2335::web3::EcdsaKeystore::from_json(&std::fs::read_to_string(&operator.ecdsa).unwrap())
                .unwrap();
        ecdsa::SecretKey::from_bytes(&keystore.decrypt(PASSWORD.as_bytes()).unwrap()).unwrap()
    };
    let service_manager = *d.checker.address();
    let expiry = latest_timestamp(&d.provider).await + 3600;
    let good = signature(&d, &ecdsa_key, operator.address, service_manager, expiry).await;
    assert_avs_refused(
        &d,
        &operator,
        good.clone(),
        |e| matches!(e, AVSDirectoryErrors::OperatorNotRegisteredToEigenLayer(_)),
        "an account that is no EigenLayer operator",
    )
    .await;

    // The whole registration.
    let out = register(&anvil, &d, &operator, &["--strategy", &strategy, "--deposit", "5000", "--json"]);
    assert!(out.status.success(), "operator register: {}", text(&out));
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let steps: Vec<&str> =
        report["transactions"].as_array().unwrap().iter().map(|t| t["step"].as_str().unwrap()).collect();
    assert_eq!(steps, ["registerAsOperator", "approve", "depositIntoStrategy", "registerOperator"]);
    let id = B256::from(operator.bn254_key.public_key().operator_id());
    assert_eq!(report["operator_id"], id.to_string());
    assert_eq!(report["operator"], operator.address.to_string());
    assert_eq!(report["stakes"][0]["stake"], "5000");
    assert_eq!(report["contracts"]["delegation_manager"], d.core.delegation_manager.to_string());

    // What EigenLayer's contracts record, read through eigen-utils' bindings.
    let delegation = DelegationManager::new(d.core.delegation_manager, &d.provider);
    assert!(delegation.isOperator(operator.address).call().await.unwrap(), "DelegationManager: an operator");
    let shares = delegation.getOperatorShares(operator.address, vec![d.core.strategy]).call().await.unwrap();
    assert_eq!(shares, vec![U256::from(5_000u64)], "DelegationManager: the deposit's shares");
    let status = AVSDirectory::new(d.core.avs_directory, &d.provider)
        .avsOperatorStatus(service_manager, operator.address)
        .call()
        .await
        .unwrap();
    assert_eq!(status, 1, "AVSDirectory: REGISTERED with the service manager");
    let stake =
        StakeRegistry::new(d.stake_registry, &d.provider).getCurrentStake(id, QUORUM).call().await.unwrap();
    assert_eq!(stake.to::<u64>(), 5_000, "StakeRegistry: the stake");
    let apk =
        BLSApkRegistry::new(*d.bls_apk_registry.address(), &d.provider).getApk(QUORUM).call().await.unwrap();
    assert_eq!(
        (apk.X, apk.Y),
        g1_words(&operator.bn254_key.public_key().g1()),
        "BLSApkRegistry: the quorum key"
    );

    // Run again: nothing left to do, nothing sent.
    let out = register(&anvil, &d, &operator, &[]);
    assert!(out.status.success(), "operator register again: {}", text(&out));
    assert!(text(&out).contains("nothing to do"), "{}", text(&out));

    // A second operator, an EigenLayer operator already but with no stake: the AVS's
    // StakeRegistry refuses it, and the error names the contract's own reason.
    let bob = make_operator(dir.path(), "bob");
    avs::fund(&d.provider, bob.address).await.unwrap();
    let out = register(&anvil, &d, &bob, &[]);
    assert_fails(&out, "BelowMinimumStakeRequirement", "a stake under the quorum's minimum");
    let bob_key = {
        let keystore =
            eip2335::web3::EcdsaKeystore::from_json(&std::fs::read_to_string(&bob.ecdsa).unwrap()).unwrap();
        ecdsa::SecretKey::from_bytes(&keystore.decrypt(PASSWORD.as_bytes()).unwrap()).unwrap()
    };
    let expiry = latest_timestamp(&d.provider).await + 3600;
    let by_other_key = signature(&d, &secret_ecdsa("mallory"), bob.address, service_manager, expiry).await;
    let invalid = |e: &AVSDirectoryErrors| matches!(e, AVSDirectoryErrors::InvalidSignature(_));
    assert_avs_refused(&d, &bob, by_other_key, invalid, "an ECDSA signature by another key").await;
    let for_other_avs = signature(&d, &bob_key, bob.address, Address::repeat_byte(0x77), expiry).await;
    assert_avs_refused(&d, &bob, for_other_avs, invalid, "a signature for another AVS").await;
    let past = latest_timestamp(&d.provider).await - 1;
    let expired = signature(&d, &bob_key, bob.address, service_manager, past).await;
    assert_avs_refused(
        &d,
        &bob,
        expired,
        |e| matches!(e, AVSDirectoryErrors::SignatureExpired(_)),
        "an expired signature",
    )
    .await;

    // Bad inputs, refused before any transaction.
    let wrong = dir.path().join("wrong.password");
    std::fs::write(&wrong, "not the password").unwrap();
    let swapped = OperatorFiles { password: wrong, ..make_operator(dir.path(), "carol") };
    assert_fails(&register(&anvil, &d, &swapped, &[]), "crypto.mac", "a wrong password");
    let kinds = OperatorFiles { bls: bob.ecdsa.clone(), ..make_operator(dir.path(), "dave") };
    assert_fails(
        &register(&anvil, &d, &kinds, &[]),
        "not an eigensdk BN254 key file",
        "a keystore as BN254 key",
    );
    assert_fails(&register(&anvil, &d, &bob, &["--quorums", "0,0"]), "--quorums", "repeated quorums");
}

fn secret_ecdsa(label: &str) -> ecdsa::SecretKey {
    ecdsa::SecretKey::from_bytes(&secret_key(label).to_bytes())
        .expect("a BN254 scalar is a valid secp256k1 key")
}

async fn anvil_accounts(anvil: &Anvil) -> Vec<Address> {
    let provider = alloy::providers::ProviderBuilder::new().connect(&anvil.endpoint()).await.unwrap();
    provider.get_accounts().await.unwrap()
}
