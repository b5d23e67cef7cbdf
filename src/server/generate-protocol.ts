/**
 * Serves whole-model generation (/corolla/generate/1.0.0; messages in wire/generate.ts) on a server that holds every
 * block plus the embeddings and LM head (`corolla serve --blocks all`, LlamaNet style). The generation runs the one loop of
 * inference/generate.ts over a session of the block service, so its decode steps go through the same batch
 * scheduler as block-protocol sessions and concurrent generations are batched too.
 */
import type { Stream } from '@libp2p/interface';
import { lpStream } from '@libp2p/utils';
import { CorollaError, isPeerSafe, toPeerError } from '../errors.js';
import type { Embeddings, LmHead } from '../engine/types.js';
import { generate } from '../inference/generate.js';
import type { InferenceSession } from '../inference/language-model.js';
import { createSampler } from '../inference/sampling/index.js';
import { GenerateRequestTooLargeError, InvalidGenerateRequestError } from '../wire/errors.js';
import {
  GENERATE_PROTOCOL,
  MAX_GENERATE_REQUEST_BYTES,
  validateGenerateRequest,
  type GenerateFinishReason,
  type GenerateRequest,
  type GenerateServerMessage,
} from '../wire/generate.js';
import type { BlockService, LocalSession } from './block-service.js';

export { GENERATE_PROTOCOL };

export interface GenerateContext {
  readonly service: BlockService;
  readonly embeddings: Embeddings;
  readonly lmHead: LmHead;
  readonly vocabSize: number;
  /** Default stop tokens (the model's EOS ids). */
  readonly eos: readonly number[];
  /** Longest prompt + maxTokens accepted. */
  readonly maxLength: number;
  /** How long to wait for the request (default 10 s). */
  readonly requestTimeoutMs?: number;
  readonly log?: (line: string) => void;
}

const WRITE_TIMEOUT_MS = 60_000;
const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });
const encode = (message: GenerateServerMessage): Uint8Array => encoder.encode(JSON.stringify(message));

/** ids → logits over a block-service session: embed here, every block, LM head here. */
function wholeModelSession(session: LocalSession, embeddings: Embeddings, lmHead: LmHead): InferenceSession {
  return {
    next: async (ids) => lmHead.logits(await session.step(embeddings.embed(ids))),
    close: async () => session.close(),
  };
}

/** Serves one generate stream. Never throws. */
export async function serveGenerate(stream: Stream, ctx: GenerateContext): Promise<void> {
  const lp = lpStream(stream, { maxDataLength: MAX_GENERATE_REQUEST_BYTES, maxBufferSize: MAX_GENERATE_REQUEST_BYTES + 64 });
  const cancelled = new AbortController();
  const onClose = () => cancelled.abort();
  stream.addEventListener('close', onClose);
  let session: LocalSession | undefined;
  // a client that stops reading cannot hold the session forever
  const send = (message: GenerateServerMessage) => lp.write(encode(message), { signal: AbortSignal.timeout(WRITE_TIMEOUT_MS) });
  try {
    let request: GenerateRequest;
    try {
      const raw = await lp.read({ signal: AbortSignal.timeout(Math.max(1, Math.round(ctx.requestTimeoutMs ?? 10_000))) });
      let parsed: unknown;
      try {
        parsed = JSON.parse(decoder.decode(raw.subarray()));
      } catch {
        throw new InvalidGenerateRequestError('the request is not UTF-8 JSON');
      }
      request = validateGenerateRequest(parsed, { vocabSize: ctx.vocabSize, maxLength: ctx.maxLength });
      createSampler({ seed: 0, ...request.sampling }); // checks every sampling value (InvalidSamplingOptionsError)
    } catch (error) {
      const name = (error as { name?: string })?.name;
      const failure =
        error instanceof CorollaError
          ? error
          : name === 'InvalidDataLengthError'
            ? new GenerateRequestTooLargeError(`the request exceeds ${MAX_GENERATE_REQUEST_BYTES} bytes`)
            : undefined;
      if (failure) await send({ error: toPeerError(failure) }).catch(() => {});
      return;
    }

    let finishReason: GenerateFinishReason = 'length';
    try {
      if (request.maxTokens > 0) {
        session = ctx.service.openLocal(request.prompt.length + request.maxTokens);
        const tokens = generate(wholeModelSession(session, ctx.embeddings, ctx.lmHead), undefined, request.prompt, {
          ...request.sampling,
          maxTokens: request.maxTokens,
          stopTokens: request.stopTokens ?? ctx.eos,
          signal: cancelled.signal,
        });
        for await (const { token } of tokens) await send({ token });
        if (tokens.stats.finishReason === 'abort') return;
        finishReason = tokens.stats.finishReason;
      }
      if (cancelled.signal.aborted) return;
      await send({ done: true, finishReason });
    } catch (error) {
      if (cancelled.signal.aborted) return;
      // a peer learns only INTERNAL "internal error" for these (kernel failures, unexpected exceptions)
      if (!isPeerSafe(error)) ctx.log?.(`generation failed: ${(error as Error)?.stack ?? String(error)}`);
      await send({ error: toPeerError(error) }).catch(() => {});
    }
  } finally {
    session?.close();
    stream.removeEventListener('close', onClose);
    if (stream.status === 'open') await stream.close({ signal: AbortSignal.timeout(2000) }).catch(() => stream.abort(new Error('close failed')));
  }
}
