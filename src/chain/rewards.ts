/**
 * A node's rewards: what the oracle says it may claim, checked against the RewardPool before anything is sent, and
 * the claims themselves. The oracle is only trusted for the data: each proof is verified locally against the
 * epoch's Merkle root on chain, and getPendingReward (valid, reported and unclaimed) decides what is pending.
 * `corolla status`, `corolla rewards claim` and the auto-claim of `corolla serve` all use these functions.
 */
import type { Account, Address, Chain, Hash, Hex, PublicClient, Transport, WalletClient } from 'viem';
import { rewardPoolAbi } from './artifacts/abis.js';
import { ChainError, InvalidRewardProofError, OracleUnavailableError } from './errors.js';
import { confirmTransaction } from './transactions.js';

/** One epoch the oracle says `account` can claim (its GET /v1/rewards/{address} item, bigints parsed). */
export interface OracleClaim {
  readonly epoch: bigint;
  readonly amount: bigint;
  readonly contribution: bigint;
  readonly proof: readonly Hex[];
}

/** What the oracle reports for an address. */
export interface OracleRewards {
  readonly claimable: readonly OracleClaim[];
  /** Shown by `corolla status` when the oracle reports them. */
  readonly tasksCompleted?: number;
  readonly uptimeSeconds?: number;
}

/** The oracle, as far as a node's rewards go. */
export interface RewardOracle {
  rewards(account: Address): Promise<OracleRewards>;
}

/** Where an oracle claim stands on chain. */
export type ClaimState =
  /** Valid, reported and unclaimed: getPendingReward pays `amount`. */
  | 'pending'
  | 'claimed'
  /** The epoch has no root on chain yet. */
  | 'unreported'
  /** The proof does not lead to the on-chain root (or the pool refuses it): never sent. */
  | 'invalid-proof';

export interface CheckedClaim extends OracleClaim {
  readonly state: ClaimState;
  /** getPendingReward's answer: `amount` when pending, else 0. */
  readonly pending: bigint;
}

export interface ClaimOutcome extends CheckedClaim {
  /** The claimReward transaction, once mined. */
  readonly txHash?: Hash;
  /** Why a pending claim was not made (an invalid proof, or the transaction failed). */
  readonly error?: Error;
}

/** A 32-byte hash as 0x hex: each element of a Merkle proof. */
const HASH = /^0x[0-9a-fA-F]{64}$/;

export const DEFAULT_ORACLE_TIMEOUT_MS = 10_000;
/** How often `corolla serve --auto-claim-threshold` checks the pending reward. */
export const DEFAULT_AUTO_CLAIM_INTERVAL_MS = 10 * 60_000;

