/** Errors of the chain layer: keys, signatures, contracts. */
import { CorollaError } from '../errors.js';

/** A private key, keystore or password that cannot be used (the key itself is never in the message). */
export class InvalidKeyError extends CorollaError {
  override readonly name = 'InvalidKeyError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('INVALID_KEY', message, options);
  }
}

/** A signature that does not verify, or a signer that is not who it must be. */
export class InvalidSignatureError extends CorollaError {
  override readonly name = 'InvalidSignatureError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('INVALID_SIGNATURE', message, options);
  }
}

/** A contract call or transaction failed (the RPC node's reason is in the cause). */
export class ChainError extends CorollaError {
  override readonly name = 'ChainError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('CHAIN_FAILED', message, options);
  }
}

/** An address the AgentRegistry does not know. */
export class NotRegisteredError extends CorollaError {
  override readonly name = 'NotRegisteredError';
  constructor(readonly address: string, registry: string) {
    super('NOT_REGISTERED', `${address} is not registered in the AgentRegistry at ${registry} (register it with --register)`);
  }
}

/** An address the AgentRegistry knows but holds inactive (deactivated or slashed). */
export class AgentInactiveError extends CorollaError {
  override readonly name = 'AgentInactiveError';
  constructor(readonly address: string, registry: string) {
    super('AGENT_INACTIVE', `${address} is registered but not active in the AgentRegistry at ${registry} (activate it, or ask its admin)`);
  }
}

/** The oracle's rewards API could not be reached or answered with something unusable. */
export class OracleUnavailableError extends CorollaError {
  override readonly name = 'OracleUnavailableError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('ORACLE_UNAVAILABLE', message, options);
  }
}

/** An oracle's proof that does not match the epoch's Merkle root on chain (a claim with it would only revert). */
export class InvalidRewardProofError extends CorollaError {
  override readonly name = 'InvalidRewardProofError';
  constructor(readonly epoch: bigint, account: string, pool: string) {
    super('INVALID_REWARD_PROOF', `the oracle's proof for ${account} in epoch ${epoch} does not match the Merkle root of the RewardPool at ${pool}: not claimed`);
  }
}
