/** The oracle's test fixtures: a migrated PGlite store to copy, fake chain interfaces, keys and signed reports. */
import fs from 'node:fs';
import path from 'node:path';
import { privateKeyToAccount } from 'viem/accounts';
import type { Address, Hex } from 'viem';
import { receiptDomain, signNodeMetrics, signReceipt, type NodeMetrics, type Receipt } from '../../src/chain/receipts.js';
import { openOracleStore } from '../../src/oracle/open.js';
import { OracleService, type OracleSettings } from '../../src/oracle/service.js';
import type { OracleStore } from '../../src/oracle/store.js';
import type { RegistryReader, RewardPoolWriter } from '../../src/oracle/types.js';
import { tempDir } from '../support/files.js';

export const CHAIN_ID = 31337;
export const POOL: Address = '0x00000000000000000000000000000000000000aa';
export const DOMAIN = receiptDomain(CHAIN_ID, POOL);
export const GENESIS = 1_800_000_000_000;
export const EPOCH_MS = 3_600_000;

const key = (n: number): Hex => `0x${n.toString(16).padStart(64, '0')}`;
export const payer = privateKeyToAccount(key(1));
export const stranger = privateKeyToAccount(key(2));
export const servers = [privateKeyToAccount(key(11)), privateKeyToAccount(key(12)), privateKeyToAccount(key(13))] as const;

let template: Promise<string> | undefined;

/** A data dir holding a migrated, empty `oracle` store (copied from one built once per test file). */
export async function storeDataDir(): Promise<string> {
  template ??= (async () => {
    const dir = tempDir('corolla-oracle-template-');
    await (await openOracleStore({ dataDir: dir })).close();
    return dir;
  })();
  const dir = tempDir('corolla-oracle-');
  fs.cpSync(path.join(await template, 'oracle'), path.join(dir, 'oracle'), { recursive: true });
  return dir;
}

export class FakeRegistry implements RegistryReader {
  readonly inactive = new Set<string>();
  async isActive(server: Address): Promise<boolean> {
    return !this.inactive.has(server.toLowerCase());
  }
}

export class FakePool implements RewardPoolWriter {
  readonly reports: Array<{ epoch: bigint; root: Hex; totalRewards: bigint; totalContribution: bigint }> = [];
  budget = 1_000_000_000_000_000_000n;
  failNext = false;
  /** The next report is mined but its answer is lost (a crash before the hash is stored). */
  loseNextAnswer = false;
  async epochBudget(): Promise<bigint> {
    return this.budget;
  }
  async reportedEpoch(epoch: bigint): Promise<{ root: Hex; txHash: Hex } | undefined> {
    const index = this.reports.findIndex((r) => r.epoch === epoch);
    return index < 0 ? undefined : { root: this.reports[index]!.root, txHash: this.txHash(index + 1) };
  }
  private txHash(n: number): Hex {
    return `0x${'ab'.repeat(31)}${n.toString(16).padStart(2, '0')}`;
  }
  async reportEpoch(epoch: bigint, root: Hex, totalRewards: bigint, totalContribution: bigint): Promise<Hex> {
    if (this.failNext) {
      this.failNext = false;
      throw new Error('rpc down');
    }
    if (this.reports.some((r) => r.epoch === epoch)) throw new Error('EpochAlreadyReported'); // the contract's guard
    if (totalRewards > this.budget) throw new Error('OverBudget');
    this.reports.push({ epoch, root, totalRewards, totalContribution });
    if (this.loseNextAnswer) {
      this.loseNextAnswer = false;
      throw new Error('connection reset');
    }
    return this.txHash(this.reports.length);
  }
}

export interface Harness {
  service: OracleService;
  store: OracleStore;
  registry: FakeRegistry;
  pool: FakePool;
  clock: { now: number };
  dataDir: string;
  /** Closes the store and opens the data dir again with a new service (a restart). */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export async function harness(overrides: Partial<OracleSettings> = {}): Promise<Harness> {
  const dataDir = await storeDataDir();
  const registry = new FakeRegistry();
  const pool = new FakePool();
  const clock = { now: GENESIS + 10 * 60_000 };
  const settings: OracleSettings = { chainId: CHAIN_ID, rewardPool: POOL, payers: [payer.address], genesisMs: GENESIS, epochDurationMs: EPOCH_MS, ...overrides };
  const make = (store: OracleStore) => new OracleService(settings, { store, registry, pool, now: () => clock.now });
  const h: Harness = {
    store: await openOracleStore({ dataDir }),
    service: undefined as unknown as OracleService,
    registry,
    pool,
    clock,
    dataDir,
    async restart() {
      await h.store.close();
      h.store = await openOracleStore({ dataDir });
      h.service = make(h.store);
    },
    async close() {
      await h.store.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
  h.service = make(h.store);
  return h;
}

let session = 0;
export function receipt(server: Address, overrides: Partial<Receipt> = {}): Receipt {
  return {
    sessionId: `s${++session}`,
    modelId: 'tiny',
    server,
    blockStart: 0,
    blockEnd: 4,
    promptTokens: 10n,
    generatedTokens: 20n,
    replayedTokens: 0n,
    issuedAt: BigInt(GENESIS + 5 * 60_000),
    ...overrides,
  };
}

export function metrics(server: Address, overrides: Partial<NodeMetrics> = {}): NodeMetrics {
  return {
    server,
    peerId: '12D3KooWtest',
    periodStart: BigInt(GENESIS),
    periodEnd: BigInt(GENESIS + 9 * 60_000),
    tokensServed: 0n,
    sessions: 1,
    meanStepLatencyUs: 1000n,
    uptimeSeconds: 540n,
    ...overrides,
  };
}

/** The JSON form a client posts (bigints as decimal strings). */
export function wire(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)));
}

export async function signedReceipt(r: Receipt, signer = payer) {
  return wire(await signReceipt(signer, DOMAIN, r));
}

export async function signedMetrics(m: NodeMetrics, signer = servers[0]) {
  return wire(await signNodeMetrics(signer, DOMAIN, m));
}
