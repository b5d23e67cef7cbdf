/**
 * Node identity end to end on an in-process swarm: a server given an Ethereum account announces its address with a
 * binding that verifies, and the gateway's ModelHost credits only such addresses — never an unbound `ethAddress`
 * setting, nor a record that copies another server's binding.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { verifyBinding } from '../../src/chain/binding.js';
import { ModelHost } from '../../src/gateway/model-host.js';
import type { SwarmNode } from '../../src/swarm/node.js';
import { createRegistry, type Registry } from '../../src/swarm/registry/index.js';
import type { LoadedModelSource } from '../../src/model/load.js';
import { openStories, STORIES_GGUF } from '../support/models.js';
import { FAST, serverInput, startTestSwarm, type TestSwarm } from '../support/swarm.js';
import { eventually } from '../support/wait.js';

const account = privateKeyToAccount(generatePrivateKey());
const CLAIMED = privateKeyToAccount(generatePrivateKey()).address;

let source: LoadedModelSource;
let swarm: TestSwarm;
let forgerRegistry: Registry;
let clientRegistry: Registry;
let host: ModelHost;
let forger: SwarmNode;

beforeAll(async () => {
  source = await openStories();
  // server 0 has an account (bound); server 1 only claims an address (the old --eth-address, unbound)
  swarm = await startTestSwarm(source, [{ start: 0, end: 3 }, { start: 3, end: 5 }], (i) => (i === 1 ? { ethAddress: CLAIMED } : {}), (i) => (i === 0 ? { ethAccount: account } : {}));
  // a forger announces server 0's address with server 0's binding copied into its own (validly self-signed) record
  forger = await swarm.client();
  forgerRegistry = await createRegistry(forger, FAST);
  const client = await swarm.client();
  clientRegistry = await createRegistry(client, FAST);
  host = new ModelHost({ node: client, registry: clientRegistry }, { name: 'stories', model: { model: STORIES_GGUF, modelId: swarm.modelId } });
  await host.start();
});

afterAll(async () => {
  await host?.close();
  await forgerRegistry?.close();
  await clientRegistry?.close();
  await swarm?.stop();
  source?.close();
});

describe('Ethereum identity in server records', () => {
  it('a server with an account announces its address with a binding that verifies', async () => {
    const bound = swarm.servers[0]!.server.peerId;
    const records = await clientRegistry.lookup(swarm.modelId, { numBlocks: 5 });
    const record = records.find((r) => r.record.peerId === bound)?.record;
    expect(record?.ethAddress).toBe(account.address);
    expect(record?.ethBinding).toBeDefined();
    const { issuedAt, signature } = record!.ethBinding!;
    expect(await verifyBinding({ peerId: bound, ethAddress: account.address, issuedAt: BigInt(issuedAt), signature: signature as `0x${string}` }, bound)).toBe(true);
    // the unbound claim is announced as before, without a binding
    const claimed = records.find((r) => r.record.peerId === swarm.servers[1]!.server.peerId)?.record;
    expect(claimed).toMatchObject({ ethAddress: CLAIMED });
    expect(claimed?.ethBinding).toBeUndefined();
  });

  it('the gateway credits only bound addresses: not an unbound claim, not a copied binding', async () => {
    const bound = swarm.servers[0]!.server.peerId;
    const stolen = (await clientRegistry.lookup(swarm.modelId, { numBlocks: 5 })).find((r) => r.record.peerId === bound)!.record.ethBinding!;
    // too slow to be routed through (it serves nothing), but a record the gateway reads like any other
    await forgerRegistry.announce({ ...serverInput(swarm.modelId, 3, 5, 5), throughput: { compute: 0.001, network: 0.001 }, ethAddress: account.address, ethBinding: stolen });
    await eventually(async () => {
      await host.refresh();
      return host.snapshot().servers.some((s) => s.peerId === forger.peerId);
    }, 20_000, 200);
    // the dashboard's view shows only verified addresses: the forger's copied binding and the unbound claim show none
    const shown = (peerId: string) => host.snapshot().servers.find((s) => s.peerId === peerId)?.ethAddress;
    expect(shown(forger.peerId)).toBeNull();
    expect(shown(swarm.servers[1]!.server.peerId)).toBeNull();
    expect(shown(bound)).toBe(account.address);

    const prompt = host.tokenizer.encode('Once upon a time');
    const hosted = await host.generate(prompt, { maxTokens: 2, temperature: 0 });
    for await (const _ of hosted.stream);
    expect(hosted.usage().map((u) => u.peerId).sort()).toEqual(swarm.servers.map((s) => s.server.peerId).sort());
    expect(hosted.ethAddressOf(bound)).toBe(account.address);
    expect(hosted.ethAddressOf(swarm.servers[1]!.server.peerId)).toBeNull();
    expect(hosted.ethAddressOf(forger.peerId)).toBeNull();
  });
});
