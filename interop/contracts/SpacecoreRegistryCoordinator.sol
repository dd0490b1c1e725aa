// SPDX-License-Identifier: Apache-2.0
//
// Spacecore's own test contracts (not EigenLayer's): the smallest registry coordinator that
// EigenLayer's published BLSApkRegistry, StakeRegistry, IndexRegistry, OperatorStateRetriever,
// AVSDirectory and BLSSignatureChecker (through MockAvsServiceManager) need; a minimal proxy to
// deploy EigenLayer's core contracts behind, as EigenLayer deploys them; and a minimal strategy
// for StrategyManager. EigenLayer publishes the bytecode of those contracts, but not of its
// RegistryCoordinator, of a proxy, or of StrategyBase. The coordinator only does the
// bookkeeping (quorums, each operator's quorum bitmap history, the registration message) and
// calls the registries and the service manager, which keep the aggregate keys, the stake history
// and the operator indices and check the operator's AVS registration signature. See
// docs/chain.md.
pragma solidity ^0.8.27;

// Its structs, errors, events and external functions: ISpacecoreRegistryCoordinator; the BN254
// points: G1Point and G2Point.
import "./SpacecoreInterfaces.sol";

// The registries' functions this coordinator calls (their ABI as EigenLayer publishes it).
interface IBLSApkRegistryCalls {
    function registerBLSPublicKey(
        address operator,
        ISpacecoreRegistryCoordinator.PubkeyRegistrationParams calldata params,
        G1Point calldata messageHash
    ) external returns (bytes32);
    function registerOperator(address operator, bytes calldata quorumNumbers) external;
    function initializeQuorum(uint8 quorumNumber) external;
}

interface IStakeRegistryCalls {
    function registerOperator(address operator, bytes32 operatorId, bytes calldata quorumNumbers)
        external
        returns (uint96[] memory, uint96[] memory);
    function initializeDelegatedStakeQuorum(
        uint8 quorumNumber,
        uint96 minimumStake,
        ISpacecoreRegistryCoordinator.StrategyParams[] calldata params
    ) external;
}

interface IIndexRegistryCalls {
    function registerOperator(bytes32 operatorId, bytes calldata quorumNumbers) external returns (uint32[] memory);
    function initializeQuorum(uint8 quorumNumber) external;
}

// EigenLayer's ServiceManagerBase: forwards the registration to its AVSDirectory, which checks
// that the operator is registered with the DelegationManager and checks its signature.
interface IServiceManagerCalls {
    function registerOperatorToAVS(
        address operator,
        ISpacecoreRegistryCoordinator.SignatureWithSaltAndExpiry calldata operatorSignature
    ) external;
}

