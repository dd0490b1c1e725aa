//! The functions and errors of the contracts a registration calls: this project's registry
//! coordinator (`interop/contracts/SpacecoreRegistryCoordinator.sol`, whole), and the parts of
//! EigenLayer's DelegationManager, StrategyManager, AVSDirectory, StakeRegistry and service
//! manager, and of a strategy and its ERC-20 token, that it uses (their published ABI).

#![allow(missing_docs)]

use alloy::primitives::U256;
use alloy::sol;
use avs_protocol::bn254::{G1Point, G2Point};

sol! {
    /// This project's registry coordinator: its whole interface.
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    contract SpacecoreRegistryCoordinator {
        struct G1Point { uint256 X; uint256 Y; }
        struct G2Point { uint256[2] X; uint256[2] Y; }
        struct PubkeyRegistrationParams { G1Point pubkeyRegistrationSignature; G1Point pubkeyG1; G2Point pubkeyG2; }
        struct StrategyParams { address strategy; uint96 multiplier; }
        struct SignatureWithSaltAndExpiry { bytes signature; bytes32 salt; uint256 expiry; }
        error NotOwner();
        error RegistriesAlreadySet();
        error ServiceManagerAlreadySet();
        error ServiceManagerNotSet();
        error RegistriesNotSet();
        error TooManyQuorums();
        error BadQuorumNumbers();
        error AlreadyRegistered();
        function owner() external view returns (address);
        function setRegistries(address blsApk, address stake, address index) external;
        function setServiceManager(address manager) external;
        function createQuorum(uint96 minimumStake, StrategyParams[] calldata params) external returns (uint8);
        function blsApkRegistry() external view returns (address);
        function stakeRegistry() external view returns (address);
        function indexRegistry() external view returns (address);
        function serviceManager() external view returns (address);
        function quorumCount() external view returns (uint8);
        function pubkeyRegistrationDigest(address operator) external view returns (bytes32);
        function pubkeyRegistrationMessageHash(address operator) external view returns (G1Point memory);
        function registerOperator(
            bytes calldata quorumNumbers,
            PubkeyRegistrationParams calldata params,
            SignatureWithSaltAndExpiry calldata operatorSignature
        ) external returns (bytes32);
        function getOperatorId(address operator) external view returns (bytes32);
        function getOperatorFromId(bytes32 operatorId) external view returns (address);
    }

    /// EigenLayer's DelegationManager, the functions a registration uses.
    #[sol(rpc)]
    contract DelegationManager {
        function isOperator(address operator) external view returns (bool);
        function strategyManager() external view returns (address);
        function registerAsOperator(address initDelegationApprover, uint32 allocationDelay, string memory metadataURI) external;
        function getOperatorShares(address operator, address[] memory strategies) external view returns (uint256[] memory);
    }

    /// EigenLayer's StrategyManager, the deposit.
    #[sol(rpc)]
    contract StrategyManager {
        function depositIntoStrategy(address strategy, address token, uint256 amount) external returns (uint256 depositShares);
    }

    /// A strategy's token.
    #[sol(rpc)]
    contract Strategy {
        function underlyingToken() external view returns (address);
    }

    /// An ERC-20 token.
    #[sol(rpc)]
    contract Erc20 {
        function balanceOf(address account) external view returns (uint256);
        function approve(address spender, uint256 amount) external returns (bool);
    }

    /// EigenLayer's ServiceManagerBase: its AVSDirectory.
    #[sol(rpc)]
    contract ServiceManager {
        function avsDirectory() external view returns (address);
    }

    /// EigenLayer's AVSDirectory: the registration digest and status.
    #[sol(rpc)]
    contract AvsDirectory {
        function calculateOperatorAVSRegistrationDigestHash(address operator, address avs, bytes32 salt, uint256 expiry) external view returns (bytes32);
        function avsOperatorStatus(address avs, address operator) external view returns (uint8);
    }

    /// EigenLayer's StakeRegistry: its DelegationManager and the operators' stakes.
    #[sol(rpc)]
    contract StakeRegistry {
        function delegation() external view returns (address);
        function getCurrentStake(bytes32 operatorId, uint8 quorumNumber) external view returns (uint96);
    }

    /// The errors a registration can revert with, from every contract it reaches, so that a
    /// refusal is reported by the contract's own error name.
    #[derive(Debug)]
    interface RegistrationErrors {
        // The registry coordinator (this project's).
        error NotOwner();
        error RegistriesNotSet();
        error ServiceManagerNotSet();
        error BadQuorumNumbers();
        error AlreadyRegistered();
        // EigenLayer's AVSDirectory, DelegationManager, StrategyManager.
        error CurrentlyPaused();
        error InvalidSignature();
        error SignatureExpired();
        error SaltSpent();
        error OperatorAlreadyRegisteredToAVS();
        error OperatorNotRegisteredToEigenLayer();
        error ActivelyDelegated();
        error StrategyNotWhitelisted();
        error SharesAmountZero();
        error MaxStrategiesExceeded();
        // EigenLayer's BLSApkRegistry and StakeRegistry.
        error BLSPubkeyAlreadyRegistered();
        error InvalidBLSSignatureOrPrivateKey();
        error ZeroPubKey();
        error OperatorAlreadyRegistered();
        error QuorumDoesNotExist();
        error BelowMinimumStakeRequirement();
    }
}

fn word(bytes: &[u8]) -> U256 {
    U256::from_be_slice(bytes)
}

/// A G1 point as the coordinator takes it.
pub fn g1(point: &G1Point) -> SpacecoreRegistryCoordinator::G1Point {
    let b = point.to_bytes();
    SpacecoreRegistryCoordinator::G1Point { X: word(&b[..32]), Y: word(&b[32..]) }
}

/// A G2 point as the coordinator takes it: `X = [X.c1, X.c0]`, `Y = [Y.c1, Y.c0]`, the order
/// `to_bytes` writes.
pub fn g2(point: &G2Point) -> SpacecoreRegistryCoordinator::G2Point {
    let b = point.to_bytes();
    SpacecoreRegistryCoordinator::G2Point {
        X: [word(&b[..32]), word(&b[32..64])],
        Y: [word(&b[64..96]), word(&b[96..])],
    }
}
