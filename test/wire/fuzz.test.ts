/**
 * Fuzzing the receive path: random bytes, bit flips, truncations, length-prefix lies and structured header
 * mutations are fed through FrameDecoder + decodeMessage. Each input must either decode to a valid message or throw
 * a CorollaError subclass: never another exception type, never a hang, and within a bounded time.
 */
import { describe, expect, it } from 'vitest';
import { CorollaError } from '../../src/errors.js';
import { FrameDecoder, encodeFrame, splitFrame } from '../../src/wire/frames.js';
import { decodeMessage, encodeMessage, validateMessage, type Message, type MessageInput } from '../../src/wire/messages.js';
import type { WireDtype } from '../../src/wire/tensor-codec.js';
import { seededRandom } from '../support/random.js';

function prng(seed: number) {
  const next = seededRandom(seed);
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  return { next, int, pick };
}

const MAX_FRAME = 1 << 20;
const r = prng(20261122);

function corpus(): Uint8Array[] {
  const frames: Uint8Array[] = [];
  const plain: Message[] = [
    { type: 'open', sessionId: 'abc', maxLength: 512, spanStart: 2, spanEnd: 9, codec: 'int8' },
    { type: 'opened', sessionId: 'abc', position: 0, cacheTokensLeft: 4096 },
    { type: 'close', sessionId: 'abc' },
    { type: 'closed', sessionId: 'abc' },
    { type: 'error', code: 'CACHE_FULL', message: 'full', sessionId: 'abc', stepId: 2 },
    { type: 'ping', nonce: 17 },
    { type: 'pong', nonce: 17 },
  ];
  for (const m of plain) frames.push(encodeMessage(m));
  for (const dtype of ['f32', 'f16', 'int8'] as WireDtype[]) {
    for (const [tokens, width] of [[1, 8], [2, 70], [3, 5]] as const) {
      const data = new Float32Array(tokens * width).map((_, i) => Math.sin(i) * 3);
      const tensor = { data, shape: [tokens, width], dtype };
      const inputs: MessageInput[] = [
        { type: 'step', sessionId: 's', stepId: 1, position: 4, tokens },
        { type: 'stepResult', sessionId: 's', stepId: 1, position: 4 },
        { type: 'forward', requestId: 'q', spanStart: 0, spanEnd: 3 },
        { type: 'forwardResult', requestId: 'q' },
      ];
      for (const input of inputs) frames.push(encodeMessage(input, tensor));
    }
  }
  return frames;
}

const VALID = corpus();
const JSON_VALUES: unknown[] = [
  -1, 0, 1, 1.5, 2 ** 31, 2 ** 53, -(2 ** 53), 1e308, -0, '', 'x', 'f16', 'int8', 'a'.repeat(200), null, true, false,
  [], [1], [1, 2], [2, 8], [0, 8], [1, 1e9], {}, { dtype: 'f32' }, { dtype: 'f16', shape: [1, 8] }, 'step', '\u0000',
];

function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = r.int(256);
  return out;
}

function mutateHeader(frame: Uint8Array): Uint8Array {
  const { header, payload } = splitFrame(frame);
  const obj = JSON.parse(new TextDecoder().decode(header)) as Record<string, unknown>;
  const keys = Object.keys(obj);
  const edits = 1 + r.int(3);
  for (let e = 0; e < edits; e++) {
    const op = r.int(5);
    const key = r.pick(keys);
    if (op === 0) delete obj[key];
    else if (op === 1) obj[r.pick(['extra', 'tensor', 'type', 'tokens', '__proto__', 'constructor'])] = r.pick(JSON_VALUES);
    else if (op === 2 && typeof obj.tensor === 'object' && obj.tensor !== null) {
      const t = obj.tensor as Record<string, unknown>;
      if (r.next() < 0.5) t.shape = r.pick(JSON_VALUES);
      else t.dtype = r.pick(JSON_VALUES);
    } else obj[key] = r.pick(JSON_VALUES);
  }
  let body = payload;
  if (r.next() < 0.2) body = payload.subarray(0, r.int(payload.length + 1));
  else if (r.next() < 0.1) body = new Uint8Array([...payload, ...randomBytes(1 + r.int(8))]);
  const text = r.next() < 0.1 ? JSON.stringify(obj).slice(0, -1 - r.int(5)) : JSON.stringify(obj);
  return encodeFrame(new TextEncoder().encode(text), body);
}

