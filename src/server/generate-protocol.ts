/**
 * Whole-model generation (/corolla/generate/1.0.0), served by a server that holds every block plus the head and
 * tail (`corolla serve --blocks all`, LlamaNet style).
 *
 * One stream = one generation. Every message is one length-prefixed (varint, as lpStream writes) UTF-8 JSON object.
 *   client → server, once:  {prompt: number[], maxTokens: number, sampling?: SamplingOptions, stopTokens?: number[]}
 *   server → client:        {token: number}   one per generated token, in order
 *                           then exactly one of
 *                           {done: true, finishReason: "stop" | "length"}
 *                           {error: {code: string, message: string}}
 * `prompt` holds 1..maxLength token ids; `maxTokens` ≥ 0. A sampled stop token (default: the model's EOS ids; `[]`
 * disables) ends the generation with "stop" and is not sent. The client may reset (abort) the stream at any time to
 * cancel; the server then stops and frees the session. The client should not half-close before the final message. The server's decode steps go through the same batch
 * scheduler as block-protocol sessions, so concurrent generations are batched too.
 */
import type { Libp2p, PeerId, Stream } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { lpStream } from '@libp2p/utils';
import type { Multiaddr } from '@multiformats/multiaddr';
import { CorollaError, toPeerError } from '../errors.js';
import { createSampler, type SamplingOptions } from '../engine/sampling.js';
import type { ModelHead, ModelTail } from '../engine/types.js';
import { GENERATE_PROTOCOL } from '../wire/protocols.js';
import type { BlockService } from './block-service.js';
import { InvalidGenerateRequestError, RemoteGenerateError, RequestTooLargeError } from './errors.js';

export { GENERATE_PROTOCOL };
/** Largest request (a prompt of ~100k tokens). */
export const MAX_GENERATE_REQUEST_BYTES = 1024 * 1024;
/** Largest server message. */
export const MAX_GENERATE_MESSAGE_BYTES = 64 * 1024;

export interface GenerateRequest {
  readonly prompt: readonly number[];
  readonly maxTokens: number;
  readonly sampling?: SamplingOptions;
  /** Token ids that end the generation (not emitted). Default: the model's EOS ids. */
  readonly stopTokens?: readonly number[];
}

export type FinishReason = 'stop' | 'length';

export type GenerateServerMessage =
  | { token: number }
  | { done: true; finishReason: FinishReason }
  | { error: { code: string; message: string } };

export interface GenerateResult {
  readonly finishReason: FinishReason;
  readonly tokens: number;
}

const SAMPLING_KEYS: ReadonlySet<string> = new Set([
  'temperature',
  'topK',
  'topP',
  'minP',
  'repetitionPenalty',
  'penaltyLastN',
  'frequencyPenalty',
  'presencePenalty',
  'seed',
]);
const REQUEST_KEYS: ReadonlySet<string> = new Set(['prompt', 'maxTokens', 'sampling', 'stopTokens']);

const isObj = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

function tokenList(value: unknown, field: string, vocabSize: number, min: number, max: number): number[] {
  if (!Array.isArray(value)) throw new InvalidGenerateRequestError(`${field} must be an array of token ids`);
  if (value.length < min || value.length > max) throw new InvalidGenerateRequestError(`${field} must hold ${min}..${max} token ids, got ${value.length}`);
  value.forEach((id, i) => {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new InvalidGenerateRequestError(`${field}[${i}] must be a token id in 0..${vocabSize - 1}, got ${JSON.stringify(id)?.slice(0, 40)}`);
    }
  });
  return value as number[];
}

