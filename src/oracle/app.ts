/**
 * The oracle's HTTP API (Hono): POST /v1/receipts, POST /v1/metrics, POST /v1/evidence, GET /v1/epochs/{n}, GET /v1/rewards/{address},
 * GET /health. JSON throughout, every bigint a decimal string. A body that is not what a route takes is a 4xx with
 * the reason; only a real failure of ours is a 5xx.
 */
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { isAddress, type Address } from 'viem';
import { ERROR_CODES, isPeerSafe } from '../errors.js';
import { silentLogger, type ComponentLogger } from '../util/logger.js';
import { MAX_BODY_BYTES } from './defaults.js';
import { BodyTooLargeError, InvalidReportError } from './errors.js';
import type { OracleService } from './service.js';

/** JSON with every bigint as a decimal string. */
function json(c: Context, value: unknown, status = 200): Response {
  return c.body(JSON.stringify(value, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)), status as 200, { 'content-type': 'application/json' });
}

/** The array under `field` of a JSON object body. */
async function batch(c: Context, field: string): Promise<unknown[]> {
  let body: unknown;
  try {
    body = await c.req.json();
  } catch {
    throw new InvalidReportError('the body is not JSON');
  }
  const items = (body as Record<string, unknown> | null)?.[field];
  if (typeof body !== 'object' || body === null || Array.isArray(body) || !Array.isArray(items)) throw new InvalidReportError(`the body must be {"${field}": [{message, signature}, …]}`, field);
  return items;
}

export function createOracleApp(service: OracleService, options: { logger?: ComponentLogger } = {}): Hono {
  const log = (options.logger ?? silentLogger).forComponent('corolla:oracle:http');
  const app = new Hono();
  app.use('*', bodyLimit({ maxSize: MAX_BODY_BYTES, onError: () => { throw new BodyTooLargeError(MAX_BODY_BYTES); } }));

  app.get('/health', (c) => json(c, { status: 'ok', epoch: service.currentEpoch() }));
  app.post('/v1/receipts', async (c) => json(c, await service.acceptReceipts(await batch(c, 'receipts'))));
  app.post('/v1/metrics', async (c) => json(c, await service.acceptMetrics(await batch(c, 'metrics'))));
  app.post('/v1/evidence', async (c) => {
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      throw new InvalidReportError('the body is not JSON');
    }
    return json(c, await service.acceptEvidence(body));
  });
  app.get('/v1/epochs/:epoch', async (c) => {
    const epoch = c.req.param('epoch');
    if (!/^(0|[1-9][0-9]{0,9})$/.test(epoch) || Number(epoch) > 2 ** 31 - 1) throw new InvalidReportError(`"${epoch.slice(0, 40)}" is not an epoch number`, 'epoch');
    return json(c, await service.epochReport(BigInt(epoch)));
  });
  app.get('/v1/rewards/:address', async (c) => {
    const address = c.req.param('address');
    if (!isAddress(address, { strict: false })) throw new InvalidReportError(`"${address.slice(0, 60)}" is not an Ethereum address`, 'address');
    const [claimable, stats] = await Promise.all([service.claimable(address as Address), service.serverStats(address as Address)]);
    return json(c, { address: address.toLowerCase(), claimable, ...stats });
  });

  app.notFound((c) => json(c, { error: { code: 'not_found', message: `no route for ${c.req.method} ${new URL(c.req.url).pathname.slice(0, 200)}` } }, 404));
  app.onError((error, c) => {
    if (!isPeerSafe(error)) {
      log.error('%s %s failed: %s', c.req.method, c.req.path, error instanceof Error ? (error.stack ?? error.message) : String(error));
      return json(c, { error: { code: 'internal', message: 'internal error' } }, 500);
    }
    const param = (error as { param?: unknown }).param;
    if (error instanceof BodyTooLargeError) c.header('Connection', 'close');
    return json(c, { error: { code: error.code.toLowerCase(), message: error.message, ...(typeof param === 'string' ? { param } : {}) } }, ERROR_CODES[error.code].httpStatus);
  });
  return app;
}
