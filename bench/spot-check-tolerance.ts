/**
 * How far honest replies to the same span input differ, against what cheats produce, in the spot-check metric
 * (wire/attestation.ts rowDeviation: the largest over rows of rms(a − b) / rms(b)); and what attesting a step costs.
 * Not part of the test suite:
 *
 *     npx tsx bench/spot-check-tolerance.ts [--model PATH] [--steps N] [--prompt N]
 *
 * The reference is the span on 1 thread, unbatched, f32. Each honest variant runs the same inputs (a prompt of
 * --prompt tokens as one step, then --steps single-token steps): 2 threads; decode batched with 3 other sessions;
 * f16 on the wire (inputs and outputs rounded through the codec, on 1 vs 2 threads); another engine fingerprint
 * (f32 activations in the quantized matmuls instead of int8). The cheats: 1 % noise on the
 * outputs (σ = 1 % of the row's rms), 0.1 % noise, and the middle block skipped. Prints one JSON line per variant.
 */
import '../src/util/polyfills.js';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { parseArgs } from 'node:util';
import { loadSpan } from '../src/engine/span-executor.js';
import type { SpanExecutor } from '../src/engine/types.js';
import { DEFAULT_MODEL_PATH } from '../src/model/default-model.js';
import { openModel, type LoadedModelSource } from '../src/model/load.js';
import { asReceived, DEVIATION_TOLERANCE, HistoryChain, rowDeviation, signAttestation, tensorDigest, verifyAttestation } from '../src/wire/attestation.js';

const { values } = parseArgs({ options: { model: { type: 'string' }, steps: { type: 'string' }, prompt: { type: 'string' } } });
const source = await openModel(values.model ?? DEFAULT_MODEL_PATH);
const steps = Number(values.steps ?? 32);
const promptTokens = Number(values.prompt ?? 16);
const c = source.config;
const H = c.hiddenSize;
const range = { start: 0, end: c.numLayers };

let seed = 12345;
const uniform = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
// inputs shaped like embeddings: rows of rms ~1
const inputs: Float32Array[] = [Float32Array.from({ length: promptTokens * H }, uniform), ...Array.from({ length: steps }, () => Float32Array.from({ length: H }, uniform))];

type Run = (span: SpanExecutor, input: Float32Array, index: number) => Promise<Float32Array>;

async function outputsOf(model: LoadedModelSource, threads: number, options: { batched?: boolean; codec?: 'f16'; noise?: number; f32Activations?: boolean } = {}): Promise<Float32Array[]> {
  const span = await loadSpan(model, range, { threads, maxBatch: options.batched ? 4 : 1, ...(options.f32Activations ? { quantizedActivations: false } : {}) });
  const id = 'checked';
  span.openSession(id, promptTokens + steps);
  const others = ['o1', 'o2', 'o3'];
  if (options.batched) for (const other of others) span.openSession(other, promptTokens + steps + 1);
  const run: Run = async (s, input, index) => {
    if (!options.batched || index === 0) return s.step({ sessionId: id, hidden: input });
    const outs = await s.stepBatch([{ sessionId: id, hidden: input }, ...others.map((other) => ({ sessionId: other, hidden: Float32Array.from({ length: H }, uniform) }))]);
    return outs[0]!;
  };
  const outs: Float32Array[] = [];
  for (const [index, raw] of inputs.entries()) {
    const input = options.codec ? asReceived(raw, H, options.codec) : raw;
    let out = await run(span, input, index);
    if (options.noise) out = out.map((v, i, all) => v + options.noise! * rmsOfRow(all, Math.floor(i / H)) * uniform() * Math.sqrt(3));
    outs.push(options.codec ? asReceived(out, H, options.codec) : out);
  }
  await span.dispose();
  return outs;
}

function rmsOfRow(values: Float32Array, row: number): number {
  let sum = 0;
  for (let i = row * H; i < (row + 1) * H; i++) sum += values[i]! * values[i]!;
  return Math.sqrt(sum / H);
}

function skipping(model: LoadedModelSource, block: number): LoadedModelSource {
  const skipped = new Set([`blk.${block}.attn_output`, `blk.${block}.ffn_down`]);
  return Object.assign(Object.create(model) as LoadedModelSource, {
    readTensor: (name: string) => {
      const t = model.readTensor(name);
      return skipped.has(name) ? { ...t, data: new Uint8Array(t.data.length) } : t;
    },
  });
}

const maxDeviation = (a: Float32Array[], b: Float32Array[]) => Math.max(...a.map((out, i) => rowDeviation(out, b[i]!, H)));
const print = (variant: string, deviation: number, tolerance: number) => console.log(JSON.stringify({ model: source.location.split('/').pop(), hidden: H, blocks: c.numLayers, variant, maxDeviation: Number(deviation.toExponential(3)), tolerance, flagged: deviation > tolerance }));

const reference = await outputsOf(source, 1);
print('honest: 2 threads', maxDeviation(await outputsOf(source, 2), reference), DEVIATION_TOLERANCE.f32);
print('honest: batched with 3 sessions', maxDeviation(await outputsOf(source, 1, { batched: true }), reference), DEVIATION_TOLERANCE.f32);
const f16 = await outputsOf(source, 1, { codec: 'f16' });
print('honest: f16 wire, 1 vs 2 threads', maxDeviation(await outputsOf(source, 2, { codec: 'f16' }), f16), DEVIATION_TOLERANCE.f16);
print('honest: f16 wire batched vs alone', maxDeviation(await outputsOf(source, 1, { codec: 'f16', batched: true }), f16), DEVIATION_TOLERANCE.f16);
print('honest: another engine (f32 activations, not int8)', maxDeviation(await outputsOf(source, 1, { f32Activations: true }), reference), DEVIATION_TOLERANCE.f32);
print('cheat: 1% noise', maxDeviation(await outputsOf(source, 1, { noise: 0.01 }), reference), DEVIATION_TOLERANCE.f32);
print('cheat: 0.1% noise', maxDeviation(await outputsOf(source, 1, { noise: 0.001 }), reference), DEVIATION_TOLERANCE.f32);
print(`cheat: block ${Math.floor(c.numLayers / 2)} skipped`, maxDeviation(await outputsOf(skipping(source, Math.floor(c.numLayers / 2)), 1), reference), DEVIATION_TOLERANCE.f32);

// the cost of attesting a decode step (server: 2 digests + 1 signature; client: 2 digests + 1 verification)
const key = await generateKeyPair('Ed25519');
const { peerIdFromPrivateKey } = await import('@libp2p/peer-id');
const peerId = peerIdFromPrivateKey(key).toString();
const chain = new HistoryChain();
const N = 2000;
const row = inputs[1]!;
let started = performance.now();
const signatures: string[] = [];
const claims = [];
for (let i = 0; i < N; i++) {
  const claim = { sessionId: 's', position: i, tokens: 1, spanStart: 0, spanEnd: c.numLayers, dtype: 'f32' as const, history: chain.extend(i, 1, tensorDigest(row)), output: tensorDigest(reference[1]!) };
  claims.push(claim);
  signatures.push(await signAttestation(key, claim));
}
const signUs = ((performance.now() - started) * 1000) / N;
started = performance.now();
for (let i = 0; i < N; i++) if (!(await verifyAttestation(peerId, claims[i]!, signatures[i]!))) throw new Error('verification failed');
const verifyUs = ((performance.now() - started) * 1000) / N;
console.log(JSON.stringify({ attestation: { hidden: H, serverSignUsPerStep: Math.round(signUs), clientVerifyUsPerStep: Math.round(verifyUs) } }));
source.close();
