import { describe, expect, it } from 'vitest';
import { CorollaError } from '../../src/errors.js';
import { MalformedMessageError, FrameTooLargeError, MalformedTensorError, NonFiniteTensorError } from '../../src/wire/errors.js';
import { encodeFrame, splitFrame } from '../../src/wire/frames.js';
import {
  MAX_ERROR_MESSAGE_LENGTH,
  MAX_HEADER_BYTES,
  MESSAGE_TYPES,
  carriesTensor,
  decodeMessage,
  encodeMessage,
  errorMessage,
  validateMessage,
  type Message,
  type MessageInput,
} from '../../src/wire/messages.js';
import {
  ANNOUNCE_PROTOCOL,
  BLOCK_PROTOCOL,
  DHT_PROTOCOL,
  GENERATE_PROTOCOL,
  HEARTBEAT_PROTOCOL,
  PROTOCOLS,
  PROTOCOL_VERSION,
  isCompatibleProtocol,
  parseProtocolId,
  protocolId,
} from '../../src/wire/protocols.js';
import type { WireDtype } from '../../src/wire/tensor-codec.js';

const hidden = (tokens: number, width: number, seed = 1) => {
  const out = new Float32Array(tokens * width);
  for (let i = 0; i < out.length; i++) out[i] = Math.sin(i * 0.37 + seed) * 2;
  return out;
};

const enc = new TextEncoder();

/** Builds a frame from an arbitrary header object (bypassing encode-side validation) and payload. */
function rawFrame(header: unknown, payload = new Uint8Array(0)): Uint8Array {
  return encodeFrame(enc.encode(typeof header === 'string' ? header : JSON.stringify(header)), payload);
}

const plain: Message[] = [
  { type: 'open', sessionId: 'sess-1_A', maxLength: 2048, spanStart: 0, spanEnd: 12, codec: 'f16' },
  { type: 'opened', sessionId: 'sess-1_A', position: 0, cacheTokensLeft: 100_000 },
  { type: 'close', sessionId: 'x' },
  { type: 'closed', sessionId: 'x' },
  { type: 'error', code: 'CACHE_FULL', message: 'no room for 2048 tokens' },
  { type: 'error', code: 'MALFORMED', message: 'bad', sessionId: 's', stepId: 3, requestId: 'r' },
  { type: 'ping', nonce: 0 },
  { type: 'pong', nonce: Number.MAX_SAFE_INTEGER },
];

describe('round trips', () => {
  it('carries every tensor-less message unchanged', () => {
    for (const message of plain) {
      const frame = encodeMessage(message);
      const decoded = decodeMessage(frame);
      expect(decoded.header).toEqual(message);
      expect(decoded.tensor).toBeUndefined();
    }
  });

  it('carries every tensor message under every codec', () => {
    for (const dtype of ['f32', 'f16', 'int8'] as WireDtype[]) {
      for (const tokens of [1, 5]) {
        const data = hidden(tokens, 96, tokens);
        const tensor = { data, shape: [tokens, 96], dtype };
        const inputs: MessageInput[] = [
          { type: 'step', sessionId: 's1', stepId: 7, position: 12, tokens },
          { type: 'stepResult', sessionId: 's1', stepId: 7, position: 12 },
          { type: 'forward', requestId: 'req-9', spanStart: 4, spanEnd: 8 },
          { type: 'forwardResult', requestId: 'req-9' },
        ];
        for (const input of inputs) {
          const decoded = decodeMessage(encodeMessage(input, tensor));
          expect(decoded.header).toEqual({ ...input, tensor: { dtype, shape: [tokens, 96] } });
          expect(decoded.tensor!.length).toBe(data.length);
          const tolerance = dtype === 'f32' ? 0 : dtype === 'f16' ? 2 ** -10 : 2 / 127;
          for (let i = 0; i < data.length; i++) expect(Math.abs(decoded.tensor![i]! - data[i]!)).toBeLessThanOrEqual(tolerance);
        }
      }
    }
  });

  it('accepts a matching header.tensor and rejects a disagreeing one', () => {
    const tensor = { data: hidden(2, 8), shape: [2, 8], dtype: 'f32' as const };
    const base = { type: 'forwardResult', requestId: 'r' } as const;
    expect(decodeMessage(encodeMessage({ ...base, tensor: { dtype: 'f32', shape: [2, 8] } }, tensor)).header).toEqual({
      ...base,
      tensor: { dtype: 'f32', shape: [2, 8] },
    });
    expect(() => encodeMessage({ ...base, tensor: { dtype: 'f16', shape: [2, 8] } }, tensor)).toThrow(MalformedMessageError);
    expect(() => encodeMessage({ ...base, tensor: { dtype: 'f32', shape: [1, 16] } }, tensor)).toThrow(/disagrees/);
    expect(() => encodeMessage(base)).toThrow(/needs a tensor/);
    expect(() => encodeMessage({ type: 'ping', nonce: 1 }, tensor)).toThrow(/carries no tensor/);
    expect(() => encodeMessage(base, { ...tensor, shape: [3, 8] })).toThrow(/elements/);
    expect(() => encodeMessage(base, { ...tensor, data: Float32Array.from([Number.NaN, ...hidden(1, 15)]), dtype: 'int8' })).toThrow(
      NonFiniteTensorError,
    );
  });

  it('frames are self-delimiting and deterministic', () => {
    const a = encodeMessage({ type: 'ping', nonce: 5 });
    expect(new DataView(a.buffer).getUint32(0)).toBe(a.length - 4);
    expect(encodeMessage({ nonce: 5, type: 'ping' } as Message)).toEqual(a);
    expect(new TextDecoder().decode(splitFrame(a).header)).toBe('{"type":"ping","nonce":5}');
  });

  it('lists types and which carry tensors', () => {
    expect(MESSAGE_TYPES.filter(carriesTensor)).toEqual(['step', 'stepResult', 'push', 'forward', 'forwardResult']);
  });

  it('enforces the frame limit when encoding and decoding', () => {
    const tensor = { data: hidden(4, 256), shape: [4, 256], dtype: 'f32' as const };
    const header = { type: 'forwardResult', requestId: 'r' } as const;
    expect(() => encodeMessage(header, tensor, { maxFrameBytes: 1024 })).toThrow(FrameTooLargeError);
    const frame = encodeMessage(header, tensor);
    expect(() => decodeMessage(frame, { maxFrameBytes: 1024 })).toThrow(FrameTooLargeError);
    expect(() => decodeMessage(frame, { maxTensorElements: 1000 })).toThrow(MalformedMessageError);
  });
});

