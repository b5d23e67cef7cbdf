/** The EIP-712 binding of an Ethereum address to a libp2p peer id: signed by the Ethereum key, refused when tampered. */
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { beforeAll, describe, expect, it } from 'vitest';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { signBinding, verifyBinding, type PeerBinding } from '../../src/chain/binding.js';
import { verifiedEthAddress } from '../../src/client/eth-address.js';
import { createSignedServerRecord, verifyServerRecord } from '../../src/swarm/records/index.js';
import { serverInput } from '../support/swarm.js';

const account = privateKeyToAccount(generatePrivateKey());
const other = privateKeyToAccount(generatePrivateKey());
let peerId: string;
let otherPeerId: string;
let binding: PeerBinding;

beforeAll(async () => {
  const key = await generateKeyPair('Ed25519');
  peerId = peerIdFromPrivateKey(key).toString();
  otherPeerId = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString();
  binding = await signBinding(account, peerId, 1_800_000_000_000n);
});

describe('peer bindings', () => {
  it('binds the account address to the peer id, and verifies', async () => {
    expect(binding).toMatchObject({ peerId, ethAddress: account.address, issuedAt: 1_800_000_000_000n });
    expect(binding.signature).toMatch(/^0x[0-9a-f]{130}$/);
    expect(await verifyBinding(binding, peerId)).toBe(true);
  });

  it('refuses a binding shown for another peer, or with a tampered peer id, address, time or signature', async () => {
    expect(await verifyBinding(binding, otherPeerId)).toBe(false);
    expect(await verifyBinding({ ...binding, peerId: otherPeerId }, otherPeerId)).toBe(false);
    expect(await verifyBinding({ ...binding, ethAddress: other.address }, peerId)).toBe(false);
    expect(await verifyBinding({ ...binding, issuedAt: binding.issuedAt + 1n }, peerId)).toBe(false);
    const flipped = `${binding.signature.slice(0, 10)}${binding.signature[10] === '0' ? '1' : '0'}${binding.signature.slice(11)}` as `0x${string}`;
    expect(await verifyBinding({ ...binding, signature: flipped }, peerId)).toBe(false);
    expect(await verifyBinding({ ...binding, signature: '0x1234' }, peerId)).toBe(false);
    // another key's signature over the same claim
    const byOther = await signBinding(other, peerId, binding.issuedAt);
    expect(await verifyBinding({ ...byOther, ethAddress: account.address }, peerId)).toBe(false);
  });
});

describe('bindings in server records', () => {
  it('a record carries the binding (validated), and only a verifying one makes its ethAddress trusted', async () => {
    const key = await generateKeyPair('Ed25519');
    const id = peerIdFromPrivateKey(key).toString();
    const own = await signBinding(account, id);
    const input = { ...serverInput('org/model', 0, 4, 4), addrs: [] };
    const bound = await createSignedServerRecord(key, { ...input, ethAddress: account.address, ethBinding: { issuedAt: Number(own.issuedAt), signature: own.signature } }, { ttlMs: 60_000 });
    const verified = await verifyServerRecord(bound);
    expect(verified.ok).toBe(true);
    if (!verified.ok) return;
    expect(verified.record.ethBinding).toEqual({ issuedAt: Number(own.issuedAt), signature: own.signature });
    expect(await verifiedEthAddress(verified.record)).toBe(account.address);
    // an unbound claim, a binding of another peer (replayed), another address: none is trusted
    expect(await verifiedEthAddress({ ...verified.record, ethBinding: undefined })).toBeNull();
    expect(await verifiedEthAddress({ ...verified.record, ethBinding: { issuedAt: Number(binding.issuedAt), signature: binding.signature } })).toBeNull();
    expect(await verifiedEthAddress({ ...verified.record, ethAddress: other.address })).toBeNull();
    // a malformed binding makes the record invalid (a writer never signs it; a reader refuses it)
    await expect(createSignedServerRecord(key, { ...input, ethAddress: account.address, ethBinding: { issuedAt: 1, signature: '0x12' } }, { ttlMs: 60_000 })).rejects.toThrow(/ethBinding/);
  });
});
