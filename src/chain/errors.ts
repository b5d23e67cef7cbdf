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