describe('validation', () => {
  const step = { type: 'step', sessionId: 's', stepId: 0, position: 0, tokens: 2, tensor: { dtype: 'f32', shape: [2, 4] } };
  const stepPayload = new Uint8Array(2 * 4 * 4);

  const invalid: [string, unknown, RegExp][] = [
    ['not an object', [1, 2], /header must be a JSON object/],
    ['null', null, /header must be a JSON object/],
    ['a string', '"hello"', /header must be a JSON object, got string/],
    ['no type', { sessionId: 'x' }, /header.type must be a string/],
    ['unknown type', { type: 'teleport' }, /unknown message type "teleport"/],
    ['proto type', { type: '__proto__' }, /unknown message type/],
    ['toString type', { type: 'toString' }, /unknown message type/],
    ['missing field', { type: 'close' }, /close: missing field "sessionId"/],
    ['extra field', { type: 'close', sessionId: 'x', extra: 1 }, /close: unknown field "extra"/],
    ['__proto__ field', JSON.parse('{"type":"close","sessionId":"x","__proto__":{"a":1}}'), /unknown field "__proto__"/],
    ['wrong type', { type: 'close', sessionId: 5 }, /close.sessionId must be a string, got number 5/],
    ['empty id', { type: 'close', sessionId: '' }, /1..128 characters/],
    ['bad id chars', { type: 'close', sessionId: 'a b' }, /1..128 characters/],
    ['long id', { type: 'close', sessionId: 'a'.repeat(129) }, /1..128 characters/],
    ['NaN (null in JSON)', { type: 'ping', nonce: Number.NaN }, /ping.nonce must be an integer, got null/],
    ['fraction', { type: 'ping', nonce: 1.5 }, /must be an integer/],
    ['string number', { type: 'ping', nonce: '1' }, /must be an integer, got string/],
    ['negative', { type: 'ping', nonce: -1 }, /must be in 0\.\./],
    ['too large', { type: 'ping', nonce: 2 ** 53 }, /must be in 0\.\./],
    ['maxLength 0', { type: 'open', sessionId: 's', maxLength: 0, spanStart: 0, spanEnd: 1, codec: 'f16' }, /maxLength must be in 1\.\.1000000/],
    ['maxLength > 1e6', { type: 'open', sessionId: 's', maxLength: 1_000_001, spanStart: 0, spanEnd: 1, codec: 'f16' }, /maxLength/],
    ['span order', { type: 'open', sessionId: 's', maxLength: 8, spanStart: 3, spanEnd: 3, codec: 'f16' }, /spanStart \(3\) must be less than spanEnd \(3\)/],
    ['bad codec', { type: 'open', sessionId: 's', maxLength: 8, spanStart: 0, spanEnd: 3, codec: 'bf16' }, /codec must be one of f32, f16, int8/],
    ['negative position', { ...step, position: -1 }, /step.position must be in 0\.\./],
    ['negative stepId', { ...step, stepId: -3 }, /step.stepId/],
    ['tokens 0', { ...step, tokens: 0, tensor: { dtype: 'f32', shape: [0, 4] } }, /step.tokens must be in 1\.\./],
    ['tokens vs shape', { ...step, tokens: 3 }, /tensor.shape\[0\] \(2\) must equal tokens \(3\)/],
    ['position + tokens', { ...step, position: 999_999 }, /position \+ tokens/],
    ['rank 1 shape', { ...step, tensor: { dtype: 'f32', shape: [8] } }, /rank 2/],
    ['rank 3 shape', { ...step, tensor: { dtype: 'f32', shape: [2, 2, 2] } }, /rank 2/],
    ['shape not array', { ...step, tensor: { dtype: 'f32', shape: '2,4' } }, /shape must be an array/],
    ['shape fraction', { ...step, tensor: { dtype: 'f32', shape: [2, 4.5] } }, /shape\[1\] must be an integer/],
    ['shape zero width', { ...step, tensor: { dtype: 'f32', shape: [2, 0] } }, /shape\[1\] must be in 1\.\./],
    ['tensor dtype', { ...step, tensor: { dtype: 'float', shape: [2, 4] } }, /tensor.dtype must be one of/],
    ['tensor extra', { ...step, tensor: { dtype: 'f32', shape: [2, 4], strides: [4, 1] } }, /unknown field "strides"/],
    ['tensor missing', { type: 'forwardResult', requestId: 'r' }, /missing field "tensor"/],
    ['tensor null', { type: 'forwardResult', requestId: 'r', tensor: null }, /must be an object/],
    ['huge shape', { ...step, tokens: 1000, tensor: { dtype: 'f32', shape: [1000, 1_000_000] } }, /more than/],
    ['error code', { type: 'error', code: 'has space', message: 'x' }, /error.code/],
    ['error message type', { type: 'error', code: 'X', message: 5 }, /error.message must be a string/],
    ['error message long', { type: 'error', code: 'X', message: 'm'.repeat(5000) }, /longer than 4096/],
    ['error bad optional', { type: 'error', code: 'X', message: 'm', stepId: -1 }, /error.stepId/],
    ['opened cache', { type: 'opened', sessionId: 's', position: 0, cacheTokensLeft: -5 }, /cacheTokensLeft/],
    ['forward span', { type: 'forward', requestId: 'r', spanStart: 5, spanEnd: 2, tensor: { dtype: 'f32', shape: [2, 4] } }, /spanStart/],
  ];

  it.each(invalid)('rejects %s', (_name, header, pattern) => {
    const payload = typeof header === 'object' && header !== null && 'tensor' in header ? stepPayload : undefined;
    let error: unknown;
    try {
      decodeMessage(rawFrame(header, payload));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(MalformedMessageError);
    expect((error as MalformedMessageError).code).toBe('MALFORMED');
    expect((error as Error).message).toMatch(pattern);
    // The sender refuses the same header.
    expect(() => validateMessage(header)).toThrow(MalformedMessageError);
  });

  it('accepts the valid step used above', () => {
    expect(decodeMessage(rawFrame(step, stepPayload)).header).toEqual(step);
  });

  it('rejects payload problems', () => {
    expect(() => decodeMessage(rawFrame(step, new Uint8Array(31)))).toThrow(/step tensor: malformed tensor: f32 tensor of shape \[2, 4\] needs 32 payload bytes, got 31/);
    expect(() => decodeMessage(rawFrame(step))).toThrow(MalformedMessageError);
    expect(() => decodeMessage(rawFrame({ type: 'ping', nonce: 1 }, new Uint8Array(1)))).toThrow(/ping carries no tensor, but has a 1-byte payload/);
    const int8 = { ...step, tensor: { dtype: 'int8', shape: [2, 4] } };
    const bad = new Uint8Array(2 * 4 + 8);
    new DataView(bad.buffer).setFloat32(0, Number.NaN, true);
    try {
      decodeMessage(rawFrame(int8, bad));
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(MalformedMessageError);
      expect((e as Error).cause).toBeInstanceOf(MalformedTensorError);
    }
  });

  it('rejects headers that are not JSON, not UTF-8, empty or too big', () => {
    expect(() => decodeMessage(rawFrame('{"type":"ping",'))).toThrow(/header is not JSON/);
    expect(() => decodeMessage(encodeFrame(Uint8Array.from([0x7b, 0xff, 0xfe, 0x7d])))).toThrow(/not valid UTF-8/);
    expect(() => decodeMessage(encodeFrame(new Uint8Array(0)))).toThrow(/empty header/);
    const big = JSON.stringify({ type: 'ping', nonce: 1, pad: 'x'.repeat(MAX_HEADER_BYTES) });
    expect(() => decodeMessage(rawFrame(big))).toThrow(/exceeds 16384/);
    expect(() => decodeMessage(rawFrame('[' .repeat(5000) + ']'.repeat(5000)))).toThrow(MalformedMessageError);
    expect(() => decodeMessage(new Uint8Array(3))).toThrow(MalformedMessageError);
  });

  it('every rejection is a CorollaError with a precise message', () => {
    for (const [, header] of invalid) {
      try {
        validateMessage(header);
      } catch (e) {
        expect(e).toBeInstanceOf(CorollaError);
        expect((e as Error).message.startsWith('malformed message: ')).toBe(true);
      }
    }
  });
});

describe('errorMessage', () => {
  it('builds a valid error reply from any failure', () => {
    const reply = errorMessage(new MalformedMessageError('bad thing'), { sessionId: 's1', stepId: 4 });
    expect(reply).toEqual({ type: 'error', code: 'MALFORMED', message: 'malformed message: bad thing', sessionId: 's1', stepId: 4 });
    expect(decodeMessage(encodeMessage(reply)).header).toEqual(reply);
    // an exception we did not raise on purpose reaches the peer as INTERNAL "internal error"; ours are cut to fit
    const long = errorMessage(new Error('x'.repeat(10_000)), { sessionId: 'bad id!', requestId: 'ok', stepId: -1 });
    expect(long.message).toBe('internal error');
    expect(errorMessage(new MalformedMessageError('x'.repeat(10_000))).message.length).toBeLessThanOrEqual(MAX_ERROR_MESSAGE_LENGTH);
    expect(long.code).toBe('INTERNAL');
    expect(long.sessionId).toBeUndefined();
    expect(long.stepId).toBeUndefined();
    expect(long.requestId).toBe('ok');
    expect(decodeMessage(encodeMessage(long)).header).toEqual(long);
    expect(errorMessage('plain string').code).toBe('INTERNAL');
  });
});

describe('protocol ids', () => {
  it('are versioned and parseable', () => {
    expect(PROTOCOL_VERSION).toBe('1.0.0');
    expect(BLOCK_PROTOCOL).toBe('/corolla/block/1.0.0');
    expect(HEARTBEAT_PROTOCOL).toBe('/corolla/heartbeat/1.0.0');
    expect(GENERATE_PROTOCOL).toBe('/corolla/generate/1.0.0');
    expect(ANNOUNCE_PROTOCOL).toBe('/corolla/announce/1.0.0');
    expect(DHT_PROTOCOL).toBe('/corolla/kad/1.0.0');
    expect(parseProtocolId('/corolla/block/1.2.3')).toEqual({ name: 'block', version: '1.2.3', major: 1, minor: 2, patch: 3 });
    expect(parseProtocolId('/ipfs/ping/1.0.0')).toBeUndefined();
    expect(parseProtocolId('/corolla/block/1.0')).toBeUndefined();
    expect(isCompatibleProtocol('/corolla/block/1.4.0', BLOCK_PROTOCOL)).toBe(true);
    expect(isCompatibleProtocol('/corolla/block/2.0.0', BLOCK_PROTOCOL)).toBe(false);
    expect(isCompatibleProtocol('/corolla/heartbeat/1.0.0', BLOCK_PROTOCOL)).toBe(false);
    expect(protocolId('info', '1.1.0')).toBe('/corolla/info/1.1.0');
    expect(() => protocolId('Bad Name')).toThrow(RangeError);
  });

  it('come from one table: unique ids, each with what it carries and a message size limit', () => {
    const specs = Object.values(PROTOCOLS);
    expect(new Set(specs.map((p) => p.id)).size).toBe(specs.length);
    for (const p of specs) {
      expect(p.id).toBe(protocolId(p.name, p.version));
      expect(p.carries.length).toBeGreaterThan(10);
      expect(Number.isSafeInteger(p.maxMessageBytes) && p.maxMessageBytes > 0).toBe(true);
    }
  });
});