contract SpacecoreRegistryCoordinator is ISpacecoreRegistryCoordinator {
    // BN254's base field modulus.
    uint256 internal constant P = 0x30644e72e131a029b85045b68181585d97816a916871ca8d3c208c16d87cfd47;
    // The tag of the message an operator signs to register its BN254 key.
    bytes32 public constant PUBKEY_REGISTRATION_TAG = keccak256("SpacecoreRegistryCoordinator.PubkeyRegistration(address operator)");

    struct QuorumBitmapUpdate {
        uint32 updateBlockNumber;
        uint32 nextUpdateBlockNumber;
        uint192 quorumBitmap;
    }

    address public immutable owner;
    address public blsApkRegistry;
    address public stakeRegistry;
    address public indexRegistry;
    address public serviceManager;
    uint8 public quorumCount;

    mapping(address => bytes32) internal operatorIds;
    mapping(bytes32 => address) internal operators;
    mapping(bytes32 => QuorumBitmapUpdate[]) internal bitmapHistory;

    constructor() {
        owner = msg.sender;
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner();
        _;
    }

    function setRegistries(address blsApk, address stake, address index) external onlyOwner {
        if (blsApkRegistry != address(0)) revert RegistriesAlreadySet();
        if (blsApk == address(0) || stake == address(0) || index == address(0)) revert RegistriesNotSet();
        blsApkRegistry = blsApk;
        stakeRegistry = stake;
        indexRegistry = index;
    }

    function setServiceManager(address manager) external onlyOwner {
        if (serviceManager != address(0)) revert ServiceManagerAlreadySet();
        if (manager == address(0)) revert ServiceManagerNotSet();
        serviceManager = manager;
    }

    function createQuorum(uint96 minimumStake, StrategyParams[] calldata params) external onlyOwner returns (uint8) {
        if (blsApkRegistry == address(0)) revert RegistriesNotSet();
        if (quorumCount >= 192) revert TooManyQuorums();
        uint8 quorum = quorumCount;
        quorumCount = quorum + 1;
        IStakeRegistryCalls(stakeRegistry).initializeDelegatedStakeQuorum(quorum, minimumStake, params);
        IIndexRegistryCalls(indexRegistry).initializeQuorum(quorum);
        IBLSApkRegistryCalls(blsApkRegistry).initializeQuorum(quorum);
        return quorum;
    }

    function pubkeyRegistrationDigest(address operator) public view returns (bytes32) {
        return keccak256(abi.encode(PUBKEY_REGISTRATION_TAG, block.chainid, address(this), operator));
    }

    function pubkeyRegistrationMessageHash(address operator) public view returns (G1Point memory) {
        return hashToG1(pubkeyRegistrationDigest(operator));
    }

    function registerOperator(
        bytes calldata quorumNumbers,
        PubkeyRegistrationParams calldata params,
        SignatureWithSaltAndExpiry calldata operatorSignature
    ) external returns (bytes32 operatorId) {
        if (blsApkRegistry == address(0)) revert RegistriesNotSet();
        if (serviceManager == address(0)) revert ServiceManagerNotSet();
        uint192 bitmap = _bitmap(quorumNumbers);
        if (operatorIds[msg.sender] != bytes32(0)) revert AlreadyRegistered();
        // As EigenLayer's coordinator: the BN254 key first, then the AVSDirectory registration.
        operatorId = IBLSApkRegistryCalls(blsApkRegistry).registerBLSPublicKey(
            msg.sender, params, pubkeyRegistrationMessageHash(msg.sender)
        );
        IServiceManagerCalls(serviceManager).registerOperatorToAVS(msg.sender, operatorSignature);
        operatorIds[msg.sender] = operatorId;
        operators[operatorId] = msg.sender;
        bitmapHistory[operatorId].push(QuorumBitmapUpdate(uint32(block.number), 0, bitmap));
        IBLSApkRegistryCalls(blsApkRegistry).registerOperator(msg.sender, quorumNumbers);
        IStakeRegistryCalls(stakeRegistry).registerOperator(msg.sender, operatorId, quorumNumbers);
        IIndexRegistryCalls(indexRegistry).registerOperator(operatorId, quorumNumbers);
        emit OperatorRegistered(msg.sender, operatorId, bitmap);
    }

    // ---- what the registries, the checker and OperatorStateRetriever read ----

    function getOperatorId(address operator) external view returns (bytes32) {
        return operatorIds[operator];
    }

    function getOperatorFromId(bytes32 operatorId) external view returns (address) {
        return operators[operatorId];
    }

    function getCurrentQuorumBitmap(bytes32 operatorId) external view returns (uint192) {
        QuorumBitmapUpdate[] storage history = bitmapHistory[operatorId];
        return history.length == 0 ? 0 : history[history.length - 1].quorumBitmap;
    }

    function getQuorumBitmapHistoryLength(bytes32 operatorId) external view returns (uint256) {
        return bitmapHistory[operatorId].length;
    }

    function getQuorumBitmapIndicesAtBlockNumber(uint32 blockNumber, bytes32[] calldata ids)
        external
        view
        returns (uint32[] memory indices)
    {
        indices = new uint32[](ids.length);
        for (uint256 i = 0; i < ids.length; i++) {
            QuorumBitmapUpdate[] storage history = bitmapHistory[ids[i]];
            uint256 j = history.length;
            while (j > 0 && history[j - 1].updateBlockNumber > blockNumber) {
                j--;
            }
            if (j == 0) revert NotRegisteredAtBlock(ids[i], blockNumber);
            indices[i] = uint32(j - 1);
        }
    }

    function getQuorumBitmapAtBlockNumberByIndex(bytes32 operatorId, uint32 blockNumber, uint256 index)
        external
        view
        returns (uint192)
    {
        QuorumBitmapUpdate[] storage history = bitmapHistory[operatorId];
        if (index >= history.length) revert BitmapIndexNotForBlock(operatorId, blockNumber, index);
        QuorumBitmapUpdate storage update = history[index];
        if (
            update.updateBlockNumber > blockNumber
                || (update.nextUpdateBlockNumber != 0 && update.nextUpdateBlockNumber <= blockNumber)
        ) revert BitmapIndexNotForBlock(operatorId, blockNumber, index);
        return update.quorumBitmap;
    }

    // ---- internals ----

    function _bitmap(bytes calldata quorumNumbers) internal view returns (uint192 bitmap) {
        if (quorumNumbers.length == 0) revert BadQuorumNumbers();
        for (uint256 i = 0; i < quorumNumbers.length; i++) {
            uint8 q = uint8(quorumNumbers[i]);
            if (q >= quorumCount || (i > 0 && q <= uint8(quorumNumbers[i - 1]))) revert BadQuorumNumbers();
            bitmap |= uint192(1) << q;
        }
    }

    function hashToG1(bytes32 digest) public view returns (G1Point memory) {
        uint256 x = uint256(digest) % P;
        while (true) {
            uint256 beta = addmod(mulmod(mulmod(x, x, P), x, P), 3, P);
            uint256 y = _modExp(beta, (P + 1) / 4);
            if (mulmod(y, y, P) == beta) return G1Point(x, y);
            x = addmod(x, 1, P);
        }
        revert(); // unreachable
    }

    function _modExp(uint256 base, uint256 exponent) internal view returns (uint256) {
        (bool ok, bytes memory out) = address(5).staticcall(abi.encode(32, 32, 32, base, exponent, P));
        if (!ok || out.length != 32) revert ModExpFailed();
        return abi.decode(out, (uint256));
    }
}