/** The oracle's HTTP API at `baseUrl` (GET /v1/rewards/{address}; bigints as decimal strings). */
export function httpRewardOracle(baseUrl: string, options: { fetch?: typeof fetch; timeoutMs?: number } = {}): RewardOracle {
  const fetchImpl = options.fetch ?? fetch;
  return {
    async rewards(account) {
      const url = new URL(`v1/rewards/${account}`, baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`);
      let body: unknown;
      try {
        const response = await fetchImpl(url, { signal: AbortSignal.timeout(options.timeoutMs ?? DEFAULT_ORACLE_TIMEOUT_MS) });
        if (!response.ok) throw new Error(`HTTP ${response.status}: ${(await response.text()).slice(0, 200)}`);
        body = await response.json();
      } catch (error) {
        throw new OracleUnavailableError(`the oracle at ${baseUrl} is unreachable (GET ${url.pathname}): ${(error as Error).message}`, { cause: error });
      }
      return parseOracleRewards(body, baseUrl);
    },
  };
}

function parseOracleRewards(body: unknown, baseUrl: string): OracleRewards {
  const invalid = (what: string) => new OracleUnavailableError(`the oracle at ${baseUrl} answered with invalid rewards JSON: ${what}`);
  const record = body as Record<string, unknown> | null;
  if (typeof record !== 'object' || record === null || !Array.isArray(record.claimable)) throw invalid('no "claimable" array');
  const uint = (value: unknown, name: string): bigint => {
    if (typeof value !== 'string' || !/^(0|[1-9][0-9]{0,77})$/.test(value)) throw invalid(`${name} is not a decimal string`);
    return BigInt(value);
  };
  const claimable = record.claimable.map((item: unknown, i): OracleClaim => {
    const c = (item ?? {}) as Record<string, unknown>;
    const proof = c.proof;
    if (!Array.isArray(proof) || !proof.every((p) => typeof p === 'string' && HASH.test(p))) throw invalid(`claimable[${i}].proof is not a list of 32-byte hex hashes`);
    return { epoch: uint(c.epoch, `claimable[${i}].epoch`), amount: uint(c.amount, `claimable[${i}].amount`), contribution: uint(c.contribution, `claimable[${i}].contribution`), proof: proof as Hex[] };
  });
  const count = (value: unknown): number | undefined => (typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined);
  const tasksCompleted = count(record.tasksCompleted);
  const uptimeSeconds = count(record.uptimeSeconds);
  return { claimable, ...(tasksCompleted !== undefined ? { tasksCompleted } : {}), ...(uptimeSeconds !== undefined ? { uptimeSeconds } : {}) };
}

/** Checks each of the oracle's claims for `account` against the RewardPool at `pool` (reads only). */
export async function checkClaims(publicClient: PublicClient, pool: Address, account: Address, claims: readonly OracleClaim[]): Promise<CheckedClaim[]> {
  const read = async <T>(what: string, call: () => Promise<T>): Promise<T> => {
    try {
      return await call();
    } catch (error) {
      throw new ChainError(`RewardPool ${pool}: ${what} failed`, { cause: error });
    }
  };
  // the Merkle code loads viem's ABI encoder, a third of a second to import: only once there are claims to check
  const { verifyRewardProof } = await import('./merkle.js');
  const checked: CheckedClaim[] = [];
  for (const claim of claims) {
    const { epoch, amount, contribution, proof } = claim;
    const onChain = await read(`getEpoch(${epoch})`, () => publicClient.readContract({ address: pool, abi: rewardPoolAbi, functionName: 'getEpoch', args: [epoch] }));
    let state: ClaimState;
    let pending = 0n;
    if (!onChain.reported) state = 'unreported';
    else if (!verifyRewardProof(onChain.merkleRoot, { account, epoch, amount, contribution }, proof)) state = 'invalid-proof';
    else if (await read(`hasClaimed(${account}, ${epoch})`, () => publicClient.readContract({ address: pool, abi: rewardPoolAbi, functionName: 'hasClaimed', args: [account, epoch] }))) state = 'claimed';
    else {
      pending = await read(`getPendingReward(${account}, ${epoch})`, () =>
        publicClient.readContract({ address: pool, abi: rewardPoolAbi, functionName: 'getPendingReward', args: [account, epoch, amount, contribution, [...proof]] }),
      );
      state = pending > 0n ? 'pending' : 'invalid-proof';
    }
    checked.push({ ...claim, state, pending });
  }
  return checked;
}

/** The oracle's claims for `account`, each checked on chain. */
export async function claimableRewards(publicClient: PublicClient, pool: Address, account: Address, oracle: RewardOracle): Promise<CheckedClaim[]> {
  return checkClaims(publicClient, pool, account, (await oracle.rewards(account)).claimable);
}

/** Σ pending over checked claims: what claiming now would pay. */
export const pendingTotal = (claims: readonly CheckedClaim[]): bigint => claims.reduce((sum, c) => sum + c.pending, 0n);

export interface ClaimClients {
  readonly publicClient: PublicClient;
  /** Signs the claims; its account is the one paid. */
  readonly walletClient: WalletClient<Transport, Chain | undefined, Account>;
}

/**
 * Claims every pending reward the oracle lists for the wallet's account, one transaction per epoch, each confirmed
 * before the next. A claim whose proof fails locally is never sent (its outcome carries InvalidRewardProofError); a
 * transaction that fails is reported in its outcome and the others still go ahead. `dryRun` only checks.
 */
export async function claimRewards(clients: ClaimClients, pool: Address, oracle: RewardOracle, options: { dryRun?: boolean } = {}): Promise<ClaimOutcome[]> {
  const { publicClient, walletClient } = clients;
  const account = walletClient.account.address;
  const checked = await claimableRewards(publicClient, pool, account, oracle);
  const outcomes: ClaimOutcome[] = [];
  for (const claim of checked) {
    if (claim.state === 'invalid-proof') {
      outcomes.push({ ...claim, error: new InvalidRewardProofError(claim.epoch, account, pool) });
      continue;
    }
    if (claim.state !== 'pending' || options.dryRun) {
      outcomes.push(claim);
      continue;
    }
    try {
      // simulated first, so a revert (paused, claimed meanwhile) is an error with its reason and costs no gas
      const { request } = await publicClient.simulateContract({
        account: walletClient.account,
        address: pool,
        abi: rewardPoolAbi,
        functionName: 'claimReward',
        args: [claim.epoch, claim.amount, claim.contribution, [...claim.proof]],
      });
      const txHash = await walletClient.writeContract({ ...request, chain: walletClient.chain ?? null });
      await confirmTransaction(publicClient, txHash, `claimReward(${claim.epoch})`);
      outcomes.push({ ...claim, state: 'claimed', txHash });
    } catch (error) {
      outcomes.push({ ...claim, error: error instanceof ChainError ? error : new ChainError(`RewardPool ${pool}: claimReward(${claim.epoch}) failed`, { cause: error }) });
    }
  }
  return outcomes;
}

export interface AutoClaimOptions {
  /** Claim once Σ pending reaches this many wei. */
  readonly thresholdWei: bigint;
  readonly intervalMs: number;
  /** Told each round's claims, or why the round failed (the next round tries again). */
  readonly onRound?: (result: { pending: bigint; outcomes: readonly ClaimOutcome[] } | { error: Error }) => void;
}

/** Every `intervalMs`, claims the pending rewards once they reach the threshold; `stop()` ends it. */
export function startAutoClaim(clients: ClaimClients, pool: Address, oracle: RewardOracle, options: AutoClaimOptions): { stop(): void } {
  let running = false;
  const round = async (): Promise<void> => {
    if (running) return; // a slow chain never stacks rounds
    running = true;
    try {
      const pending = pendingTotal(await claimableRewards(clients.publicClient, pool, clients.walletClient.account.address, oracle));
      const outcomes = pending > 0n && pending >= options.thresholdWei ? await claimRewards(clients, pool, oracle) : [];
      options.onRound?.({ pending, outcomes });
    } catch (error) {
      options.onRound?.({ error: error as Error });
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void round(), options.intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

