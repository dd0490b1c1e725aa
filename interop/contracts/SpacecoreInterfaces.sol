// SPDX-License-Identifier: Apache-2.0
//
// The external interface of Spacecore's own contracts: its registry coordinator
// (SpacecoreRegistryCoordinator.sol) and its incredible-squaring task manager
// (SpacecoreTaskManager.sol), which import this file and implement these interfaces, with the
// types they share and the part of EigenLayer's BLSSignatureChecker the task manager calls. It
// is the one declaration of their ABI: the operator's registration (operator/src/abi.rs) and the
// aggregator's chain mode (aggregator/src/chain/abi.rs) read this file with alloy's `sol!`, so it
// holds declarations only. See docs/chain.md.
pragma solidity ^0.8.27;

// ---- BN254 points, as EigenLayer's contracts take them ----

struct G1Point {
    uint256 X;
    uint256 Y;
}

// Coordinates imaginary part first, as EigenLayer's contracts take them.
struct G2Point {
    uint256[2] X;
    uint256[2] Y;
}

// ---- EigenLayer's BLSSignatureChecker: its types and entry point, as its ABI publishes them ----

struct NonSignerStakesAndSignature {
    uint32[] nonSignerQuorumBitmapIndices;
    G1Point[] nonSignerPubkeys;
    G1Point[] quorumApks;
    G2Point apkG2;
    G1Point sigma;
    uint32[] quorumApkIndices;
    uint32[] totalStakeIndices;
    uint32[][] nonSignerStakeIndices;
}

struct QuorumStakeTotals {
    uint96[] signedStakeForQuorum;
    uint96[] totalStakeForQuorum;
}

interface IBLSSignatureCheckerCalls {
    function checkSignatures(
        bytes32 msgHash,
        bytes calldata quorumNumbers,
        uint32 referenceBlockNumber,
        NonSignerStakesAndSignature memory params
    ) external view returns (QuorumStakeTotals memory, bytes32);
}

// ---- the registry coordinator ----

interface ISpacecoreRegistryCoordinator {
    struct PubkeyRegistrationParams {
        G1Point pubkeyRegistrationSignature;
        G1Point pubkeyG1;
        G2Point pubkeyG2;
    }

    struct StrategyParams {
        address strategy;
        uint96 multiplier;
    }

    // An operator's ECDSA signature over AVSDirectory's registration digest.
    struct SignatureWithSaltAndExpiry {
        bytes signature;
        bytes32 salt;
        uint256 expiry;
    }

    error NotOwner();
    error RegistriesAlreadySet();
    error ServiceManagerAlreadySet();
    error ServiceManagerNotSet();
    error RegistriesNotSet();
    error TooManyQuorums();
    error BadQuorumNumbers();
    error AlreadyRegistered();
    error NotRegisteredAtBlock(bytes32 operatorId, uint32 blockNumber);
    error BitmapIndexNotForBlock(bytes32 operatorId, uint32 blockNumber, uint256 index);
    error ModExpFailed();

    event OperatorRegistered(address indexed operator, bytes32 indexed operatorId, uint192 quorumBitmap);

    function owner() external view returns (address);
    function blsApkRegistry() external view returns (address);
    function stakeRegistry() external view returns (address);
    function indexRegistry() external view returns (address);
    function serviceManager() external view returns (address);
    function quorumCount() external view returns (uint8);

    /// Once, by the owner: the registries deployed with this contract's address.
    function setRegistries(address blsApk, address stake, address index) external;

    /// Once, by the owner: the service manager deployed with this contract's address (the
    /// AVS whose AVSDirectory registration every operator signs).
    function setServiceManager(address manager) external;

    /// A quorum weighed by delegated shares of `params`' strategies, in every registry.
    function createQuorum(uint96 minimumStake, StrategyParams[] calldata params) external returns (uint8);

    /// The 32-byte message `operator` signs with its BN254 key to register it.
    function pubkeyRegistrationDigest(address operator) external view returns (bytes32);

