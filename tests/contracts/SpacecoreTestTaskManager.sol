// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// This project's own test contract, not EigenLayer's: it only emits the event of the
/// incredible-squaring TaskManager that a spacecore reads tasks from, with the same signature
/// (`NewTaskCreated(uint32,(uint256,uint32,bytes,uint32))`), so that `tests/chain.rs` can create
/// tasks on a local Anvil chain. It checks nothing and keeps no task but the count.
contract SpacecoreTestTaskManager {
    struct Task {
        uint256 numberToBeSquared;
        uint32 taskCreatedBlock;
        bytes quorumNumbers;
        uint32 quorumThresholdPercentage;
    }

    event NewTaskCreated(uint32 indexed taskIndex, Task task);

    /// The index the next task gets.
    uint32 public latestTaskNum;

    /// Creates the task of squaring `numberToBeSquared` for quorum 0, at 100 %.
    function createNewTask(uint256 numberToBeSquared) external {
        Task memory task = Task(numberToBeSquared, uint32(block.number), hex"00", 100);
        emit NewTaskCreated(latestTaskNum, task);
        latestTaskNum = latestTaskNum + 1;
    }

    /// Emits an event of another signature from the same contract, which a spacecore must ignore.
    event Unrelated(uint32 indexed taskIndex, uint256 value);

    function emitUnrelated(uint32 taskIndex) external {
        emit Unrelated(taskIndex, 7);
    }
}
