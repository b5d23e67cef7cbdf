/**
 * A session's cache capacity depends only on the tokens it must hold (and the model's context), never on its history
 * or its maxLength, so a replayed or rewound session feeds the graph the shapes, and gets the bits, of the one it stands in for.
 */
import { describe, expect, it } from 'vitest';
import { capacityFor } from '../../src/engine/kv-cache.js';

describe('capacityFor', () => {
  it('holds what is needed, within the limit (the model context), with at most 64 rows or an eighth spare', () => {
    for (let n = 1; n <= 20_000; n++) {
      const c = capacityFor(n, 1 << 20);
      expect(c).toBeGreaterThanOrEqual(n);
      expect(c - n).toBeLessThan(Math.max(64, n / 8));
    }
    expect(capacityFor(100, 90)).toBe(90);
    expect(capacityFor(1, 4096)).toBe(64);
  });

  it('a capacity chosen for n is the capacity of every n′ from n up to itself: growing step by step or at once lands on the same shapes', () => {
    for (const limit of [1 << 20, 1000, 4097]) {
      for (let n = 1; n <= Math.min(limit, 9000); n++) {
        const c = capacityFor(n, limit);
        for (const later of [n + 1, Math.floor((n + c) / 2), c]) {
          if (later <= c) expect(capacityFor(later, limit), `n=${n} n′=${later} limit=${limit}`).toBe(c);
        }
      }
    }
  });

  it('grows geometrically: few re-layouts over a long session', () => {
    let relayouts = 0;
    let c = 0;
    for (let n = 1; n <= 32_768; n++) {
      if (n > c) {
        c = capacityFor(n, 1 << 20);
        relayouts++;
      }
    }
    expect(relayouts).toBeLessThan(70); // 64 rows at a time to 512, then an eighth of each power of two
  });
});