    /// That message hashed to G1 as EigenLayer's BN254 library does (try-and-increment).
    function pubkeyRegistrationMessageHash(address operator) external view returns (G1Point memory);

    /// x = digest mod p; while x³ + 3 has no square root, x += 1; y = (x³ + 3)^((p+1)/4).
    function hashToG1(bytes32 digest) external view returns (G1Point memory);

    /// Registers the caller with its BN254 key in `quorumNumbers` (ascending, distinct, each
    /// below quorumCount). BLSApkRegistry checks the key's registration signature; the service
    /// manager's AVSDirectory checks that the caller is an EigenLayer operator and its ECDSA
    /// signature over the AVS registration digest; the StakeRegistry refuses stakes below a
    /// quorum's minimum.
    function registerOperator(
        bytes calldata quorumNumbers,
        PubkeyRegistrationParams calldata params,
        SignatureWithSaltAndExpiry calldata operatorSignature
    ) external returns (bytes32 operatorId);

    // What the registries, the checker and OperatorStateRetriever read.
    function getOperatorId(address operator) external view returns (bytes32);
    function getOperatorFromId(bytes32 operatorId) external view returns (address);
    function getCurrentQuorumBitmap(bytes32 operatorId) external view returns (uint192);
    function getQuorumBitmapHistoryLength(bytes32 operatorId) external view returns (uint256);

    /// For each operator, the index of its bitmap update in force at `blockNumber`.
    function getQuorumBitmapIndicesAtBlockNumber(uint32 blockNumber, bytes32[] calldata ids)
        external
        view
        returns (uint32[] memory indices);

    /// The operator's quorum bitmap at `blockNumber`, from the update at `index`, which must be
    /// the one in force at that block.
    function getQuorumBitmapAtBlockNumberByIndex(bytes32 operatorId, uint32 blockNumber, uint256 index)
        external
        view
        returns (uint192);
}

// ---- the incredible-squaring task manager ----

// Its structs, events and function signatures are the incredible-squaring TaskManager's.
interface ISpacecoreTaskManager {
    // The incredible-squaring task: what the task generator asks for.
    struct Task {
        uint256 numberToBeSquared;
        uint32 taskCreatedBlock;
        bytes quorumNumbers;
        uint32 quorumThresholdPercentage;
    }

    // What the operators sign: keccak256(abi.encode(taskResponse)).
    struct TaskResponse {
        uint32 referenceTaskIndex;
        uint256 numberSquared;
    }

    // What the contract adds when it accepts a response.
    struct TaskResponseMetadata {
        uint32 taskResponsedBlock;
        bytes32 hashOfNonSigners;
    }

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
    // EigenLayer's BLSSignatureChecker's, which respondToTask passes on from checkSignatures.
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

    /// A new task at the current block, by the task generator only.
    function createNewTask(uint256 numberToBeSquared, uint32 quorumThresholdPercentage, bytes calldata quorumNumbers)
        external;

    /// The aggregate of the operators' answer to `task`, by the aggregator only. EigenLayer's
    /// checker verifies the aggregate signature over keccak256(abi.encode(taskResponse)) with the
    /// stakes and keys registered at the task's block; the contract requires each quorum's
    /// signed stake to reach the task's threshold and the answer to be the square.
    function respondToTask(
        Task calldata task,
        TaskResponse calldata taskResponse,
        NonSignerStakesAndSignature memory nonSignerStakesAndSignature
    ) external;

    /// The index the next task gets.
    function taskNumber() external view returns (uint32);
    function allTaskHashes(uint32 index) external view returns (bytes32);
    function allTaskResponses(uint32 index) external view returns (bytes32);
    function taskGenerator() external view returns (address);
    function aggregator() external view returns (address);
    /// EigenLayer's signature checker (the service manager inheriting BLSSignatureChecker).
    function serviceManager() external view returns (address);
    /// A response must be mined at most this many blocks after its task's block.
    function responseWindowBlocks() external view returns (uint32);
}
