// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

/// @title RewardPool: native-currency rewards per epoch, reported by the oracle as a Merkle root, claimed by nodes.
/// @notice Epoch n spans [genesis + n * epochDuration, genesis + (n + 1) * epochDuration). Anyone funds an epoch's
/// budget. Once the epoch has ended the oracle reports it once: the root of a tree whose leaves are
/// keccak256(bytes.concat(keccak256(abi.encode(account, epoch, amount, contribution)))) (OpenZeppelin's standard
/// double hash, sorted-pair tree) and the totals. The budget left over (rounding dust, or work nobody did) rolls
/// into the epoch current at report time. Each account claims its leaf once; claims never exceed the reported total.
/// @dev A root makes reporting 1,000 nodes one storage write instead of 1,000; each claim pays for its own proof.
contract RewardPool is AccessControl, Pausable, ReentrancyGuardTransient {
    bytes32 public constant ADMIN_ROLE = keccak256("ADMIN_ROLE");
    bytes32 public constant ORACLE_ROLE = keccak256("ORACLE_ROLE");

    /// Packed in three slots, so a report writes two fresh ones (total and root) and touches the budget's.
    struct Epoch {
        uint128 budget;
        uint120 totalContribution;
        bool reported;
        uint128 totalRewards;
        uint128 claimed;
        bytes32 merkleRoot;
    }

    /// One slot per (epoch, account): the contribution proven at claim, and whether it was claimed.
    struct Claim {
        uint248 contribution;
        bool claimed;
    }

    uint256 public immutable genesis;
    uint256 public immutable epochDuration;

    mapping(uint256 => Epoch) private _epochs;
    mapping(uint256 => mapping(address => Claim)) private _claims;

    event EpochFunded(uint256 indexed epoch, address indexed funder, uint256 amount, uint256 budget);
    event EpochReported(
        uint256 indexed epoch,
        bytes32 merkleRoot,
        uint256 totalRewards,
        uint256 totalContribution,
        uint256 rolledOver,
        uint256 rolledOverTo
    );
    event RewardClaimed(uint256 indexed epoch, address indexed account, uint256 amount, uint256 contribution);

    error ZeroEpochDuration();
    error ZeroFunding();
    error EpochAlreadyReported(uint256 epoch);
    error EpochNotEnded(uint256 epoch, uint256 currentEpoch);
    error RewardsExceedBudget(uint256 epoch, uint256 totalRewards, uint256 budget);
    error EpochNotReported(uint256 epoch);
    error AlreadyClaimed(uint256 epoch, address account);
    error InvalidProof(uint256 epoch, address account);
    error ClaimsExceedRewards(uint256 epoch, uint256 claimed, uint256 totalRewards);
    error ContributionTooLarge(uint256 contribution);

    /// The admin holds DEFAULT_ADMIN_ROLE (grants and revokes roles, e.g. rotates the oracle) and ADMIN_ROLE (pause).
    constructor(address admin, address oracle, uint256 epochDuration_) {
        if (epochDuration_ == 0) revert ZeroEpochDuration();
        genesis = block.timestamp;
        epochDuration = epochDuration_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(ADMIN_ROLE, admin);
        _grantRole(ORACLE_ROLE, oracle);
    }

    function getCurrentEpoch() public view returns (uint256) {
        return (block.timestamp - genesis) / epochDuration;
    }

    function getEpoch(uint256 epoch) external view returns (Epoch memory) {
        return _epochs[epoch];
    }

    /// Adds msg.value to an epoch's budget (any epoch not yet reported, past or future).
    function fundEpoch(uint256 epoch) external payable {
        if (msg.value == 0) revert ZeroFunding();
        Epoch storage record = _epochs[epoch];
        if (record.reported) revert EpochAlreadyReported(epoch);
        record.budget = SafeCast.toUint128(record.budget + msg.value);
        emit EpochFunded(epoch, msg.sender, msg.value, record.budget);
    }

    function reportEpoch(uint256 epoch, bytes32 merkleRoot, uint256 totalRewards, uint256 totalContribution)
        external
        onlyRole(ORACLE_ROLE)
    {
        uint256 current = getCurrentEpoch();
        if (epoch >= current) revert EpochNotEnded(epoch, current);
        Epoch storage record = _epochs[epoch];
        if (record.reported) revert EpochAlreadyReported(epoch);
        if (totalRewards > record.budget) revert RewardsExceedBudget(epoch, totalRewards, record.budget);
        record.merkleRoot = merkleRoot;
        record.totalRewards = uint128(totalRewards); // ≤ budget, a uint128
        record.totalContribution = SafeCast.toUint120(totalContribution);
        record.reported = true;
        uint256 rest = record.budget - totalRewards;
        // the current epoch is never reported yet
        if (rest > 0) _epochs[current].budget = SafeCast.toUint128(_epochs[current].budget + rest);
        emit EpochReported(epoch, merkleRoot, totalRewards, totalContribution, rest, current);
    }

    function claimReward(uint256 epoch, uint256 amount, uint256 contribution, bytes32[] calldata proof)
        external
        nonReentrant
        whenNotPaused
    {
        Epoch storage record = _epochs[epoch];
        if (!record.reported) revert EpochNotReported(epoch);
        Claim storage claim = _claims[epoch][msg.sender];
        if (claim.claimed) revert AlreadyClaimed(epoch, msg.sender);
        if (!MerkleProof.verifyCalldata(proof, record.merkleRoot, _leaf(msg.sender, epoch, amount, contribution))) {
            revert InvalidProof(epoch, msg.sender);
        }
        uint256 claimed = uint256(record.claimed) + amount;
        if (claimed > record.totalRewards) revert ClaimsExceedRewards(epoch, claimed, record.totalRewards);
        if (contribution > type(uint248).max) revert ContributionTooLarge(contribution);
        record.claimed = uint128(claimed); // ≤ totalRewards, a uint128
        claim.contribution = uint248(contribution);
        claim.claimed = true;
        emit RewardClaimed(epoch, msg.sender, amount, contribution);
        Address.sendValue(payable(msg.sender), amount);
    }

    /// `amount` if that leaf is in the epoch's reported tree and still unclaimed, else 0.
    function getPendingReward(
        address account,
        uint256 epoch,
        uint256 amount,
        uint256 contribution,
        bytes32[] calldata proof
    ) external view returns (uint256) {
        Epoch storage record = _epochs[epoch];
        if (!record.reported || _claims[epoch][account].claimed) return 0;
        if (uint256(record.claimed) + amount > record.totalRewards) return 0;
        if (!MerkleProof.verifyCalldata(proof, record.merkleRoot, _leaf(account, epoch, amount, contribution))) return 0;
        return amount;
    }

    /// The contribution `account` proved when it claimed `epoch` (0 before).
    function getContribution(address account, uint256 epoch) external view returns (uint256) {
        return _claims[epoch][account].contribution;
    }

    function hasClaimed(address account, uint256 epoch) external view returns (bool) {
        return _claims[epoch][account].claimed;
    }

    function pause() external onlyRole(ADMIN_ROLE) {
        _pause();
    }

    function unpause() external onlyRole(ADMIN_ROLE) {
        _unpause();
    }

    function _leaf(address account, uint256 epoch, uint256 amount, uint256 contribution) private pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(account, epoch, amount, contribution))));
    }
}
