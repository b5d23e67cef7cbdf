/**
 * com.microsoft.MatMulNBits alone (onnxruntime-node, CPU, accuracy_level 4, 1 thread): time per call for a few
 * rows (1 = decode) at the LM head's shape and the layer shapes of SmolLM2-135M, for each weight form the engine
 * can emit. Shows what a weight form costs before it goes into a model (why Q6_K runs at 8 bits, block 32).
 *
 *   npx tsx bench/matmul-nbits.ts [--rows 1,4] [--ms 1000] [--shapes lm_head,down]
 *
 * Each line of stdout is one JSON measurement: shape, form, rows, µs per call (median of rounds that alternate
 * between the forms, so that other load on the machine falls on all of them alike).
 */
import { parseArgs } from 'node:util';
import { DataType, GraphBuilder } from '../src/engine/onnx/graph.js';
import { createOrtSession, ort } from '../src/engine/runtime.js';

const { values } = parseArgs({ options: { rows: { type: 'string', default: '1,4' }, ms: { type: 'string', default: '1000' }, shapes: { type: 'string' } } });
const ROUNDS = 9;

const SHAPES = [
  { name: 'lm_head', n: 49152, k: 576 },
  { name: 'gate_up', n: 3072, k: 576 },
  { name: 'down', n: 576, k: 1536 },
  { name: 'qkv', n: 960, k: 576 },
  { name: 'o', n: 576, k: 576 },
  // Llama 3.2 1B's layers, whose 2048-wide rows keep K types (Q6_K attn_v / ffn_down in the K mixes).
  { name: '1b_v', n: 512, k: 2048 },
  { name: '1b_down', n: 2048, k: 8192 },
  { name: '1b_gate_up', n: 16384, k: 2048 },
  { name: 'tinyllama_lm_head', n: 32000, k: 2048 },
];
interface Form {
  readonly bits: 4 | 8;
  readonly blockSize: number;
  /** Q6_K's 16-element blocks, each padded with 16 zero weights into a 32-element block (exact, twice the bytes). */
  readonly padded?: boolean;
}
const FORMS: readonly Form[] = [
  { bits: 8, blockSize: 16 },
  { bits: 8, blockSize: 32, padded: true },
  { bits: 8, blockSize: 32 },
  { bits: 8, blockSize: 64 },
  { bits: 4, blockSize: 32 },
];

function random(bytes: number, seed: number): Uint8Array {
  const out = new Uint8Array(bytes);
  let s = seed >>> 0;
  for (let i = 0; i < bytes; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}

async function matmulSession(n: number, inputs: number, { bits, blockSize, padded }: Form): Promise<ort.InferenceSession> {
  const g = new GraphBuilder('mm');
  let x = g.input('x', DataType.FLOAT, ['R', inputs]);
  const k = padded ? 2 * inputs : inputs;
  if (padded) {
    const halves = g.op('Reshape', [x, g.int64([-1, inputs / 16, 16])]);
    x = g.op('Reshape', [g.op('Pad', [halves, g.int64([0, 0, 0, 0, 0, 16])]), g.int64([-1, k])]);
  }
  const blocks = k / blockSize;
  const b = g.weight('w.q', DataType.UINT8, [n, blocks, (blockSize * bits) / 8], random((n * k * bits) / 8, n + k + bits));
  const scales = new Float32Array(n * blocks).fill(0.01);
  const s = g.weight('w.s', DataType.FLOAT, [n * blocks], new Uint8Array(scales.buffer));
  g.node('MatMulNBits', [x, b, s], { domain: 'com.microsoft', attrs: { K: k, N: n, bits, block_size: blockSize, accuracy_level: 4 }, outputs: ['y'] });
  g.output('y', DataType.FLOAT, ['R', n]);
  return createOrtSession(g, { threads: 1 });
}

/** µs per call of each session, timed in rounds that alternate between them (so load on the machine hits all alike); medians. */
async function timeAlternating(sessions: readonly ort.InferenceSession[], k: number, rows: number, budgetMs: number): Promise<number[]> {
  const feeds = { x: new ort.Tensor('float32', Float32Array.from({ length: rows * k }, (_, i) => Math.sin(i)), [rows, k]) };
  for (const s of sessions) for (let i = 0; i < 3; i++) await s.run(feeds);
  const rounds = sessions.map(() => [] as number[]);
  for (let r = 0; r < ROUNDS; r++) {
    for (const [i, s] of sessions.entries()) {
      let calls = 0;
      const t0 = performance.now();
      while (performance.now() - t0 < budgetMs / ROUNDS) {
        await s.run(feeds);
        calls++;
      }
      rounds[i]!.push(((performance.now() - t0) * 1000) / calls);
    }
  }
  return rounds.map((xs) => xs.sort((a, c) => a - c)[Math.floor(ROUNDS / 2)]!);
}

for (const shape of SHAPES.filter((s) => values.shapes === undefined || values.shapes.split(',').includes(s.name))) {
  const sessions = await Promise.all(FORMS.map((f) => matmulSession(shape.n, shape.k, f)));
  for (const rows of values.rows!.split(',').map(Number)) {
    const times = await timeAlternating(sessions, shape.k, rows, Number(values.ms));
    FORMS.forEach((form, i) => {
      const us = times[i]!;
      const gflops = (2 * rows * shape.n * shape.k) / (us * 1e3);
      process.stdout.write(JSON.stringify({ shape: shape.name, n: shape.n, k: shape.k, bits: form.bits, block: form.blockSize, ...(form.padded ? { padded: true } : {}), rows, us: Math.round(us * 10) / 10, gflops: Math.round(gflops * 10) / 10 }) + '\n');
    });
  }
  await Promise.all(sessions.map((s) => s.release()));
}
