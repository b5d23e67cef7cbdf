/** The ledger and shared state of in-process test gateways: a fresh PGlite ledger (copied from a migrated template) and the in-memory state. */
import fs from 'node:fs';
import { openLedger } from '../../src/gateway/ledger/index.js';
import { MemorySharedState } from '../../src/gateway/state/memory.js';
import type { Ledger, SharedState } from '../../src/gateway/types.js';
import { pgliteDataDir } from './ledger.js';

/** A real, empty PGlite ledger; closing it removes its directory. */
export async function openTestLedger(): Promise<Ledger> {
  const dir = await pgliteDataDir();
  const ledger = await openLedger({ dataDir: dir });
  return Object.assign(Object.create(ledger) as Ledger, {
    async close() {
      await ledger.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  });
}

export async function openTestState(): Promise<SharedState> {
  return new MemorySharedState();
}
