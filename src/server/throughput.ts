/**
 * What a server announces about itself: measured compute throughput, estimated network throughput, accelerator,
 * weight dtype/quantization, and the memory one block takes (for sizing a span).
 */
import { execFile } from 'node:child_process';
import os from 'node:os';
import type { SpanExecutor } from '../engine/types.js';
import type { ModelSource, TensorType } from '../model/types.js';
import type { Accelerator } from '../swarm/records/index.js';
import { DEFAULT_NETWORK_BPS } from './defaults.js';

export interface ComputeMeasurement {
  /** Single-token decode steps per second through the whole span (batch 1, with cache): 1 / median step time. */
  readonly stepsPerSecond: number;
  readonly steps: number;
  readonly ms: number;
  /** Median milliseconds per step. */
  readonly medianMs: number;
}

/**
 * Times single-token decode steps through `span` on a scratch session: `warmup` untimed steps fill a short context,
 * then timed steps (each rewound to that same position, so every step sees the same context) run until `minMs`
 * have passed (at least `minSteps`, at most `maxSteps`). The rate is 1 / the median step time, which a GC pause
 * or a busy neighbour core does not skew. When the KV budget cannot hold the scratch session, it times 1-token
 * stateless forwards instead (the same work at position 0).
 */
export async function measureCompute(
  span: SpanExecutor,
  options: { warmup?: number; minSteps?: number; maxSteps?: number; minMs?: number } = {},
): Promise<ComputeMeasurement> {
  const warmup = Math.max(1, options.warmup ?? 8);
  const minSteps = options.minSteps ?? 5;
  const maxSteps = Math.max(minSteps, options.maxSteps ?? 400);
  const minMs = options.minMs ?? 300;
  const hidden = new Float32Array(span.hiddenSize);
  for (let i = 0; i < hidden.length; i++) hidden[i] = Math.sin(i + 1) * 0.5; // a plausible, non-degenerate row
  const id = 'corolla-throughput-probe';
  const length = warmup + 1;
  const useSession = span.cacheTokensLeft() >= length;
  if (useSession) span.openSession(id, length);
  try {
    for (let i = 0; i < warmup; i++) await (useSession ? span.step({ sessionId: id, hidden }) : span.forward(hidden, 1));
    const step = () => (useSession ? span.step({ sessionId: id, hidden, position: warmup }) : span.forward(hidden, 1));
    const times: number[] = [];
    const started = performance.now();
    while (times.length < maxSteps && (times.length < minSteps || performance.now() - started < minMs)) {
      const t = performance.now();
      await step();
      times.push(performance.now() - t);
    }
    const ms = performance.now() - started;
    times.sort((a, b) => a - b);
    const medianMs = times[times.length >> 1]!;
    return { stepsPerSecond: medianMs > 0 ? 1000 / medianMs : 0, steps: times.length, ms, medianMs };
  } finally {
    if (useSession) span.closeSession(id);
  }
}

/**
 * Hidden-state tokens per second a link of `bitsPerSecond` carries for one hop: every token goes in and comes back
 * out once, at `bytesPerValue` per value (2 for the f16 codec most clients use).
 */
export function estimateNetworkThroughput(hiddenSize: number, options: { bitsPerSecond?: number; bytesPerValue?: number } = {}): number {
  const bps = options.bitsPerSecond ?? DEFAULT_NETWORK_BPS;
  const bytesPerToken = hiddenSize * (options.bytesPerValue ?? 2) * 2;
  return bps / 8 / bytesPerToken;
}

/**
 * The accelerator this process would compute on. With `nvidia-smi` present and the CUDA execution provider in use,
 * the GPU's name and memory; otherwise the CPU's model name.
 */
export async function detectAccelerator(options: { cuda?: boolean; timeoutMs?: number } = {}): Promise<Accelerator> {
  if (options.cuda) {
    const gpu = await queryGpu(options.timeoutMs ?? 3000);
    if (gpu) return gpu;
  }
  const name = (os.cpus()[0]?.model ?? 'cpu').replace(/\s+/g, ' ').trim().slice(0, 96) || 'cpu';
  return { kind: 'cpu', name: `${name} ×${os.availableParallelism()}`.slice(0, 128) };
}

/** The first GPU `nvidia-smi` reports, or undefined when there is none (or no nvidia-smi). */
export function queryGpu(timeoutMs = 3000): Promise<Accelerator | undefined> {
  return new Promise((resolve) => {
    try {
      execFile('nvidia-smi', ['--query-gpu=name,memory.total', '--format=csv,noheader'], { timeout: timeoutMs }, (error, stdout) => {
        if (error) return resolve(undefined);
        resolve(parseNvidiaSmi(String(stdout)));
      });
    } catch {
      resolve(undefined);
    }
  });
}

/** Parses one line of `nvidia-smi --query-gpu=name,memory.total --format=csv,noheader` ("NVIDIA H100, 81559 MiB"). */
export function parseNvidiaSmi(text: string): Accelerator | undefined {
  const line = text.split('\n').map((l) => l.trim()).find((l) => l.length > 0);
  if (!line) return undefined;
  const comma = line.lastIndexOf(',');
  const name = (comma >= 0 ? line.slice(0, comma) : line).trim().slice(0, 128);
  if (!name) return undefined;
  const memory = comma >= 0 ? /([\d.]+)\s*(MiB|GiB|KiB|MB|GB)?/i.exec(line.slice(comma + 1)) : null;
  const units: Record<string, number> = { kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, mb: 1e6, gb: 1e9 };
  const memoryBytes = memory ? Math.round(Number(memory[1]) * (units[(memory[2] ?? 'MiB').toLowerCase()] ?? 1024 ** 2)) : undefined;
  return { kind: 'cuda', name, ...(memoryBytes !== undefined && Number.isSafeInteger(memoryBytes) ? { memoryBytes } : {}) };
}

/**
 * Bytes per value the engine keeps for a stored weight type (f16/bf16 widen to f32; see engine/weights.ts: 4 or 8
 * bits per value plus f32 scales, and f32 block offsets for the "d·q + m" types).
 */
const ENGINE_BYTES_PER_VALUE: Record<TensorType, number> = {
  f32: 4, f16: 4, bf16: 4, q8_0: 34 / 32, q4_0: 18 / 32, q4_1: 24 / 32, q5_0: 37 / 32, q5_1: 41 / 32, q4_k: 24 / 32, q5_k: 41 / 32, q6_k: 21 / 16,
};

export interface BlockProfile {
  /** Approximate resident bytes of the block's weights inside the engine (one graph). */
  readonly engineBytes: number;
  /** Weight storage as announced: "none" for f32, else the matmul weights' type (q8_0, q4_0, f16…). */
  readonly quantization: string;
}

/** Reads one block's tensors once: its engine footprint and its weight quantization. */
export function profileBlock(source: ModelSource, block = 0): BlockProfile {
  const prefix = `blk.${block}.`;
  let engineBytes = 0;
  let quantization = 'none';
  for (const name of source.tensorNames()) {
    if (!name.startsWith(prefix)) continue;
    const t = source.readTensor(name);
    engineBytes += t.shape.reduce((a, b) => a * b, 1) * (ENGINE_BYTES_PER_VALUE[t.type] ?? 4);
    if (t.type !== 'f32' && quantization === 'none' && /(attn_q|attn_output|ffn_down|ffn_gate|ffn_up)$/.test(name)) quantization = t.type;
  }
  return { engineBytes, quantization };
}
