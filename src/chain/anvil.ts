/**
 * A local development chain: anvil from the @foundry-rs/anvil package (its platform package ships the binary), on a
 * free port, with anvil's default mnemonic, so its dev accounts are funded with 10,000 ETH each. The process leads
 * its own process group, and `stop()` kills the whole group. Used by `corolla demo --chain` and by the tests.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { mnemonicToAccount, type HDAccount } from 'viem/accounts';
import { foundry } from 'viem/chains';
import { ChainError } from './errors.js';
import { freePort, killProcessGroup } from '../util/processes.js';

/** Anvil's (and Hardhat's) default development mnemonic: its keys are published, fit for local chains only. */
export const ANVIL_DEV_MNEMONIC = 'test test test test test test test test test test test junk';
export const ANVIL_CHAIN_ID = foundry.id;
const READY_TIMEOUT_MS = 15_000;

export interface LocalAnvilSettings {
  /** Dev accounts to fund (default 10). */
  readonly accounts?: number;
  /** Mine a block every N seconds, as a real chain does (default: only on transactions). */
  readonly blockTimeSeconds?: number;
  /** An anvil binary to run instead of the installed package's. */
  readonly binary?: string;
}

export interface LocalAnvil {
  readonly rpcUrl: string;
  readonly chainId: number;
  /** The funded dev accounts of anvil's default mnemonic. */
  readonly accounts: readonly HDAccount[];
  stop(): void;
}

/** The anvil binary that @foundry-rs/anvil installed for this platform (or `override`). */
export function anvilBinary(override?: string): string {
  const arch = process.arch === 'x64' ? 'amd64' : process.arch;
  const platformPackage = `@foundry-rs/anvil-${process.platform}-${arch}`;
  let binary = override;
  if (binary === undefined) {
    try {
      binary = path.join(path.dirname(createRequire(import.meta.url).resolve(`${platformPackage}/package.json`)), 'bin', 'anvil');
    } catch {
      // not installed: reported below
    }
  }
  if (binary === undefined || !fs.existsSync(binary)) {
    throw new ChainError(`anvil not found (${binary ?? `no ${platformPackage}/bin/anvil`}): run \`npm ci\` in a clone, which installs the devDependency @foundry-rs/anvil and its platform package ${platformPackage}`);
  }
  return binary;
}

async function rpcReady(rpcUrl: string): Promise<boolean> {
  try {
    const response = await fetch(rpcUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }) });
    return response.ok;
  } catch {
    return false;
  }
}

/** Starts anvil and resolves once its RPC answers; rejects (with its stderr) if it exits or does not answer in time. */
export async function startLocalAnvil(settings: LocalAnvilSettings = {}): Promise<LocalAnvil> {
  const binary = anvilBinary(settings.binary);
  const count = settings.accounts ?? 10;
  const port = await freePort();
  const rpcUrl = `http://127.0.0.1:${port}`;
  const args = ['--silent', '--host', '127.0.0.1', '--port', String(port), '--chain-id', String(ANVIL_CHAIN_ID), '--mnemonic', ANVIL_DEV_MNEMONIC, '--accounts', String(count)];
  if (settings.blockTimeSeconds !== undefined) args.push('--block-time', String(settings.blockTimeSeconds));
  const child = spawn(binary, args, { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  let spawnError: Error | undefined;
  child.once('error', (error) => (spawnError = error));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const stop = () => killProcessGroup(child);
  process.once('exit', stop);
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (!(await rpcReady(rpcUrl))) {
    if (spawnError) throw new ChainError(`anvil (${binary}) did not start: ${spawnError.message}`);
    if (child.exitCode !== null || child.signalCode !== null) throw new ChainError(`anvil exited (${child.exitCode ?? child.signalCode}) before its RPC answered: ${stderr.trim()}`);
    if (Date.now() > deadline) {
      stop();
      throw new ChainError(`anvil's RPC at ${rpcUrl} did not answer within ${READY_TIMEOUT_MS} ms: ${stderr.trim()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  const accounts = Array.from({ length: count }, (_, addressIndex) => mnemonicToAccount(ANVIL_DEV_MNEMONIC, { addressIndex }));
  return { rpcUrl, chainId: ANVIL_CHAIN_ID, accounts, stop };
}
