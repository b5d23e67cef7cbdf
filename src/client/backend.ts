/**
 * The swarm backend of `corolla generate --swarm` and `corolla chat --swarm`: a RemoteModel behind the CLI's
 * InferenceBackend interface (tokenizer + sessions of ids → logits).
 */
import type { InferenceBackend } from '../cli/generate.js';
import { RemoteModel, type RemoteModelOptions } from './remote-model.js';

export interface SwarmBackendOptions extends Omit<RemoteModelOptions, 'model' | 'bootstrap' | 'threads' | 'tokenizerPath'> {
  readonly model: string;
  readonly tokenizerPath?: string;
  readonly bootstrap: string[];
  readonly threads?: number;
}

export type SwarmBackend = InferenceBackend & { readonly model: RemoteModel };

/** Joins the swarm through `bootstrap`, waits for servers covering every block, and returns the backend. */
export async function openSwarmBackend(options: SwarmBackendOptions): Promise<SwarmBackend> {
  const model = await RemoteModel.open({ ...options, bootstrap: options.bootstrap.map((address) => address.trim()).filter(Boolean) });
  return {
    model,
    tokenizer: model.tokenizer,
    openSession: (maxLength) => model.openSession(maxLength),
    close: () => model.close(),
  };
}

export { RemoteModel };
