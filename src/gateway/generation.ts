/**
 * One generation request from start to end, whichever API it came through: rate limits, the ledger record and its
 * batched progress, the live session other gateways see, metrics, and cancellation. The routes only translate
 * requests in and events out.
 */
import { randomUUID } from 'node:crypto';
import type { FinishReason, GenerationStats, PromptOptions } from '../inference/generate.js';
import type { ServerUsage } from '../inference/language-model.js';
import { isPeerSafe, toPeerError } from '../errors.js';
import type { Logger } from '../util/logger.js';
import { LEDGER_FLUSH_MS, LEDGER_FLUSH_TOKENS, LIVE_SESSION_UPDATE_MS } from './defaults.js';
import type { GatewayMetrics } from './metrics.js';
import type { ModelHost } from './model-host.js';
import type { ReceiptSigner } from './receipts/sign.js';
import type { AuthContext, Ledger, LiveSession, NodeContribution, RequestApi, RequestEnd, RequestProgress, SharedState } from './types.js';

export interface GenerationRequest {
  /** The caller's id (Far Mesh request_id) or one made here. */
  readonly id?: string;
  readonly api: RequestApi;
  readonly host: ModelHost;
  readonly prompt: readonly number[];
  readonly options: Omit<PromptOptions, 'signal'>;
  readonly auth: AuthContext;
  readonly wallet?: string | null;
  /** Aborted when the client goes away. */
  readonly signal: AbortSignal;
}

export interface TokenEvent {
  readonly token: number;
  readonly text: string;
  /** Tokens generated so far. */
  readonly generated: number;
  /** Cost so far, in base units. */
  readonly costUnits: bigint;
}

export interface GenerationOutcome {
  readonly finishReason: FinishReason;
  readonly stats: GenerationStats;
  readonly costUnits: bigint;
}

/** A started request: iterate `events`; `outcome()` once iteration ended. */
export interface RunningGeneration {
  readonly id: string;
  readonly promptTokens: number;
  readonly events: AsyncGenerator<TokenEvent, void, undefined>;
  /** Final numbers; valid after `events` is done. */
  outcome(): GenerationOutcome;
}

export interface GenerationServiceComponents {
  readonly ledger: Ledger;
  readonly state: SharedState;
  readonly metrics: GatewayMetrics;
  readonly log: Logger;
  /** Signs each ended request's receipts into the ledger's outbox; without it nothing is signed. */
  readonly receipts?: ReceiptSigner;
}

export class GenerationService {
  private readonly inFlight = new Set<AbortController>();
  private readonly settled = new Set<Promise<void>>();
  private stopping = false;

  constructor(
    private readonly components: GenerationServiceComponents,
    private readonly settings: { gatewayId: string; pricePerTokenUnits: bigint },
  ) {}

  get pricePerTokenUnits(): bigint {
    return this.settings.pricePerTokenUnits;
  }

