//! The functions and errors of the contracts a registration calls: this project's registry
//! coordinator (whole, from the Solidity declaration of this project's contracts,
//! `interop/contracts/SpacecoreInterfaces.sol`, which the contracts implement), and the parts of
//! EigenLayer's DelegationManager, StrategyManager, AVSDirectory, StakeRegistry and service
//! manager, and of a strategy and its ERC-20 token, that it uses (their published ABI).

#![allow(missing_docs)]

use alloy::primitives::U256;
use alloy::sol;
use avs_protocol::bn254;

sol!(
    #[sol(rpc, extra_derives(Debug, PartialEq, Eq))]
    "../interop/contracts/SpacecoreInterfaces.sol"
);

/// This project's registry coordinator: its whole interface, as
/// `interop/contracts/SpacecoreInterfaces.sol` declares it.
pub use ISpacecoreRegistryCoordinator as SpacecoreRegistryCoordinator;

sol! {
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

    /// The errors a registration can revert with from EigenLayer's contracts it reaches (the
    /// registry coordinator's are its own), so that a refusal is reported by the contract's own
    /// error name.
    #[derive(Debug)]
    interface RegistrationErrors {
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
pub fn g1(point: &bn254::G1Point) -> G1Point {
    let b = point.to_bytes();
    G1Point { X: word(&b[..32]), Y: word(&b[32..]) }
}

/// A G2 point as the coordinator takes it: `X = [X.c1, X.c0]`, `Y = [Y.c1, Y.c0]`, the order
/// `to_bytes` writes.
pub fn g2(point: &bn254::G2Point) -> G2Point {
    let b = point.to_bytes();
    G2Point { X: [word(&b[..32]), word(&b[32..64])], Y: [word(&b[64..96]), word(&b[96..])] }
}
