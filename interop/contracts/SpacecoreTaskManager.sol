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

// Its structs, errors, events and external functions: ISpacecoreTaskManager.
import "./SpacecoreInterfaces.sol";

contract SpacecoreTaskManager is ISpacecoreTaskManager {
    uint256 internal constant THRESHOLD_DENOMINATOR = 100;

    address public immutable serviceManager;
    address public immutable taskGenerator;
    address public immutable aggregator;
    uint32 public immutable responseWindowBlocks;

    uint32 public taskNumber;
    mapping(uint32 => bytes32) public allTaskHashes;
    mapping(uint32 => bytes32) public allTaskResponses;

    constructor(IBLSSignatureCheckerCalls checker, address generator, address aggregator_, uint32 windowBlocks) {
        serviceManager = address(checker);
        taskGenerator = generator;
        aggregator = aggregator_;
        responseWindowBlocks = windowBlocks;
    }

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

    function respondToTask(
        Task calldata task,
        TaskResponse calldata taskResponse,
        NonSignerStakesAndSignature memory nonSignerStakesAndSignature
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
        (QuorumStakeTotals memory totals, bytes32 hashOfNonSigners) = IBLSSignatureCheckerCalls(serviceManager)
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
