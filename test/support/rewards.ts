/**
 * A rewarded node on a real anvil chain: the contracts deployed, the node registered, an epoch funded, ended and
 * reported with a real RewardTree, and a tiny HTTP oracle answering GET /v1/rewards/{address} in the oracle's JSON
 * shape with whatever the test sets (by default the tree's true proofs).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseEther, type Address, type Hex } from 'viem';
import { agentRegistryAt, confirmTransaction, deployContracts, rewardPoolAt, type DeployedContracts } from '../../src/chain/contracts.js';
import { RewardTree, type RewardLeaf } from '../../src/chain/merkle.js';
import type { Anvil } from './anvil.js';

export const EPOCH_SECONDS = 3600;

export interface OracleBody {
  readonly claimable: readonly { epoch: bigint; amount: bigint; contribution: bigint; proof: readonly Hex[] }[];
  readonly tasksCompleted?: number;
  readonly uptimeSeconds?: number;
}

export interface RewardedNode {
  readonly contracts: DeployedContracts;
  readonly tree: RewardTree;
  readonly leaf: RewardLeaf;
  /** The oracle's answer per lowercase address (absent: an empty claimable list). */
  readonly answers: Map<string, OracleBody>;
  readonly oracleUrl: string;
  /** Funds, ends and reports one more epoch for `leaves`; returns its tree. */
  reportEpoch(leaves: (epoch: bigint) => RewardLeaf[]): Promise<RewardTree>;
  stop(): Promise<void>;
}

/** Accounts 0 (admin) and 1 (oracle) run the contracts; `node` registers and is paid in each reported epoch. */
export async function rewardedNode(anvil: Anvil, node: Anvil['accounts'][number], other: Address): Promise<RewardedNode> {
  const [admin, oracle] = anvil.accounts as Anvil['accounts'][number][];
  const contracts = await deployContracts(anvil.clientsFor(admin!), { admin: admin!.address, oracle: oracle!.address, epochDurationSeconds: EPOCH_SECONDS });
  const mined = async (hash: Promise<Hex>) => confirmTransaction(anvil.publicClient, await hash, 'setup');
  await mined(agentRegistryAt(anvil.clientsFor(node), contracts.agentRegistry).write.register(['node', JSON.stringify({ peerId: '12D3KooWNode' })]));
  const pool = (as: Anvil['accounts'][number]) => rewardPoolAt(anvil.clientsFor(as), contracts.rewardPool);

  const answers = new Map<string, OracleBody>();
  const server: Server = createServer((request, response) => {
    const match = /^\/v1\/rewards\/(0x[0-9a-fA-F]{40})$/.exec(request.url ?? '');
    if (!match) {
      response.writeHead(404).end();
      return;
    }
    const body = answers.get(match[1]!.toLowerCase()) ?? { claimable: [] };
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ address: match[1]!.toLowerCase(), ...body }, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const oracleUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const reportEpoch = async (leavesOf: (epoch: bigint) => RewardLeaf[]): Promise<RewardTree> => {
    const epoch = await pool(admin!).read.getCurrentEpoch();
    const tree = new RewardTree(epoch, leavesOf(epoch));
    await mined(pool(admin!).write.fundEpoch([epoch], { value: tree.totalRewards + parseEther('0.01') }));
    await anvil.advanceTime(EPOCH_SECONDS);
    await mined(pool(oracle!).write.reportEpoch([epoch, tree.root, tree.totalRewards, tree.totalContribution]));
    return tree;
  };
  const tree = await reportEpoch((epoch) => [
    { account: node.address, epoch, amount: parseEther('1.25'), contribution: 5000n },
    { account: other, epoch, amount: parseEther('0.5'), contribution: 2000n },
  ]);
  const leaf = tree.leaves[0]!;
  answers.set(node.address.toLowerCase(), { claimable: [{ ...leaf, proof: tree.proof(node.address) }] });
  return { contracts, tree, leaf, answers, oracleUrl, reportEpoch, stop: () => new Promise((resolve) => server.close(() => resolve())) };
}
