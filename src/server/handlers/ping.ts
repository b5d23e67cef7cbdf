/** `ping`: echoes the nonce. */
import type { RequestHandler } from './context.js';

export const handlePing: RequestHandler<'ping'> = (_ctx, _stream, m) => ({ header: { type: 'pong', nonce: m.nonce } });
