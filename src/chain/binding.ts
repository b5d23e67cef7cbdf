/**
 * The binding of an Ethereum address to a libp2p peer id: EIP-712 typed data signed by the Ethereum key, announced
 * in the server's record (which the peer's Ed25519 key signs). Together the two signatures say that one operator
 * holds both keys, so any peer can tell which address a server belongs to: an `ethAddress` without a binding that
 * verifies is only a claim, and must never be paid.
 *
 * The domain has no chainId and no verifying contract: the binding is about keys, the same on every chain.
 */
import type { Address, Hex, LocalAccount } from 'viem';

export const BINDING_DOMAIN = { name: 'Corolla', version: '1' } as const;

export const BINDING_TYPES = {
  PeerBinding: [
    { name: 'peerId', type: 'string' },
    { name: 'ethAddress', type: 'address' },
    /** Unix ms when the Ethereum key signed it. */
    { name: 'issuedAt', type: 'uint64' },
  ],
} as const;

export interface PeerBinding {
  readonly peerId: string;
  readonly ethAddress: Address;
  readonly issuedAt: bigint;
  /** 65-byte secp256k1 signature of the typed data, 0x hex. */
  readonly signature: Hex;
}

/** Signs the binding of `account`'s address to `peerId` (issuedAt: now). */
export async function signBinding(account: LocalAccount, peerId: string, issuedAt: bigint = BigInt(Date.now())): Promise<PeerBinding> {
  const message = { peerId, ethAddress: account.address, issuedAt };
  const signature = await account.signTypedData({ domain: BINDING_DOMAIN, types: BINDING_TYPES, primaryType: 'PeerBinding', message });
  return { ...message, signature };
}

/** True when `binding` is for `peerId` and its signature recovers `binding.ethAddress`; false otherwise (never throws). */
export async function verifyBinding(binding: PeerBinding, peerId: string): Promise<boolean> {
  if (binding.peerId !== peerId) return false;
  try {
    // loaded on first use: a server pays viem's utilities (a third of a second to import) only once it checks a binding
    const { isAddressEqual, recoverTypedDataAddress } = await import('viem/utils');
    const signer = await recoverTypedDataAddress({
      domain: BINDING_DOMAIN,
      types: BINDING_TYPES,
      primaryType: 'PeerBinding',
      message: { peerId: binding.peerId, ethAddress: binding.ethAddress, issuedAt: binding.issuedAt },
      signature: binding.signature,
    });
    return isAddressEqual(signer, binding.ethAddress);
  } catch {
    return false;
  }
}
