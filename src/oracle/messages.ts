/**
 * The JSON forms of signed receipts and metrics (zod): every bigint a decimal string, bounded to its EIP-712 type,
 * so a malformed item is rejected with the field at fault before any signature is checked.
 */
import { isAddress, type Address, type Hex } from 'viem';
import { z } from 'zod';
import type { NodeMetrics, Receipt, Signed } from '../chain/receipts.js';

const MAX_TEXT = 256;
const UINT32_MAX = 2 ** 32 - 1;

const uint = (bits: number) =>
  z
    .string()
    .regex(/^(0|[1-9][0-9]{0,77})$/, 'a decimal string')
    .transform((value) => BigInt(value))
    .refine((value) => value < 1n << BigInt(bits), `at most ${bits} bits`);

const address = z.string().refine((value) => isAddress(value, { strict: false }), 'an Ethereum address').transform((value) => value.toLowerCase() as Address);
const signature = z.string().regex(/^0x[0-9a-fA-F]{130}$/, 'a 65-byte hex signature').transform((value) => value as Hex);
const text = z.string().min(1).max(MAX_TEXT);
const uint32 = z.number().int().min(0).max(UINT32_MAX);

const receipt = z
  .object({
    sessionId: text,
    modelId: text,
    server: address,
    blockStart: uint32,
    blockEnd: uint32,
    promptTokens: uint(64),
    generatedTokens: uint(64),
    replayedTokens: uint(64),
    issuedAt: uint(64),
  })
  .strict()
  .refine((r) => r.blockEnd > r.blockStart, { message: 'blockEnd must be greater than blockStart', path: ['blockEnd'] });

const nodeMetrics = z
  .object({
    server: address,
    peerId: text,
    periodStart: uint(64),
    periodEnd: uint(64),
    tokensServed: uint(64),
    sessions: uint32,
    meanStepLatencyUs: uint(64),
    uptimeSeconds: uint(64),
  })
  .strict()
  .refine((m) => m.periodEnd > m.periodStart, { message: 'periodEnd must be after periodStart', path: ['periodEnd'] });

export const signedReceiptSchema = z.object({ message: receipt, signature }).strict();
export const signedMetricsSchema = z.object({ message: nodeMetrics, signature }).strict();

/** A parsed item, or the reason it is malformed ("message.blockEnd: …"). */
export function parseItem<T>(schema: z.ZodType<T>, item: unknown): { ok: true; value: T } | { ok: false; reason: string } {
  const parsed = schema.safeParse(item);
  if (parsed.success) return { ok: true, value: parsed.data };
  const issue = parsed.error.issues[0]!;
  return { ok: false, reason: `malformed: ${issue.path.join('.') || '(item)'}: ${issue.message}` };
}

export type SignedReceipt = Signed<Receipt>;
export type SignedMetrics = Signed<NodeMetrics>;

const hex64 = z.string().regex(/^[0-9a-f]{64}$/, '64 lowercase hex digits');
const claim = z
  .object({
    sessionId: z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, 'a session id'),
    position: uint32,
    tokens: z.number().int().min(1).max(4096),
    spanStart: uint32,
    spanEnd: uint32,
    dtype: z.enum(['f32', 'f16', 'int8']),
    history: hex64,
    output: hex64,
  })
  .strict();

/** 2^22 bytes of f32 values at most per output (a 4096-token step of a 256-wide model, or one token of a huge one). */
const MAX_OUTPUT_BASE64 = Math.ceil((1 << 22) / 3) * 4;

const party = z
  .object({
    peerId: text,
    ethAddress: address,
    ethBinding: z.object({ issuedAt: z.number().int().min(0), signature }).strict(),
    claim,
    signature: z.string().regex(/^[A-Za-z0-9_-]{86}$/, 'an Ed25519 signature in base64url'),
    /** The step's output values, f32 little-endian, base64. */
    output: z.string().max(MAX_OUTPUT_BASE64).regex(/^[A-Za-z0-9+/]*={0,2}$/, 'base64'),
  })
  .strict();

export const signedEvidenceSchema = z
  .object({
    report: z.object({ suspect: address, suspectPeerId: text, evidence: z.string().regex(/^0x[0-9a-f]{64}$/, 'a 32-byte hex digest').transform((v) => v as Hex), reportedAt: uint(64) }).strict(),
    /** The payer's EIP-712 signature of `report`. */
    signature,
    suspect: party,
    checker: party,
  })
  .strict();

export type SignedEvidence = z.infer<typeof signedEvidenceSchema>;
export type EvidenceParty = SignedEvidence['suspect'];
