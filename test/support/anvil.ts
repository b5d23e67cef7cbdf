/**
 * A real local chain for tests: anvil from @foundry-rs/anvil (its platform package ships the binary), on a free port,
 * with anvil's default mnemonic, so its dev accounts are funded with 10,000 ETH each. The process leads its own
 * process group and `stop()` kills the whole group.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { BaseError, ContractFunctionRevertedError, createPublicClient, createTestClient, createWalletClient, http, type Account, type PublicClient, type TestClient } from 'viem';
import { mnemonicToAccount, type HDAccount } from 'viem/accounts';
import { foundry } from 'viem/chains';
import type { ChainClients } from '../../src/chain/contracts.js';

/** Anvil's (and Hardhat's) default development mnemonic; its keys are public, for local chains only. */
export const ANVIL_MNEMONIC = 'test test test test test test test test test test test junk';
export const ANVIL_CHAIN_ID = 31337;
const ACCOUNT_COUNT = 10;
const READY_TIMEOUT_MS = 15_000;

export interface Anvil {
  readonly rpcUrl: string;
  /** The dev accounts of anvil's default mnemonic, funded. */
  readonly accounts: readonly HDAccount[];
  readonly publicClient: PublicClient;
  /** anvil's cheat methods: increaseTime, mine, setBalance… */
  readonly testClient: TestClient<'anvil'>;
  /** Wallet and public clients that sign as `account`. */
  clientsFor(account: Account): ChainClients;
  /** Moves the chain's clock on by `seconds` and mines a block at the new time. */
  advanceTime(seconds: number): Promise<void>;
  stop(): void;
}

/** The anvil binary: COROLLA_TEST_ANVIL if set, else the one @foundry-rs/anvil installed for this platform. */
export function anvilBinary(): string {
  const arch = process.arch === 'x64' ? 'amd64' : process.arch;
  const platformPackage = `@foundry-rs/anvil-${process.platform}-${arch}`;
  let binary = process.env.COROLLA_TEST_ANVIL;
  if (binary === undefined) {
    try {
      binary = path.join(path.dirname(createRequire(import.meta.url).resolve(`${platformPackage}/package.json`)), 'bin', 'anvil');
    } catch {
      // not installed: reported below
    }
  }
  if (binary === undefined || !fs.existsSync(binary)) {
    throw new Error(
      `anvil binary not found (${binary ?? `no ${platformPackage}/bin/anvil`}): install the devDependency @foundry-rs/anvil with its platform package ${platformPackage}, or set COROLLA_TEST_ANVIL to an anvil binary`,
    );
  }
  return binary;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function rpcReady(rpcUrl: string): Promise<boolean> {
  try {
    const response = await fetch(rpcUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }) });
    return response.ok;
  } catch {
    return false;
  }
}

function killGroup(child: ChildProcess): void {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    child.kill('SIGKILL'); // the group is already gone
  }
}

/** Starts anvil and resolves once its RPC answers; rejects (with its stderr) if it exits or does not answer in time. */
export async function startAnvil(extraArgs: readonly string[] = []): Promise<Anvil> {
  const binary = anvilBinary();
  const port = await freePort();
  const rpcUrl = `http://127.0.0.1:${port}`;
  const child = spawn(binary, ['--silent', '--host', '127.0.0.1', '--port', String(port), '--chain-id', String(ANVIL_CHAIN_ID), '--mnemonic', ANVIL_MNEMONIC, '--accounts', String(ACCOUNT_COUNT), ...extraArgs], {
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  let spawnError: Error | undefined;
  child.once('error', (error) => (spawnError = error));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const stop = () => killGroup(child);
  process.once('exit', stop);
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (!(await rpcReady(rpcUrl))) {
    if (spawnError) throw new Error(`anvil (${binary}) did not start: ${spawnError.message}`);
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`anvil exited (${child.exitCode ?? child.signalCode}) before its RPC answered: ${stderr.trim()}`);
    if (Date.now() > deadline) {
      stop();
      throw new Error(`anvil's RPC at ${rpcUrl} did not answer within ${READY_TIMEOUT_MS} ms: ${stderr.trim()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  const accounts = Array.from({ length: ACCOUNT_COUNT }, (_, addressIndex) => mnemonicToAccount(ANVIL_MNEMONIC, { addressIndex }));
  const transport = http(rpcUrl);
  const publicClient = createPublicClient({ chain: foundry, transport, pollingInterval: 10 }) as PublicClient;
  const testClient = createTestClient({ chain: foundry, mode: 'anvil', transport });
  return {
    rpcUrl,
    accounts,
    publicClient,
    testClient,
    clientsFor: (account) => ({ walletClient: createWalletClient({ account, chain: foundry, transport }), publicClient }),
    advanceTime: async (seconds) => {
      await testClient.increaseTime({ seconds });
      await testClient.mine({ blocks: 1 });
    },
    stop,
  };
}

export interface Revert {
  /** The custom error's name (or the reason string). */
  readonly name: string;
  readonly args: readonly unknown[];
}

/** What a contract call reverted with, decoded by its ABI; fails if it did not revert. */
export async function revertOf(call: Promise<unknown>): Promise<Revert> {
  try {
    await call;
  } catch (error) {
    const reverted = error instanceof BaseError ? error.walk((e) => e instanceof ContractFunctionRevertedError) : null;
    if (reverted instanceof ContractFunctionRevertedError) {
      return { name: reverted.data?.errorName ?? reverted.reason ?? 'unknown revert', args: reverted.data?.args ?? [] };
    }
    throw error;
  }
  throw new Error('the call did not revert');
}
