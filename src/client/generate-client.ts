/**
 * The client side of whole-model generation (/corolla/generate/1.0.0; messages in wire/generate.ts): send one
 * request, read the token ids the server samples.
 */
import type { Libp2p, PeerId, Stream } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { lpStream } from '@libp2p/utils';
import type { Multiaddr } from '@multiformats/multiaddr';
import { CorollaError } from '../errors.js';
import {
  checkGenerateServerMessage,
  GENERATE_PROTOCOL,
  MAX_GENERATE_MESSAGE_BYTES,
  type GenerateFinishReason,
  type GenerateRequest,
} from '../wire/generate.js';
import { RemoteGenerateError } from './errors.js';

export interface RemoteGenerateOptions {
  readonly signal?: AbortSignal;
  /** Addresses of the peer to merge into the peer store before dialing. */
  readonly addrs?: readonly Multiaddr[];
  /** Longest wait for any one message from the server (default 60 s). */
  readonly idleTimeoutMs?: number;
  /** The model's vocabulary size: a token id at or above it ends the stream with GENERATE_MISBEHAVED. */
  readonly vocabSize?: number;
}

export interface GenerateResult {
  readonly finishReason: GenerateFinishReason;
  readonly tokens: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Streams the token ids a whole-model server generates for `request`. Iterating ends after the last token (the
 * generator's return value carries the finish reason); breaking out of the loop or aborting `signal` cancels the
 * generation on the server. Throws RemoteGenerateError: the server's own code (INVALID_REQUEST, CACHE_FULL,
 * REQUEST_TOO_LARGE, INVALID_SAMPLING_OPTIONS, …), GENERATE_UNAVAILABLE when the peer cannot be reached on the
 * protocol, GENERATE_STREAM when the stream breaks, MALFORMED for a reply that does not follow the protocol, and
 * GENERATE_MISBEHAVED for a server that streams more than `request.maxTokens` tokens or an id outside the
 * vocabulary (`options.vocabSize`): the stream is cut off there, and the caller should ban that server.
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
      let parsed: unknown;
      try {
        parsed = JSON.parse(decoder.decode(raw.subarray()));
      } catch {
        throw new RemoteGenerateError('MALFORMED', 'the server sent a message that is not UTF-8 JSON');
      }
      const checked = checkGenerateServerMessage(parsed);
      if (!checked.ok) throw new RemoteGenerateError('MALFORMED', `the server sent an unexpected message: ${checked.reason}`);
      const message = checked.value;
      if ('token' in message) {
        if (tokens >= request.maxTokens) {
          throw new RemoteGenerateError('GENERATE_MISBEHAVED', `${target.toString()} streamed more than the ${request.maxTokens} tokens asked for`);
        }
        if (options.vocabSize !== undefined && message.token >= options.vocabSize) {
          throw new RemoteGenerateError('GENERATE_MISBEHAVED', `${target.toString()} streamed token id ${message.token}, outside the vocabulary of ${options.vocabSize}`);
        }
        tokens++;
        yield message.token;
      } else if ('done' in message) {
        finished = true;
        return { finishReason: message.finishReason, tokens };
      } else {
        finished = true;
        throw new RemoteGenerateError(message.error.code, message.error.message);
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
