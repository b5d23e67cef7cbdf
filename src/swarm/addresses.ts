/** IP addresses of multiaddrs and sockets, as Corolla compares them (quotas, lanes). */
import type { Multiaddr } from '@multiformats/multiaddr';

/** The IP address of a multiaddr (ip4 or ip6 component), or undefined (memory transport, relays). */
export function ipOf(address: Multiaddr | undefined): string | undefined {
  return address?.getComponents().find((component) => component.name === 'ip4' || component.name === 'ip6')?.value;
}

/** A socket's remote address as a multiaddr would give it: '::ffff:10.0.0.1' (IPv4 on a dual-stack socket) is '10.0.0.1'. */
export function plainIp(address: string | undefined): string | undefined {
  return address?.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/** The IP of a direct TCP address (ip4/ip6 and tcp, not through a relay), or undefined. */
export function tcpIpOf(address: Multiaddr): string | undefined {
  const names = address.getComponents().map((component) => component.name);
  return names.includes('tcp') && !names.includes('p2p-circuit') ? ipOf(address) : undefined;
}
