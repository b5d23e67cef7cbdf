/** Stop tokens and stop strings for streamed text. */

/** True when `id` is one of `stopTokens`. */
export function isStopToken(id: number, stopTokens: ReadonlySet<number> | readonly number[]): boolean {
  return stopTokens instanceof Set ? stopTokens.has(id) : (stopTokens as readonly number[]).includes(id);
}

export interface StopResult {
  /** Text safe to show now: never contains (a part of) a stop string. */
  readonly emit: string;
  /** True once a stop string has been seen; the stop string and everything after it are dropped. */
  readonly stopped: boolean;
}

/**
 * Filters streamed text deltas against stop strings. Text that could be the start of a stop string is held back
 * until the next delta settles it, so a stop string is never emitted, even when it arrives split across deltas.
 * At the end of a generation that did not stop on a string, call `flush()` to release the held-back text.
 */
export class StopMatcher {
  private readonly stops: readonly string[];
  private readonly stopTokens: ReadonlySet<number>;
  private held = '';
  private done = false;
  private hit: string | undefined;

  constructor(stopStrings: readonly string[] = [], stopTokens: Iterable<number> = []) {
    this.stops = [...new Set(stopStrings.filter((s) => typeof s === 'string' && s.length > 0))];
    this.stopTokens = new Set(stopTokens);
  }

  /** True once a stop string was matched. */
  get stopped(): boolean {
    return this.done;
  }

  /** The stop string that ended the text, if any. */
  get matched(): string | undefined {
    return this.hit;
  }

  /** Text currently held back. */
  get pending(): string {
    return this.held;
  }

  /** True when `id` is one of this matcher's stop tokens. */
  isStopToken(id: number): boolean {
    return this.stopTokens.has(id);
  }

  /** Consumes one text delta. */
  push(delta: string): StopResult {
    if (this.done) return { emit: '', stopped: true };
    const text = this.held + delta;
    if (this.stops.length === 0) {
      this.held = '';
      return { emit: text, stopped: false };
    }
    // Earliest occurrence of any stop string.
    let at = -1;
    for (const stop of this.stops) {
      const i = text.indexOf(stop);
      if (i >= 0 && (at < 0 || i < at || (i === at && stop.length > this.hit!.length))) {
        at = i;
        this.hit = stop;
      }
    }
    if (at >= 0) {
      this.done = true;
      this.held = '';
      return { emit: text.slice(0, at), stopped: true };
    }
    // Hold back the longest suffix that is a proper prefix of some stop string.
    let hold = 0;
    for (const stop of this.stops) {
      const maxLen = Math.min(stop.length - 1, text.length);
      for (let len = maxLen; len > hold; len--) {
        if (text.endsWith(stop.slice(0, len))) {
          hold = len;
          break;
        }
      }
    }
    this.held = hold > 0 ? text.slice(text.length - hold) : '';
    return { emit: hold > 0 ? text.slice(0, text.length - hold) : text, stopped: false };
  }

  /** Ends the stream: returns the held-back text (empty after a stop). */
  flush(): string {
    const rest = this.done ? '' : this.held;
    this.held = '';
    return rest;
  }
}

