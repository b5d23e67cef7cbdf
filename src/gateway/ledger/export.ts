/**
 * The ledger's usage in the forms the payment side reads: CSV (one row per node contribution, with its request) and
 * JSON (snake_case, money as decimal strings so no JSON parser rounds it). `usageEntryJson` is also the HTTP shape.
 */
import type { NodeContribution, UsageEntry } from '../types.js';
import { formatFar } from './money.js';

export const USAGE_CSV_COLUMNS = [
  'request_id',
  'started_at',
  'ended_at',
  'model',
  'api_key_id',
  'wallet',
  'status',
  'peer_id',
  'eth_address',
  'block_start',
  'block_end',
  'prompt_tokens',
  'generated_tokens',
  'replayed_tokens',
  'failed',
  'request_cost_far',
] as const;

/** RFC 4180: quote a field that holds a comma, quote or line break; double its quotes. */
function csvField(value: string | number | boolean | null): string {
  const text = value === null ? '' : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/**
 * CSV lines (header first, each ending in CRLF). A request's cost repeats on each of its contribution rows (sum it
 * once per request_id); a request no server served yet has one row with empty contribution fields.
 */
export function* usageCsvLines(entries: Iterable<UsageEntry>): Generator<string> {
  yield USAGE_CSV_COLUMNS.join(',') + '\r\n';
  for (const { request, contributions } of entries) {
    const rows: (NodeContribution | undefined)[] = contributions.length > 0 ? [...contributions] : [undefined];
    for (const c of rows) {
      const fields = [
        request.id,
        request.startedAt.toISOString(),
        request.endedAt?.toISOString() ?? null,
        request.model,
        request.apiKeyId,
        request.wallet,
        request.status,
        c?.peerId ?? null,
        c?.ethAddress ?? null,
        c?.blockStart ?? null,
        c?.blockEnd ?? null,
        c?.promptTokens ?? null,
        c?.generatedTokens ?? null,
        c?.replayedTokens ?? null,
        c?.failed ?? null,
        formatFar(request.costUnits),
      ];
      yield fields.map(csvField).join(',') + '\r\n';
    }
  }
}

export interface UsageEntryJson {
  readonly request: {
    readonly id: string;
    readonly api: string;
    readonly api_key_id: string | null;
    readonly wallet: string | null;
    readonly model: string;
    readonly gateway_id: string;
    readonly prompt_tokens: number;
    readonly completion_tokens: number;
    /** Integer base units (10^18 per FAR), as a decimal string. */
    readonly cost_units: string;
    readonly cost_far: string;
    readonly status: string;
    readonly error: string | null;
    readonly started_at: string;
    readonly first_token_at: string | null;
    readonly ended_at: string | null;
  };
  readonly node_contributions: Array<{
    readonly peer_id: string;
    readonly eth_address: string | null;
    readonly block_start: number;
    readonly block_end: number;
    readonly prompt_tokens: number;
    readonly generated_tokens: number;
    readonly replayed_tokens: number;
    readonly failed: boolean;
  }>;
}

export function usageEntryJson({ request, contributions }: UsageEntry): UsageEntryJson {
  return {
    request: {
      id: request.id,
      api: request.api,
      api_key_id: request.apiKeyId,
      wallet: request.wallet,
      model: request.model,
      gateway_id: request.gatewayId,
      prompt_tokens: request.promptTokens,
      completion_tokens: request.completionTokens,
      cost_units: request.costUnits.toString(),
      cost_far: formatFar(request.costUnits),
      status: request.status,
      error: request.error,
      started_at: request.startedAt.toISOString(),
      first_token_at: request.firstTokenAt?.toISOString() ?? null,
      ended_at: request.endedAt?.toISOString() ?? null,
    },
    node_contributions: contributions.map((c) => ({
      peer_id: c.peerId,
      eth_address: c.ethAddress,
      block_start: c.blockStart,
      block_end: c.blockEnd,
      prompt_tokens: c.promptTokens,
      generated_tokens: c.generatedTokens,
      replayed_tokens: c.replayedTokens,
      failed: c.failed,
    })),
  };
}

/** A JSON array, one entry per line, so a large export streams and diffs well. */
export function* usageJsonLines(entries: Iterable<UsageEntry>): Generator<string> {
  let first = true;
  for (const entry of entries) {
    yield (first ? '[\n' : ',\n') + JSON.stringify(usageEntryJson(entry));
    first = false;
  }
  yield first ? '[]\n' : '\n]\n';
}
