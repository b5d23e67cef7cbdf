// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title AgentRegistry: who may be paid for serving Corolla blocks.
/// @notice An agent (a server's Ethereum address) registers itself with a name and metadata, and stores its libp2p
/// peer id, so peers and the oracle can match an address to a node. The agent or an admin switches it on and off; an
/// admin or a verifier slashes it (marks it as caught cheating: inactive, and only an admin can reinstate it).
contract AgentRegistry is AccessControl {
    bytes32 public constant ADMIN_ROLE = keccak256("ADMIN_ROLE");
    bytes32 public constant VERIFIER_ROLE = keccak256("VERIFIER_ROLE");

    struct Agent {
        string name;
        string metadata;
        /// The libp2p peer id the agent serves under.
        string nodeId;
        uint64 registeredAt;
        bool active;
        bool slashed;
    }

    mapping(address => Agent) private _agents;

    event AgentRegistered(address indexed agent, string name, string metadata);
    event NodeIdSet(address indexed agent, string nodeId);
    event AgentActivated(address indexed agent, address indexed by);
    event AgentDeactivated(address indexed agent, address indexed by);
    event AgentSlashed(address indexed agent, address indexed by, string reason);

    error AlreadyRegistered(address agent);
    error NotRegistered(address agent);
    error EmptyName();
    /// Only the agent itself or an admin may switch it on or off.
    error NotAgentOrAdmin(address caller, address agent);
    /// Only an admin may reactivate a slashed agent.
    error AgentIsSlashed(address agent);
    error NotAdminOrVerifier(address caller);

    /// The admin holds DEFAULT_ADMIN_ROLE (grants VERIFIER_ROLE and ADMIN_ROLE) and ADMIN_ROLE.
    constructor(address admin) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(ADMIN_ROLE, admin);
    }

    modifier registered(address agent) {
        if (_agents[agent].registeredAt == 0) revert NotRegistered(agent);
        _;
    }

    /// Registers msg.sender, active from now.
    function register(string calldata name, string calldata metadata) external {
        if (_agents[msg.sender].registeredAt != 0) revert AlreadyRegistered(msg.sender);
        if (bytes(name).length == 0) revert EmptyName();
        Agent storage agent = _agents[msg.sender];
        agent.name = name;
        agent.metadata = metadata;
        agent.registeredAt = uint64(block.timestamp);
        agent.active = true;
        emit AgentRegistered(msg.sender, name, metadata);
        emit AgentActivated(msg.sender, msg.sender);
    }

    /// Stores msg.sender's libp2p peer id (again after a key rotation of the node).
    function setNodeId(string calldata nodeId) external registered(msg.sender) {
        _agents[msg.sender].nodeId = nodeId;
        emit NodeIdSet(msg.sender, nodeId);
    }

    function isRegistered(address agent) external view returns (bool) {
        return _agents[agent].registeredAt != 0;
    }

    function isActive(address agent) external view returns (bool) {
        return _agents[agent].active;
    }

    function getAgent(address agent) external view registered(agent) returns (Agent memory) {
        return _agents[agent];
    }

    /// By the agent or an admin; an admin's activation also lifts a slash (reinstatement).
    function activate(address agent) external registered(agent) {
        bool admin = hasRole(ADMIN_ROLE, msg.sender);
        if (msg.sender != agent && !admin) revert NotAgentOrAdmin(msg.sender, agent);
        Agent storage record = _agents[agent];
        if (record.slashed && !admin) revert AgentIsSlashed(agent);
        record.slashed = false;
        record.active = true;
        emit AgentActivated(agent, msg.sender);
    }

    function deactivate(address agent) external registered(agent) {
        if (msg.sender != agent && !hasRole(ADMIN_ROLE, msg.sender)) revert NotAgentOrAdmin(msg.sender, agent);
        _agents[agent].active = false;
        emit AgentDeactivated(agent, msg.sender);
    }

    /// Marks an agent caught cheating: inactive until an admin reinstates it. (No stake is held, so nothing is seized.)
    function slash(address agent, string calldata reason) external registered(agent) {
        if (!hasRole(ADMIN_ROLE, msg.sender) && !hasRole(VERIFIER_ROLE, msg.sender)) revert NotAdminOrVerifier(msg.sender);
        Agent storage record = _agents[agent];
        record.slashed = true;
        record.active = false;
        emit AgentSlashed(agent, msg.sender, reason);
    }
}
