/**
 * ggml's tensor type ids (the `type` field of a GGUF tensor info) and their block geometry. We run only a few of
 * them, but every type ggml defines is listed so that a file using another one still parses: its tensors can be
 * bounds-checked at open, and reading one fails with a clear UnsupportedQuantizationError instead of "corrupt".
 */
import type { TensorType } from './types.js';

export const GgmlType = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q5_0: 6,
  Q5_1: 7,
  Q8_0: 8,
  Q8_1: 9,
  Q2_K: 10,
  Q3_K: 11,
  Q4_K: 12,
  Q5_K: 13,
  Q6_K: 14,
  Q8_K: 15,
  IQ2_XXS: 16,
  IQ2_XS: 17,
  IQ3_XXS: 18,
  IQ1_S: 19,
  IQ4_NL: 20,
  IQ3_S: 21,
  IQ2_S: 22,
  IQ4_XS: 23,
  I8: 24,
  I16: 25,
  I32: 26,
  I64: 27,
  F64: 28,
  IQ1_M: 29,
  BF16: 30,
  TQ1_0: 34,
  TQ2_0: 35,
  MXFP4: 39,
} as const;

export interface GgmlTypeInfo {
  readonly id: number;
  readonly name: string;
  /** Elements per block (1 for plain types). */
  readonly blockSize: number;
  /** Bytes per block. */
  readonly typeSize: number;
  /** Our storage type when we can run it. */
  readonly tensorType?: TensorType;
}

// [id, name, elements per block, bytes per block, our type]
const TABLE: ReadonlyArray<readonly [number, string, number, number, TensorType?]> = [
  [0, 'F32', 1, 4, 'f32'],
  [1, 'F16', 1, 2, 'f16'],
  [2, 'Q4_0', 32, 18, 'q4_0'],
  [3, 'Q4_1', 32, 20, 'q4_1'],
  [6, 'Q5_0', 32, 22, 'q5_0'],
  [7, 'Q5_1', 32, 24, 'q5_1'],
  [8, 'Q8_0', 32, 34, 'q8_0'],
  [9, 'Q8_1', 32, 36],
  [10, 'Q2_K', 256, 84],
  [11, 'Q3_K', 256, 110],
  [12, 'Q4_K', 256, 144, 'q4_k'],
  [13, 'Q5_K', 256, 176, 'q5_k'],
  [14, 'Q6_K', 256, 210, 'q6_k'],
  [15, 'Q8_K', 256, 292],
  [16, 'IQ2_XXS', 256, 66],
  [17, 'IQ2_XS', 256, 74],
  [18, 'IQ3_XXS', 256, 98],
  [19, 'IQ1_S', 256, 50],
  [20, 'IQ4_NL', 32, 18],
  [21, 'IQ3_S', 256, 110],
  [22, 'IQ2_S', 256, 82],
  [23, 'IQ4_XS', 256, 136],
  [24, 'I8', 1, 1],
  [25, 'I16', 1, 2],
  [26, 'I32', 1, 4],
  [27, 'I64', 1, 8],
  [28, 'F64', 1, 8],
  [29, 'IQ1_M', 256, 56],
  [30, 'BF16', 1, 2, 'bf16'],
  [34, 'TQ1_0', 256, 54],
  [35, 'TQ2_0', 256, 66],
  [39, 'MXFP4', 32, 17],
];

const BY_ID = new Map<number, GgmlTypeInfo>(
  TABLE.map(([id, name, blockSize, typeSize, tensorType]) => [id, { id, name, blockSize, typeSize, tensorType }]),
);

/** Geometry of a ggml type id, or undefined for an id ggml does not define (as far as we know). */
export function ggmlTypeInfo(id: number): GgmlTypeInfo | undefined {
  return BY_ID.get(id);
}

/** Human name of a ggml type id, also for unknown ids. */
export function ggmlTypeName(id: number): string {
  return BY_ID.get(id)?.name ?? `GGML type #${id}`;
}

const ID_BY_TENSOR_TYPE: Record<TensorType, number> = {
  f32: GgmlType.F32,
  f16: GgmlType.F16,
  bf16: GgmlType.BF16,
  q8_0: GgmlType.Q8_0,
  q4_0: GgmlType.Q4_0,
  q4_1: GgmlType.Q4_1,
  q5_0: GgmlType.Q5_0,
  q5_1: GgmlType.Q5_1,
  q4_k: GgmlType.Q4_K,
  q5_k: GgmlType.Q5_K,
  q6_k: GgmlType.Q6_K,
};

/** The ggml type id that stores our TensorType byte for byte. */
export function ggmlTypeOf(type: TensorType): number {
  return ID_BY_TENSOR_TYPE[type];
}
