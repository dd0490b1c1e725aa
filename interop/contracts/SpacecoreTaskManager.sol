// SPDX-License-Identifier: Apache-2.0
//
// Spacecore's own incredible-squaring task manager (not EigenLayer's code). Its structs, events
// and function signatures have the incredible-squaring ABI, so a node that decodes
// `NewTaskCreated(uint32,(uint256,uint32,bytes,uint32))` and signs
// keccak256(abi.encode(uint32 referenceTaskIndex, uint256 numberSquared)) works against it
// unchanged. The signature check is not done here: `respondToTask` calls `checkSignatures` of
// the service manager it was deployed with (EigenLayer's MockAvsServiceManager, which inherits
// EigenLayer's BLSSignatureChecker), and only adds the task bookkeeping, the stake threshold and
// the answer check. See docs/chain.md.
pragma solidity ^0.8.27;

library TaskManagerBN254 {
    struct G1Point {
        uint256 X;
        uint256 Y;
    }

    // Coordinates imaginary part first, as EigenLayer's contracts take them.
    struct G2Point {
        uint256[2] X;
        uint256[2] Y;
    }
}

// EigenLayer's BLSSignatureChecker types and entry point, as its ABI publishes them.
interface IBLSSignatureCheckerCalls {
    struct NonSignerStakesAndSignature {
        uint32[] nonSignerQuorumBitmapIndices;
        TaskManagerBN254.G1Point[] nonSignerPubkeys;
        TaskManagerBN254.G1Point[] quorumApks;
        TaskManagerBN254.G2Point apkG2;
        TaskManagerBN254.G1Point sigma;
        uint32[] quorumApkIndices;
        uint32[] totalStakeIndices;
        uint32[][] nonSignerStakeIndices;
    }

    struct QuorumStakeTotals {
        uint96[] signedStakeForQuorum;
        uint96[] totalStakeForQuorum;
    }

    function checkSignatures(
        bytes32 msgHash,
        bytes calldata quorumNumbers,
        uint32 referenceBlockNumber,
        NonSignerStakesAndSignature memory params
    ) external view returns (QuorumStakeTotals memory, bytes32);
}

contract SpacecoreTaskManager {
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

    uint256 internal constant THRESHOLD_DENOMINATOR = 100;

    // EigenLayer's signature checker (the service manager inheriting BLSSignatureChecker).
    IBLSSignatureCheckerCalls public immutable serviceManager;
    address public immutable taskGenerator;
    address public immutable aggregator;
    // A response must be mined at most this many blocks after its task's block.
    uint32 public immutable responseWindowBlocks;

    // The index the next task gets.
    uint32 public taskNumber;
    mapping(uint32 => bytes32) public allTaskHashes;
    mapping(uint32 => bytes32) public allTaskResponses;

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

    event NewTaskCreated(uint32 indexed taskIndex, Task task);
    event TaskResponded(TaskResponse taskResponse, TaskResponseMetadata taskResponseMetadata);

    constructor(IBLSSignatureCheckerCalls checker, address generator, address aggregator_, uint32 windowBlocks) {
        serviceManager = checker;
        taskGenerator = generator;
        aggregator = aggregator_;
        responseWindowBlocks = windowBlocks;
    }

    /// A new task at the current block, by the task generator only.
    function createNewTask(uint256 numberToBeSquared, uint32 quorumThresholdPercentage, bytes calldata quorumNumbers)
        external
    {
        if (msg.sender != taskGenerator) revert NotTaskGenerator();
        if (quorumNumbers.length == 0) revert NoQuorumNumbers();
        if (quorumThresholdPercentage == 0 || quorumThresholdPercentage > THRESHOLD_DENOMINATOR) {
            revert InvalidThreshold(quorumThresholdPercentage);
        }
        // The answer must fit in a uint256, or no response could ever be accepted.
        if (numberToBeSquared != 0 && numberToBeSquared > type(uint256).max / numberToBeSquared) {
            revert NumberTooLarge(numberToBeSquared);
        }
        Task memory task = Task(numberToBeSquared, uint32(block.number), quorumNumbers, quorumThresholdPercentage);
        uint32 index = taskNumber;
        allTaskHashes[index] = keccak256(abi.encode(task));
        taskNumber = index + 1;
        emit NewTaskCreated(index, task);
    }

    /// The aggregate of the operators' answer to `task`, by the aggregator only. EigenLayer's
    /// checker verifies the aggregate signature over keccak256(abi.encode(taskResponse)) with the
    /// stakes and keys registered at the task's block; this contract requires each quorum's
    /// signed stake to reach the task's threshold and the answer to be the square.
    function respondToTask(
        Task calldata task,
        TaskResponse calldata taskResponse,
        IBLSSignatureCheckerCalls.NonSignerStakesAndSignature memory nonSignerStakesAndSignature
    ) external {
        if (msg.sender != aggregator) revert NotAggregator();
        uint32 index = taskResponse.referenceTaskIndex;
        if (allTaskHashes[index] == bytes32(0) || keccak256(abi.encode(task)) != allTaskHashes[index]) {
            revert TaskMismatch(index);
        }
        if (allTaskResponses[index] != bytes32(0)) revert TaskAlreadyResponded(index);
        if (uint256(block.number) > uint256(task.taskCreatedBlock) + responseWindowBlocks) {
            revert ResponseTooLate(index, task.taskCreatedBlock, uint32(block.number));
        }

        bytes32 message = keccak256(abi.encode(taskResponse));
        (IBLSSignatureCheckerCalls.QuorumStakeTotals memory totals, bytes32 hashOfNonSigners) = serviceManager
            .checkSignatures(message, task.quorumNumbers, task.taskCreatedBlock, nonSignerStakesAndSignature);

        for (uint256 i = 0; i < task.quorumNumbers.length; i++) {
            uint256 signed = totals.signedStakeForQuorum[i];
            uint256 total = totals.totalStakeForQuorum[i];
            if (signed * THRESHOLD_DENOMINATOR < total * task.quorumThresholdPercentage) {
                revert QuorumBelowThreshold(
                    uint8(task.quorumNumbers[i]),
                    totals.signedStakeForQuorum[i],
                    totals.totalStakeForQuorum[i],
                    task.quorumThresholdPercentage
                );
            }
        }

        uint256 expected = task.numberToBeSquared * task.numberToBeSquared;
        if (taskResponse.numberSquared != expected) revert WrongAnswer(index, expected, taskResponse.numberSquared);

        TaskResponseMetadata memory metadata = TaskResponseMetadata(uint32(block.number), hashOfNonSigners);
        allTaskResponses[index] = keccak256(abi.encode(taskResponse, metadata));
        emit TaskResponded(taskResponse, metadata);
    }
}
