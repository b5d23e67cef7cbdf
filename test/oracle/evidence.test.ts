/**
 * Spot-check evidence at the oracle: two servers' signed replies to the same input history that differ beyond the
 * tolerance, reported by a known payer, exclude the suspect from the epoch (paid nothing at close) and, with a
 * slasher, slash it on a real anvil; forged or inconsistent evidence is rejected with its reason.
 */
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { LocalAccount } from 'viem';
import { signBinding } from '../../src/chain/binding.js';
import { VERIFIER_ROLE, agentRegistryAt, confirmTransaction, deployContracts } from '../../src/chain/contracts.js';
import { signSpotCheckReport } from '../../src/chain/evidence.js';
import { receiptDomain } from '../../src/chain/receipts.js';
import { viemRegistrySlasher } from '../../src/oracle/chain.js';
import { OracleService } from '../../src/oracle/service.js';
import { EMPTY_HISTORY, evidenceDigest, signAttestation, tensorDigest, type StepClaim } from '../../src/wire/attestation.js';
import { startAnvil } from '../support/anvil.js';
import { DOMAIN, EPOCH_MS, GENESIS, harness, payer, receipt, servers, signedReceipt, storeDataDir, stranger, type Harness } from './fixtures.js';

const H = 64;
const [cheat, honest, third] = servers;

interface Server {
  readonly key: PrivateKey;
  readonly peerId: string;
  readonly account: LocalAccount;
}

async function server(account: LocalAccount): Promise<Server> {
  const key = await generateKeyPair('Ed25519');
  return { key, peerId: peerIdFromPrivateKey(key).toString(), account };
}

function row(seed: number, scale = 1): Float32Array {
  return Float32Array.from({ length: H }, (_, i) => Math.sin(seed + i) * scale);
}

/** One party's JSON: its signed reply to step (position 3, 1 token) of a history, with its output. */
async function party(s: Server, output: Float32Array, claim: Partial<StepClaim> = {}) {
  const full: StepClaim = { sessionId: `sess-${s.peerId.slice(-6)}`, position: 3, tokens: 1, spanStart: 0, spanEnd: 5, dtype: 'f32', history: 'ab'.repeat(32), output: tensorDigest(output), ...claim };
  const binding = await signBinding(s.account, s.peerId);
  return {
    peerId: s.peerId,
    ethAddress: s.account.address,
    ethBinding: { issuedAt: Number(binding.issuedAt), signature: binding.signature },
    claim: full,
    signature: await signAttestation(s.key, full),
    output: Buffer.from(output.buffer).toString('base64'),
  };
}

type Party = Awaited<ReturnType<typeof party>>;

async function evidence(suspect: Party, checker: Party, options: { reporter?: LocalAccount; at?: number; domain?: typeof DOMAIN } = {}) {
  const report = { suspect: suspect.ethAddress, suspectPeerId: suspect.peerId, evidence: `0x${evidenceDigest(suspect, checker)}` as const, reportedAt: BigInt(options.at ?? GENESIS + 20 * 60_000) };
  const signature = await signSpotCheckReport(options.reporter ?? payer, options.domain ?? DOMAIN, report);
  return { report: { ...report, reportedAt: String(report.reportedAt) }, signature, suspect, checker };
}