/** Validates a parsed request; throws InvalidGenerateRequestError / RequestTooLargeError / InvalidSamplingOptionsError. */
export function validateGenerateRequest(value: unknown, limits: { vocabSize: number; maxLength: number }): GenerateRequest {
  if (!isObj(value)) throw new InvalidGenerateRequestError('the request must be a JSON object');
  for (const key of Object.keys(value)) if (!REQUEST_KEYS.has(key)) throw new InvalidGenerateRequestError(`unknown field ${JSON.stringify(key.slice(0, 40))}`);
  const prompt = tokenList(value.prompt, 'prompt', limits.vocabSize, 1, Number.MAX_SAFE_INTEGER);
  const maxTokens = value.maxTokens;
  if (typeof maxTokens !== 'number' || !Number.isInteger(maxTokens) || maxTokens < 0) {
    throw new InvalidGenerateRequestError(`maxTokens must be an integer ≥ 0, got ${JSON.stringify(maxTokens)?.slice(0, 40)}`);
  }
  if (prompt.length + maxTokens > limits.maxLength) {
    throw new RequestTooLargeError(`prompt (${prompt.length}) + maxTokens (${maxTokens}) exceeds this server's limit of ${limits.maxLength} tokens`);
  }
  let sampling: SamplingOptions | undefined;
  if (value.sampling !== undefined) {
    if (!isObj(value.sampling)) throw new InvalidGenerateRequestError('sampling must be an object');
    for (const key of Object.keys(value.sampling)) {
      if (!SAMPLING_KEYS.has(key)) throw new InvalidGenerateRequestError(`unknown sampling option ${JSON.stringify(key.slice(0, 40))}`);
    }
    sampling = value.sampling as SamplingOptions;
    createSampler({ seed: 0, ...sampling }); // validates every value (InvalidSamplingOptionsError)
  }
  const stopTokens = value.stopTokens === undefined ? undefined : tokenList(value.stopTokens, 'stopTokens', limits.vocabSize, 0, 1024);
  return { prompt, maxTokens, ...(sampling ? { sampling } : {}), ...(stopTokens ? { stopTokens } : {}) };
}

export interface GenerateContext {
  readonly service: BlockService;
  readonly head: ModelHead;
  readonly tail: ModelTail;
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

/** Serves one generate stream. Never throws. */
export async function serveGenerate(stream: Stream, ctx: GenerateContext): Promise<void> {
  const lp = lpStream(stream, { maxDataLength: MAX_GENERATE_REQUEST_BYTES, maxBufferSize: MAX_GENERATE_REQUEST_BYTES + 64 });
  const cancelled = new AbortController();
  const onClose = () => cancelled.abort();
  stream.addEventListener('close', onClose);
  let session: ReturnType<BlockService['openLocal']> | undefined;
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
    } catch (error) {
      const name = (error as { name?: string })?.name;
      const failure =
        error instanceof CorollaError
          ? error
          : name === 'InvalidDataLengthError'
            ? new RequestTooLargeError(`the request exceeds ${MAX_GENERATE_REQUEST_BYTES} bytes`)
            : undefined;
      if (failure) await send({ error: toPeerError(failure) }).catch(() => {});
      return;
    }

    const sampler = createSampler(request.sampling ?? {});
    const stop = new Set(request.stopTokens ?? ctx.eos);
    const history = [...request.prompt];
    let finishReason: FinishReason = 'length';
    try {
      if (request.maxTokens > 0) {
        session = ctx.service.openLocal(request.prompt.length + request.maxTokens);
        let logits = await ctx.tail.logits(await session.step(ctx.head.embed(request.prompt)));
        for (let i = 0; i < request.maxTokens; i++) {
          if (cancelled.signal.aborted) return;
          const token = sampler.sample(logits, history);
          if (stop.has(token)) {
            finishReason = 'stop';
            break;
          }
          history.push(token);
          await send({ token });
          if (i + 1 < request.maxTokens) logits = await ctx.tail.logits(await session.step(ctx.head.embed([token])));
        }
      }
      if (cancelled.signal.aborted) return;
      await send({ done: true, finishReason });
    } catch (error) {
      if (cancelled.signal.aborted) return;
      if (!(error instanceof CorollaError)) ctx.log?.(`generation failed: ${(error as Error)?.stack ?? String(error)}`);
      await send({ error: toPeerError(error) }).catch(() => {});
    }
  } finally {
    session?.close();
    stream.removeEventListener('close', onClose);
    if (stream.status === 'open') await stream.close({ signal: AbortSignal.timeout(2000) }).catch(() => stream.abort(new Error('close failed')));
  }
}

