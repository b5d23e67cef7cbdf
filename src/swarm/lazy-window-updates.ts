/**
 * Yamux window updates only when half the receive window is used up.
 *
 * @chainsafe/libp2p-yamux answers every data frame with a window update, so each step reply (and request) costs its
 * receiver a second message back, and the sender a wake-up to decrypt and read it. The yamux spec leaves the timing
 * to the receiver; go-yamux, for one, waits until half the window is consumed. This does the same: frames that open
 * or acknowledge a stream, and a paused stream's bookkeeping, still go through the original at once.
 */
import { StreamState, YamuxStream } from '@chainsafe/libp2p-yamux/stream';

interface WindowState {
  state: StreamState;
  recvWindow: number;
  recvWindowCapacity: number;
}

let installed = false;

/** Installs the lazy policy on every yamux stream of this process (idempotent). */
export function installLazyWindowUpdates(): void {
  if (installed) return;
  installed = true;
  const proto = YamuxStream.prototype as unknown as { sendWindowUpdate: (this: WindowState) => void };
  const eager = proto.sendWindowUpdate;
  proto.sendWindowUpdate = function (this: WindowState) {
    const established = this.state === StreamState.Established;
    if (established && this.recvWindowCapacity * 2 >= this.recvWindow) return;
    eager.call(this);
  };
}