describe('spot-check evidence', { timeout: 120_000 }, () => {
  let h: Harness;
  let s: Server;
  let c: Server;
  let good: { suspect: Party; checker: Party };
  // the migrated store template every test copies: initdb is slow on a loaded machine
  beforeAll(async () => void (await storeDataDir()), 600_000);
  beforeEach(async () => {
    h = await harness();
    h.clock.now = GENESIS + 30 * 60_000;
    [s, c] = await Promise.all([server(cheat), server(honest)]);
    const truth = row(1);
    // the suspect's output: the truth plus 1 % noise
    const wrong = truth.map((v, i) => v + 0.01 * Math.sin(7 * i + 3));
    good = { suspect: await party(s, wrong), checker: await party(c, truth) };
  }, 300_000);
  afterEach(async () => h?.close(), 60_000);

  it('is accepted once; the suspect is excluded from the epoch and paid nothing at close, the others share the budget', async () => {
    const addr = (a: LocalAccount) => a.address.toLowerCase() as `0x${string}`;
    await h.service.acceptReceipts([await signedReceipt(receipt(addr(cheat))), await signedReceipt(receipt(addr(honest))), await signedReceipt(receipt(addr(third)))]);
    const body = await evidence(good.suspect, good.checker);
    expect(await h.service.acceptEvidence(body)).toEqual({ status: 'accepted', epoch: 0, suspect: addr(cheat), slash: 'not-configured' });
    expect(await h.service.acceptEvidence(body)).toMatchObject({ status: 'duplicate' });
    expect((await h.service.epochReport(0n)).excluded).toEqual([addr(cheat)]);
    const [stored] = await h.store.evidence(0);
    expect(stored).toMatchObject({ suspect: addr(cheat), checker: addr(honest), suspectPeerId: s.peerId, checkerPeerId: c.peerId, slashTx: null });
    expect(stored!.deviation).toBeGreaterThan(0.002);

    h.clock.now = GENESIS + EPOCH_MS + 10 * 60_000;
    const closed = await h.service.closeEpoch(0n);
    expect(closed.nodes.map((n) => n.address).sort()).toEqual([addr(honest), addr(third)].sort());
    expect(closed.totalRewards! + closed.dust!).toBe(h.pool.budget);
    expect(closed.excluded).toEqual([addr(cheat)]);
  });

  it('rejects forged and inconsistent evidence, each with its reason', async () => {
    const { suspect, checker } = good;
    const rejected = async (body: unknown) => {
      try {
        await h.service.acceptEvidence(body);
      } catch (error) {
        return (error as Error).message;
      }
      return 'accepted';
    };
    const badSignature = { ...suspect, signature: checker.signature };
    const otherHistory = await party(c, row(1), { history: 'cd'.repeat(32) });
    const otherStep = await party(c, row(1), { position: 4 });
    const agreeing = await party(s, row(1).map((v) => v * (1 + 1e-6)));
    const tamperedOutput = { ...suspect, output: checker.output };
    const stolenBinding = { ...suspect, ethAddress: honest.address, ethBinding: checker.ethBinding };
    const cases: [unknown, RegExp][] = [
      [await evidence(badSignature, checker), /suspect's attestation does not verify/],
      [await evidence(suspect, otherHistory), /different steps: history/],
      [await evidence(suspect, otherStep), /different steps: position/],
      [await evidence(agreeing, checker), /agree within the tolerance/],
      [await evidence(tamperedOutput, checker), /suspect's output is not the one it signed/],
      [await evidence(stolenBinding, checker), /binding .* does not verify|same address/],
      [await evidence(suspect, checker, { reporter: stranger }), /not a known payer/],
      [await evidence(suspect, checker, { domain: receiptDomain(1, '0x00000000000000000000000000000000000000bb') }), /not a known payer/],
      [await evidence(suspect, checker, { at: h.clock.now + 3_600_000 }), /in the future/],
      [{ ...(await evidence(suspect, checker)), checker: otherHistory }, /evidence digest mismatch/],
      [{ ...(await evidence(suspect, checker)), suspect: { ...suspect, claim: { ...suspect.claim, tokens: 0 } } }, /malformed: suspect\.claim\.tokens/],
      ['nothing', /malformed/],
    ];
    for (const [body, reason] of cases) expect(await rejected(body)).toMatch(reason);
    expect(await h.store.evidence(0)).toEqual([]);
    expect((await h.service.epochReport(0n)).excluded).toEqual([]);
    // the empty history marker is what a fresh session's first step chains from
    expect(EMPTY_HISTORY).toMatch(/^0{64}$/);
  });

  it('with a key holding VERIFIER_ROLE, slashes the suspect on the registry (anvil)', async () => {
    const anvil = await startAnvil();
    try {
      const [admin, oracle, suspectAccount, checkerAccount] = anvil.accounts;
      const contracts = await deployContracts(anvil.clientsFor(admin!), { admin: admin!.address, oracle: oracle!.address, epochDurationSeconds: 3600 });
      const mined = async (hash: Promise<`0x${string}`>) => confirmTransaction(anvil.publicClient, await hash, 'setup');
      await mined(agentRegistryAt(anvil.clientsFor(admin!), contracts.agentRegistry).write.grantRole([VERIFIER_ROLE, oracle!.address]));
      await mined(agentRegistryAt(anvil.clientsFor(suspectAccount!), contracts.agentRegistry).write.register(['cheat', '{}']));
      const registry = agentRegistryAt(anvil.clientsFor(admin!), contracts.agentRegistry);
      expect(await registry.read.isActive([suspectAccount!.address])).toBe(true);

      const { walletClient, publicClient } = anvil.clientsFor(oracle!);
      const service = new OracleService(
        { chainId: 31337, rewardPool: '0x00000000000000000000000000000000000000aa', payers: [payer.address], genesisMs: GENESIS, epochDurationMs: EPOCH_MS },
        { store: h.store, registry: h.registry, pool: h.pool, slasher: viemRegistrySlasher(publicClient, walletClient, contracts.agentRegistry), now: () => h.clock.now },
      );
      const [sv, cv] = await Promise.all([server(suspectAccount!), server(checkerAccount!)]);
      const truth = row(2);
      const body = await evidence(await party(sv, truth.map((v) => -v)), await party(cv, truth));
      expect(await service.acceptEvidence(body)).toMatchObject({ status: 'accepted', slash: 'pending' });
      await service.settled();
      expect(await registry.read.isActive([suspectAccount!.address])).toBe(false);
      expect((await registry.read.getAgent([suspectAccount!.address])).slashed).toBe(true);
      const [stored] = await h.store.evidence(0);
      expect(stored!.slashTx).toMatch(/^0x[0-9a-f]{64}$/);
    } finally {
      anvil.stop();
    }
  });
});