  /**
   * Checks the token budget, records the request, opens the generation and waits for its first event, so every
   * failure before the first token is thrown here (and answered with a proper HTTP status by the route).
   */
  async start(request: GenerationRequest): Promise<RunningGeneration> {
    const { ledger, state, metrics, log, receipts } = this.components;
    const { host, auth } = request;
    const id = request.id ?? `req_${randomUUID().replaceAll('-', '')}`;
    const model = host.name;
    const startedAt = new Date();
    const started = performance.now();
    await state.checkTokens(auth.subject, auth.limits);
    // The record is written while the servers compute the prefill, and awaited before the first token is handed
    // out: an embedded PGlite write blocks this thread for milliseconds, a PostgreSQL one costs a round trip.
    let beginFailed = false;
    let beginStarted = false;
    let startBegin!: () => void;
    const begun = new Promise<void>((resolve, reject) => {
      startBegin = () => {
        beginStarted = true;
        ledger.begin({ id, api: request.api, apiKeyId: auth.keyId, wallet: request.wallet ?? null, model, gatewayId: this.settings.gatewayId, promptTokens: request.prompt.length, startedAt }).then(resolve, reject);
      };
    });
    begun.catch(() => (beginFailed = true));

    const controller = new AbortController();
    const onClientGone = () => controller.abort();
    request.signal.addEventListener('abort', onClientGone, { once: true });
    if (request.signal.aborted || this.stopping) controller.abort();
    this.inFlight.add(controller);
    metrics.activeSessions.inc({ model });

    const price = this.settings.pricePerTokenUnits;
    let generated = 0;
    let firstTokenAt: Date | null = null;
    let lastTokenAt = 0;
    let usage: () => ServerUsage[] = () => [];
    let ethAddressOf: (peerId: string) => string | null = () => null;
    const live: LiveSession = { id, model, api: request.api, gatewayId: this.settings.gatewayId, startedAt: startedAt.getTime(), promptTokens: request.prompt.length, completionTokens: 0, servers: [] };

    // Ledger writes of one request run one after another; a failed write is logged and retried by the next one.
    const contributions = (): NodeContribution[] =>
      usage().map((u) => ({ peerId: u.peerId, ethAddress: ethAddressOf(u.peerId), blockStart: u.blocks.start, blockEnd: u.blocks.end, promptTokens: u.promptTokens, generatedTokens: u.generatedTokens, replayedTokens: u.replayedTokens, failed: u.failed }));
    const progress = (): RequestProgress => ({ completionTokens: generated, costUnits: BigInt(generated) * price, firstTokenAt, contributions: contributions() });
    // every write waits for the record itself; without one (a duplicate id) there is nothing to write to
    let writes: Promise<void> = begun.then(
      () => {},
      () => {},
    );
    const write = (run: () => Promise<void>) => {
      writes = writes
        .then(() => (beginFailed ? undefined : run()))
        .catch((error) => log.error('ledger write for %s failed: %s', id, (error as Error).message));
      return writes;
    };
    let lastFlush = performance.now();
    let flushedTokens = 0;
    let lastLiveUpdate = 0;
    const updateLive = (now: number) => {
      lastLiveUpdate = now;
      live.completionTokens = generated;
      live.servers = [...new Set(usage().filter((u) => !u.failed).map((u) => u.peerId))];
      void state.putSession(live).catch((error) => log('live session update failed: %s', (error as Error).message));
    };

    let finishReason: FinishReason = 'length';
    let stats: GenerationStats | undefined;
    let ended = false;
    const end = async (status: RequestEnd['status'], error: unknown) => {
      if (ended) return;
      ended = true;
      request.signal.removeEventListener('abort', onClientGone);
      this.inFlight.delete(controller);
      metrics.activeSessions.dec({ model });
      metrics.promptTokens.inc({ model }, request.prompt.length);
      metrics.generatedTokens.inc({ model }, generated);
      const errorText = error === undefined ? null : isPeerSafe(error) ? `${error.code}: ${error.message}`.slice(0, 1000) : toPeerError(error).code;
      const done = write(async () => {
        const final: RequestEnd = { ...progress(), status, error: errorText, endedAt: new Date() };
        // the receipts come from the final record, the gateway's own count, and are written with it in one transaction
        const signed = receipts && final.contributions.length > 0 ? await receipts.sign({ id, modelId: host.snapshot().modelId ?? model }, final.contributions, final.endedAt) : [];
        await ledger.finish(id, final, signed);
      });
      this.settled.add(done);
      void done.finally(() => this.settled.delete(done));
      await Promise.all([
        done,
        state.removeSession(id).catch(() => {}),
        state.chargeTokens(auth.subject, request.prompt.length + generated, auth.limits).catch(() => {}),
      ]);
    };
    const statusOf = (reason: FinishReason): RequestEnd['status'] => (reason !== 'abort' ? 'completed' : this.stopping && !request.signal.aborted ? 'stopped' : 'cancelled');

    let iterator: AsyncGenerator<{ token: number; text: string }, void, undefined> | undefined;
    let first: IteratorResult<{ token: number; text: string }, void>;
    try {
      const hosted = await host.generate(request.prompt, { ...request.options, signal: controller.signal });
      usage = hosted.usage;
      ethAddressOf = hosted.ethAddressOf;
      iterator = hosted.stream;
      stats = hosted.stream.stats;
      updateLive(performance.now());
      const firstStep = iterator.next(); // sends the prompt to the servers
      firstStep.catch(() => {}); // awaited below
      await new Promise((resolve) => setImmediate(resolve));
      startBegin();
      first = await firstStep;
      await begun;
    } catch (error) {
      if (!beginStarted) startBegin();
      await begun.catch(() => {});
      if (beginFailed) {
        // no record (e.g. a request id already used): stop the generation and answer with the ledger's error
        controller.abort();
        await iterator?.return(undefined).catch(() => {});
        await end('failed', error);
        throw await begun.then(() => error, (reason: unknown) => reason);
      }
      await end(controller.signal.aborted ? statusOf('abort') : 'failed', controller.signal.aborted ? undefined : error);
      throw error;
    }

    const tokens = iterator!;
    async function* events(): AsyncGenerator<TokenEvent, void, undefined> {
      let status: RequestEnd['status'] | undefined;
      let failure: unknown;
      try {
        for (let next = first; !next.done; next = await tokens.next()) {
          const now = performance.now();
          const event = next.value;
          if (event.token >= 0) {
            generated++;
            if (firstTokenAt === null) {
              firstTokenAt = new Date();
              metrics.timeToFirstToken.observe({ model }, (now - started) / 1000);
            } else metrics.interTokenLatency.observe({ model }, (now - lastTokenAt) / 1000);
            lastTokenAt = now;
            if (now - lastFlush >= LEDGER_FLUSH_MS || generated - flushedTokens >= LEDGER_FLUSH_TOKENS) {
              lastFlush = now;
              flushedTokens = generated;
              const snapshot = progress();
              void write(() => ledger.progress(id, snapshot));
            }
            if (now - lastLiveUpdate >= LIVE_SESSION_UPDATE_MS) updateLive(now);
          }
          yield { token: event.token, text: event.text, generated, costUnits: BigInt(generated) * price };
        }
        finishReason = stats!.finishReason;
        status = statusOf(finishReason);
      } catch (error) {
        if (controller.signal.aborted) {
          finishReason = 'abort';
          status = statusOf('abort');
        } else {
          status = 'failed';
          failure = error;
        }
        throw error;
      } finally {
        if (status === undefined) {
          // the consumer stopped iterating (client gone): cancel the generation and free the servers' caches
          controller.abort();
          finishReason = 'abort';
          status = statusOf('abort');
        }
        await tokens.return(undefined).catch(() => {});
        await end(status, failure);
      }
    }
    return {
      id,
      promptTokens: request.prompt.length,
      events: events(),
      outcome: () => ({ finishReason, stats: stats!, costUnits: BigInt(generated) * price }),
    };
  }

  /** Live generations on this gateway. */
  get activeCount(): number {
    return this.inFlight.size;
  }

  /** Aborts every generation in flight (recorded as `stopped`) and waits for their ledger records. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    for (const controller of this.inFlight) controller.abort();
    const deadline = new Promise((resolve) => setTimeout(resolve, graceMs).unref());
    await Promise.race([Promise.all([...this.settled]), deadline]);
  }
}
