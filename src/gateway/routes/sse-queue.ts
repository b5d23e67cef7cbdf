/**
 * Writes SSE events without holding up the generation: `send` queues an event and returns at once, so the next
 * decode step is requested while the previous token is still on its way to the client (awaiting each write would
 * add the web stream's latency to every token). Backpressure still holds: past MAX_QUEUED_EVENTS unflushed events,
 * `send` waits for the client to catch up.
 */
import type { SSEStreamingApi } from 'hono/streaming';

const MAX_QUEUED_EVENTS = 64;

export class SseQueue {
  private tail: Promise<void> = Promise.resolve();
  private queued = 0;
  private failed = false;

  constructor(private readonly stream: SSEStreamingApi) {}

  /** Queues `data`; waits only when the client has fallen MAX_QUEUED_EVENTS events behind. */
  async send(data: string): Promise<void> {
    this.queued++;
    this.tail = this.tail.then(async () => {
      try {
        if (!this.failed && !this.stream.aborted && !this.stream.closed) await this.stream.writeSSE({ data });
      } catch {
        // the client went away; the request's abort signal ends the generation
        this.failed = true;
      } finally {
        this.queued--;
      }
    });
    if (this.queued > MAX_QUEUED_EVENTS) await this.tail;
  }

  /** Resolves once every queued event is written (or the client is gone). */
  flush(): Promise<void> {
    return this.tail;
  }
}
