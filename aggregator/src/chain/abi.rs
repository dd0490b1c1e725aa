//! The contracts' functions, events and errors the aggregator uses, as their ABI has them: the
//! TaskManager's from the Solidity declaration of this project's contracts
//! (`interop/contracts/SpacecoreInterfaces.sol`, which the contracts implement), EigenLayer's
//! below.

use alloy::sol;

sol!(
    #[sol(rpc, extra_derives(Debug))]
    "../interop/contracts/SpacecoreInterfaces.sol"
);

/// The incredible-squaring TaskManager (this project's `SpacecoreTaskManager`, or any contract
/// with the same ABI), as `interop/contracts/SpacecoreInterfaces.sol` declares it. Its errors
/// include EigenLayer's BLSSignatureChecker's, which `respondToTask` passes on.
pub use ISpacecoreTaskManager as TaskManager;

sol! {
    /// EigenLayer's OperatorStateRetriever, the two views the aggregator reads.
    #[sol(rpc)]
    #[derive(Debug)]
    contract OperatorStateRetriever {
        struct Operator { address operator; bytes32 operatorId; uint96 stake; }
        struct CheckSignaturesIndices { uint32[] nonSignerQuorumBitmapIndices; uint32[] quorumApkIndices; uint32[] totalStakeIndices; uint32[][] nonSignerStakeIndices; }
        error OperatorNotRegistered();
        function getOperatorState(address registryCoordinator, bytes memory quorumNumbers, uint32 blockNumber) external view returns (Operator[][] memory);
        function getCheckSignaturesIndices(address registryCoordinator, uint32 referenceBlockNumber, bytes memory quorumNumbers, bytes32[] memory nonSignerOperatorIds) external view returns (CheckSignaturesIndices memory);
    }

    /// A registry coordinator: where its BLSApkRegistry is.
    #[sol(rpc)]
    #[derive(Debug)]
    contract RegistryCoordinator {
        function blsApkRegistry() external view returns (address);
    }

    /// EigenLayer's BLSApkRegistry: an operator's registered keys.
    #[sol(rpc)]
    #[derive(Debug)]
    contract BLSApkRegistry {
        struct G1Point { uint256 X; uint256 Y; }
        struct G2Point { uint256[2] X; uint256[2] Y; }
        function getRegisteredPubkey(address operator) external view returns (G1Point memory, bytes32);
        function getOperatorPubkeyG2(address operator) external view returns (G2Point memory);
    }
}