function mutate(kind: number): { bytes: Uint8Array; kind: string } {
  const base = r.pick(VALID);
  switch (kind) {
    case 0:
      return { bytes: randomBytes(r.int(300)), kind: 'random bytes' };
    case 1: {
      // Random bytes behind a plausible prefix.
      const body = randomBytes(2 + r.int(200));
      const bytes = new Uint8Array(4 + body.length);
      new DataView(bytes.buffer).setUint32(0, body.length);
      bytes.set(body, 4);
      return { bytes, kind: 'random body' };
    }
    case 2: {
      const bytes = base.slice();
      const flips = 1 + r.int(8);
      for (let i = 0; i < flips; i++) bytes[r.int(bytes.length)]! ^= 1 << r.int(8);
      return { bytes, kind: 'bit flips' };
    }
    case 3:
      return { bytes: base.slice(0, r.int(base.length)), kind: 'truncation' };
    case 4: {
      const bytes = base.slice();
      const view = new DataView(bytes.buffer);
      const choice = r.int(3);
      const declared = view.getUint32(0);
      const lie = choice === 0 ? declared + r.int(17) - 8 : choice === 1 ? r.int(2 ** 32) : 0xffffffff - r.int(4);
      view.setUint32(0, Math.max(0, Math.min(0xffffffff, lie)));
      return { bytes, kind: 'length lie' };
    }
    case 5: {
      const bytes = base.slice();
      new DataView(bytes.buffer).setUint16(4, r.next() < 0.5 ? r.int(65536) : Math.max(0, bytes[5]! + r.int(9) - 4));
      return { bytes, kind: 'header length lie' };
    }
    case 6:
      return { bytes: mutateHeader(base), kind: 'header mutation' };
    default: {
      // Several frames, valid and mutated, back to back.
      const parts = Array.from({ length: 2 + r.int(4) }, () => (r.next() < 0.5 ? r.pick(VALID) : mutateHeader(r.pick(VALID))));
      if (r.next() < 0.3) parts.push(mutate(r.int(7)).bytes);
      const bytes = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
      let o = 0;
      for (const p of parts) {
        bytes.set(p, o);
        o += p.length;
      }
      return { bytes, kind: 'stream' };
    }
  }
}

function checkValid(message: { header: Message; tensor?: Float32Array }): void {
  // A decoded message is valid by construction: it re-validates and re-encodes to the same header.
  const header = validateMessage(message.header);
  expect(header).toEqual(message.header);
  if ('tensor' in header) {
    const { dtype, shape } = header.tensor;
    expect(message.tensor!.length).toBe(shape[0]! * shape[1]!);
    const again = decodeMessage(encodeMessage(header, { data: message.tensor!, shape, dtype }));
    expect(again.header).toEqual(header);
  } else {
    expect(message.tensor).toBeUndefined();
    expect(decodeMessage(encodeMessage(header)).header).toEqual(header);
  }
}

describe('fuzzing the receive path', () => {
  it('every input decodes validly or throws a CorollaError, quickly', () => {
    const CASES = 8000;
    const outcomes = new Map<string, number>();
    const count = (key: string) => outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
    let worstMs = 0;
    const start = performance.now();
    for (let c = 0; c < CASES; c++) {
      const { bytes, kind } = mutate(r.int(8));
      const t0 = performance.now();
      // 1. Straight into decodeMessage, as a whole frame.
      try {
        checkValid(decodeMessage(bytes, { maxFrameBytes: MAX_FRAME }));
        count(`frame/${kind}: valid`);
      } catch (e) {
        if (!(e instanceof CorollaError)) throw new Error(`case ${c} (${kind}) threw a non-Corolla error`, { cause: e });
        count(`frame/${kind}: ${e.code}`);
      }
      // 2. Through a FrameDecoder in random chunks; a bad frame's message error does not end the stream.
      const decoder = new FrameDecoder({ maxFrameBytes: MAX_FRAME });
      try {
        for (let o = 0; o < bytes.length; ) {
          const size = 1 + r.int(r.next() < 0.5 ? 8 : 400);
          decoder.push(bytes.subarray(o, o + size));
          o += size;
          for (const frame of decoder.frames()) {
            try {
              checkValid(decodeMessage(frame, { maxFrameBytes: MAX_FRAME }));
              count(`stream/${kind}: valid`);
            } catch (e) {
              if (!(e instanceof CorollaError)) throw new Error(`case ${c} (${kind}): message threw a non-Corolla error`, { cause: e });
              count(`stream/${kind}: ${e.code}`);
            }
          }
        }
        decoder.end();
      } catch (e) {
        if (!(e instanceof CorollaError)) throw new Error(`case ${c} (${kind}): stream threw a non-Corolla error`, { cause: e });
        count(`stream/${kind}: ${e.code}`);
      }
      worstMs = Math.max(worstMs, performance.now() - t0);
    }
    const totalMs = performance.now() - start;
    console.log(
      `fuzz: ${CASES} cases in ${totalMs.toFixed(0)} ms (worst case ${worstMs.toFixed(1)} ms)\n` +
        [...outcomes].sort().map(([k, v]) => `  ${k}: ${v}`).join('\n'),
    );
    expect(worstMs).toBeLessThan(1000);
    expect(totalMs).toBeLessThan(60_000);
    // The fuzzer reaches both outcomes, and every class of error.
    const keys = [...outcomes.keys()].join('\n');
    for (const needle of [': valid', 'MALFORMED', 'FRAME_TOO_LARGE', 'FRAME_TRUNCATED']) expect(keys).toContain(needle);
  });
});