export interface RemoteGenerateOptions {
  readonly signal?: AbortSignal;
  /** Addresses of the peer to merge into the peer store before dialing. */
  readonly addrs?: readonly Multiaddr[];
  /** Longest wait for any one message from the server (default 60 s). */
  readonly idleTimeoutMs?: number;
}

/**
 * Streams the token ids a whole-model server generates for `request`. Iterating ends after the last token (the
 * generator's return value carries the finish reason); breaking out of the loop or aborting `signal` cancels the
 * generation on the server. Throws RemoteGenerateError: the server's own code (INVALID_REQUEST, CACHE_FULL,
 * REQUEST_TOO_LARGE, INVALID_SAMPLING_OPTIONS, …), GENERATE_UNAVAILABLE when the peer cannot be reached on the
 * protocol, GENERATE_STREAM when the stream breaks, MALFORMED for a reply that does not follow the protocol.
 */
export async function* remoteGenerate(
  libp2p: Pick<Libp2p, 'dialProtocol' | 'peerStore'>,
  peerId: string | PeerId,
  request: GenerateRequest,
  options: RemoteGenerateOptions = {},
): AsyncGenerator<number, GenerateResult, undefined> {
  const target = typeof peerId === 'string' ? peerIdFromString(peerId) : peerId;
  const idleMs = Math.max(1, Math.round(options.idleTimeoutMs ?? 60_000));
  let stream: Stream;
  try {
    if (options.addrs && options.addrs.length > 0) await libp2p.peerStore.merge(target, { multiaddrs: [...options.addrs] });
    stream = await libp2p.dialProtocol(target, GENERATE_PROTOCOL, { signal: options.signal });
  } catch (cause) {
    throw new RemoteGenerateError('GENERATE_UNAVAILABLE', `cannot open ${GENERATE_PROTOCOL} to ${target.toString()}: ${(cause as Error)?.message ?? String(cause)}`, { cause });
  }
  const lp = lpStream(stream, { maxDataLength: MAX_GENERATE_MESSAGE_BYTES });
  let finished = false;
  let tokens = 0;
  try {
    await lp.write(encoder.encode(JSON.stringify(request)), { signal: options.signal });
    for (;;) {
      const signal = options.signal ? AbortSignal.any([options.signal, AbortSignal.timeout(idleMs)]) : AbortSignal.timeout(idleMs);
      const raw = await lp.read({ signal });
      let message: unknown;
      try {
        message = JSON.parse(decoder.decode(raw.subarray()));
      } catch {
        throw new RemoteGenerateError('MALFORMED', 'the server sent a message that is not UTF-8 JSON');
      }
      if (isObj(message) && typeof message.token === 'number' && Number.isInteger(message.token) && message.token >= 0) {
        tokens++;
        yield message.token;
      } else if (isObj(message) && message.done === true && (message.finishReason === 'stop' || message.finishReason === 'length')) {
        finished = true;
        return { finishReason: message.finishReason, tokens };
      } else if (isObj(message) && isObj(message.error)) {
        finished = true;
        const code = typeof message.error.code === 'string' ? message.error.code.slice(0, 64) : 'REMOTE_ERROR';
        const text = typeof message.error.message === 'string' ? message.error.message.slice(0, 4096) : 'the server reported an error';
        throw new RemoteGenerateError(code, text);
      } else {
        throw new RemoteGenerateError('MALFORMED', `the server sent an unexpected message: ${JSON.stringify(message)?.slice(0, 120)}`);
      }
    }
  } catch (error) {
    if (error instanceof CorollaError) throw error;
    if (options.signal?.aborted) throw options.signal.reason ?? error;
    throw new RemoteGenerateError('GENERATE_STREAM', `generation stream to ${target.toString()} failed: ${(error as Error)?.message ?? String(error)}`, { cause: error });
  } finally {
    if (finished) await stream.close({ signal: AbortSignal.timeout(2000) }).catch(() => stream.abort(new Error('close failed')));
    else stream.abort(new Error('generation cancelled by the client'));
  }
}
