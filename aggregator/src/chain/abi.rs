//! The contracts' functions, events and errors the aggregator uses, as their ABI has them.

use alloy::sol;

sol! {
    /// The incredible-squaring TaskManager (this project's `SpacecoreTaskManager`, or any
    /// contract with the same ABI). Its errors include EigenLayer's BLSSignatureChecker's, which
    /// `respondToTask` bubbles up.
    #[sol(rpc)]
    #[derive(Debug)]
    contract TaskManager {
        struct Task { uint256 numberToBeSquared; uint32 taskCreatedBlock; bytes quorumNumbers; uint32 quorumThresholdPercentage; }
        struct TaskResponse { uint32 referenceTaskIndex; uint256 numberSquared; }
        struct TaskResponseMetadata { uint32 taskResponsedBlock; bytes32 hashOfNonSigners; }
        struct G1Point { uint256 X; uint256 Y; }
        struct G2Point { uint256[2] X; uint256[2] Y; }
        struct NonSignerStakesAndSignature { uint32[] nonSignerQuorumBitmapIndices; G1Point[] nonSignerPubkeys; G1Point[] quorumApks; G2Point apkG2; G1Point sigma; uint32[] quorumApkIndices; uint32[] totalStakeIndices; uint32[][] nonSignerStakeIndices; }

        error NotTaskGenerator();
        error NotAggregator();
        error NoQuorumNumbers();
        error InvalidThreshold(uint32 quorumThresholdPercentage);
        error NumberTooLarge(uint256 numberToBeSquared);
        error TaskMismatch(uint32 taskIndex);
        error TaskAlreadyResponded(uint32 taskIndex);
        error ResponseTooLate(uint32 taskIndex, uint32 taskCreatedBlock, uint32 currentBlock);
        error QuorumBelowThreshold(uint8 quorumNumber, uint96 signedStake, uint96 totalStake, uint32 thresholdPercentage);
        error WrongAnswer(uint32 taskIndex, uint256 expected, uint256 answered);
        error InvalidBLSSignature();
        error InvalidBLSPairingKey();
        error InvalidQuorumApkHash();
        error InvalidReferenceBlocknumber();
        error NonSignerPubkeysNotSorted();
        error InputEmptyQuorumNumbers();
        error InputArrayLengthMismatch();
        error InputNonSignerLengthMismatch();
        error BitmapValueTooLarge();
        error BytesArrayLengthTooLong();
        error BytesArrayNotOrdered();

        event NewTaskCreated(uint32 indexed taskIndex, Task task);
        event TaskResponded(TaskResponse taskResponse, TaskResponseMetadata taskResponseMetadata);

        function createNewTask(uint256 numberToBeSquared, uint32 quorumThresholdPercentage, bytes calldata quorumNumbers) external;
        function respondToTask(Task calldata task, TaskResponse calldata taskResponse, NonSignerStakesAndSignature memory nonSignerStakesAndSignature) external;
        function taskNumber() external view returns (uint32);
        function allTaskHashes(uint32 index) external view returns (bytes32);
        function allTaskResponses(uint32 index) external view returns (bytes32);
        function taskGenerator() external view returns (address);
        function aggregator() external view returns (address);
        function serviceManager() external view returns (address);
        function responseWindowBlocks() external view returns (uint32);
    }

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