/// A minimal upgradeable proxy: the implementation's code runs on the proxy's storage, so
/// EigenLayer's core contracts (whose constructors disable their initialisers) are deployed
/// behind it and initialised once, as EigenLayer's deployment does. The implementation is kept
/// in the EIP-1967 slot; only the deployer (the admin) may set it. Every other call is
/// delegated to the implementation.
contract SpacecoreProxy {
    bytes32 internal constant IMPLEMENTATION_SLOT = bytes32(uint256(keccak256("eip1967.proxy.implementation")) - 1);
    address internal immutable admin;

    error NotAdmin();
    error NoImplementation();

    constructor() {
        admin = msg.sender;
    }

    /// By the admin: points the proxy at `implementation` and, if `data` is not empty, calls
    /// it (the initialiser) in the proxy's storage; a revert is passed on.
    function spacecoreProxyUpgradeToAndCall(address implementation, bytes calldata data) external {
        if (msg.sender != admin) revert NotAdmin();
        if (implementation.code.length == 0) revert NoImplementation();
        bytes32 slot = IMPLEMENTATION_SLOT;
        assembly {
            sstore(slot, implementation)
        }
        if (data.length > 0) {
            (bool ok, bytes memory reason) = implementation.delegatecall(data);
            if (!ok) {
                assembly {
                    revert(add(reason, 32), mload(reason))
                }
            }
        }
    }

    fallback() external payable {
        bytes32 slot = IMPLEMENTATION_SLOT;
        address implementation;
        assembly {
            implementation := sload(slot)
        }
        if (implementation == address(0)) revert NoImplementation();
        assembly {
            calldatacopy(0, 0, calldatasize())
            let ok := delegatecall(gas(), implementation, 0, calldatasize(), 0, 0)
            returndatacopy(0, 0, returndatasize())
            switch ok
            case 0 { revert(0, returndatasize()) }
            default { return(0, returndatasize()) }
        }
    }
}

/// A strategy as EigenLayer's StrategyManager calls it on deposit: it holds one ERC-20 token
/// (which the StrategyManager moves to it before calling `deposit`), and one token deposited is
/// one share. Deposits only: there is no withdrawal.
contract SpacecoreStrategy {
    address public immutable strategyManager;
    address public immutable underlyingToken;
    uint256 public totalShares;

    error NotStrategyManager();
    error WrongToken();
    error ZeroDeposit();

    constructor(address manager, address token) {
        strategyManager = manager;
        underlyingToken = token;
    }

    function deposit(address token, uint256 amount) external returns (uint256) {
        if (msg.sender != strategyManager) revert NotStrategyManager();
        if (token != underlyingToken) revert WrongToken();
        if (amount == 0) revert ZeroDeposit();
        totalShares += amount;
        return amount;
    }
}
