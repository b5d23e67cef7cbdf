/**
 * Signs every step reply (wire/attestation.ts): one history chain per served session, kept from the inputs exactly
 * as this server decoded them, and one Ed25519 signature per step with the node's peer key.
 */
import type { PrivateKey } from '@libp2p/interface';
import { HistoryChain, signAttestation, tensorDigest } from '../wire/attestation.js';
import type { WireDtype } from '../wire/tensor-codec.js';
import type { BlockRange } from '../util/blocks.js';

export interface AttestedStep {
  readonly sessionId: string;
  readonly position: number;
  readonly tokens: number;
}

export class StepAttester {
  /** Keyed by the served session object, so a closed session's chain goes with it. */
  private readonly chains = new WeakMap<object, HistoryChain>();

  constructor(
    private readonly key: PrivateKey,
    private readonly range: BlockRange,
  ) {}

  /** The attestation of one step: `input` as decoded here, `output` as the client will decode it. */
  attest(session: object, step: AttestedStep, input: Float32Array, output: Float32Array, dtype: WireDtype): Promise<string> {
    let chain = this.chains.get(session);
    if (!chain) this.chains.set(session, (chain = new HistoryChain()));
    const history = chain.extend(step.position, step.tokens, tensorDigest(input));
    return signAttestation(this.key, { sessionId: step.sessionId, position: step.position, tokens: step.tokens, dtype, spanStart: this.range.start, spanEnd: this.range.end, history, output: tensorDigest(output) });
  }
}
