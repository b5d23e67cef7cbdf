/** The environment variables the CLI reads, in one place; library code takes these values as options instead. */
import os from 'node:os';
import path from 'node:path';
import type { HubOptions } from '../model/hub.js';

type Env = Readonly<Record<string, string | undefined>>;

/** Hub endpoint, token and cache root from HF_ENDPOINT, HF_TOKEN (or HUGGING_FACE_HUB_TOKEN) and COROLLA_CACHE. */
export function hubOptionsFromEnv(env: Env = process.env): Pick<HubOptions, 'endpoint' | 'token' | 'cacheRoot'> {
  const token = env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN;
  return {
    ...(env.HF_ENDPOINT ? { endpoint: env.HF_ENDPOINT } : {}),
    ...(token ? { token } : {}),
    ...(env.COROLLA_CACHE ? { cacheRoot: env.COROLLA_CACHE } : {}),
  };
}

/** Where `corolla gateway` keeps its embedded ledger by default (COROLLA_DATA_DIR overrides it). */
export function defaultGatewayDataDir(env: Env = process.env): string {
  return env.COROLLA_DATA_DIR || path.join(os.homedir(), '.corolla', 'gateway');
}
