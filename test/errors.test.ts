/** The error table, CorollaError's getters and cause chain, and what a peer may be told (toPeerError, RemoteError). */
import { describe, expect, it } from 'vitest';
import { CorollaError, ERROR_CODES, isErrorCode, isPeerSafe, MAX_PEER_ERROR_MESSAGE, RemoteError, toPeerError, type ErrorCode } from '../src/errors.js';

const CODES = Object.keys(ERROR_CODES) as ErrorCode[];

describe('ERROR_CODES', () => {
  it.each(CODES)('%s maps to a 4xx or 5xx status', (code) => {
    const { httpStatus } = ERROR_CODES[code];
    expect(Number.isInteger(httpStatus)).toBe(true);
    expect(httpStatus).toBeGreaterThanOrEqual(400);
    expect(httpStatus).toBeLessThan(600);
  });

  it('marks capacity, timeouts and lost peers retryable, and caller mistakes not', () => {
    expect(ERROR_CODES.CACHE_FULL).toMatchObject({ httpStatus: 503, retryable: true });
    expect(ERROR_CODES.TOO_MANY_SESSIONS).toMatchObject({ httpStatus: 429, retryable: true });
    expect(ERROR_CODES.SWARM_TIMEOUT).toMatchObject({ httpStatus: 504, retryable: true });
    expect(ERROR_CODES.INVALID_STEP).toMatchObject({ httpStatus: 400, retryable: false });
    expect(ERROR_CODES.INVALID_REQUEST).toMatchObject({ httpStatus: 400, retryable: false });
    expect(ERROR_CODES.REQUEST_TOO_LARGE).toMatchObject({ httpStatus: 413, retryable: false });
    expect(ERROR_CODES.INTERNAL).toMatchObject({ httpStatus: 500, retryable: false });
  });

  it('isErrorCode knows exactly the table', () => {
    for (const code of CODES) expect(isErrorCode(code)).toBe(true);
    for (const value of ['NOPE', 'toString', '__proto__', '', 42, undefined]) expect(isErrorCode(value)).toBe(false);
  });
});

describe('CorollaError', () => {
  it.each(CODES)('%s: retryable and httpStatus come from the table', (code) => {
    const error = new CorollaError(code, 'x');
    expect(error.code).toBe(code);
    expect(error.retryable).toBe(ERROR_CODES[code].retryable);
    expect(error.httpStatus).toBe(ERROR_CODES[code].httpStatus);
  });

  it('appends details to the message and keeps the cause', () => {
    const cause = new Error('disk');
    const error = new CorollaError('MODEL_CORRUPT', 'bad file', { cause, details: 'offset 12' });
    expect(error.message).toBe('bad file\n  details: offset 12');
    expect(error.details).toBe('offset 12');
    expect(error.cause).toBe(cause);
    expect(error).toBeInstanceOf(Error);
  });

  it('walk finds the first error along the cause chain that matches', () => {
    const root = new TypeError('root');
    const middle = new CorollaError('CACHE_FULL', 'middle', { cause: root });
    const top = new CorollaError('REMOTE_SPAN_FAILED', 'top', { cause: middle });
    expect(top.walk((e) => e === top)).toBe(top);
    expect(top.walk((e) => e instanceof CorollaError && e.code === 'CACHE_FULL')).toBe(middle);
    expect(top.walk((e) => e instanceof TypeError)).toBe(root);
    expect(top.walk((e) => e instanceof RangeError)).toBeUndefined();
  });

  it('walk stops at a cause that is not an Error', () => {
    const top = new CorollaError('INTERNAL', 'top', { cause: 'a string cause' });
    expect(top.walk((e) => e === 'a string cause')).toBe('a string cause');
    expect(top.walk(() => false)).toBeUndefined();
  });
});

describe('toPeerError', () => {
  it("keeps a CorollaError's code and message", () => {
    expect(toPeerError(new CorollaError('CACHE_FULL', 'no room for 12 tokens'))).toEqual({ code: 'CACHE_FULL', message: 'no room for 12 tokens' });
    expect(toPeerError(new RemoteError('UNKNOWN_SESSION', 'gone'))).toEqual({ code: 'UNKNOWN_SESSION', message: 'gone' });
  });

  it('bounds the message', () => {
    expect(toPeerError(new CorollaError('MALFORMED', 'x'.repeat(10_000))).message).toHaveLength(MAX_PEER_ERROR_MESSAGE);
  });

  it.each([
    ['an Error', new Error('ENOENT: /home/secret/model.gguf')],
    ['a TypeError', new TypeError("Cannot read properties of undefined (reading 'data')")],
    ['a string', 'onnxruntime: kernel failed at /src/secret.cc:12'],
    ['an object', { code: 'CACHE_FULL', message: 'looks like ours but is not' }],
    ['undefined', undefined],
  ])('turns %s into INTERNAL "internal error", never its text', (_, error) => {
    const peer = toPeerError(error);
    expect(peer).toEqual({ code: 'INTERNAL', message: 'internal error' });
    expect(JSON.stringify(peer)).not.toMatch(/secret|Cannot read|looks like/);
  });

  it('does not reach into the cause of our own errors', () => {
    const error = new CorollaError('CACHE_FULL', 'no room', { cause: new Error('/secret/path') });
    expect(toPeerError(error)).toEqual({ code: 'CACHE_FULL', message: 'no room' });
  });

  it('tells a peer only INTERNAL for codes whose message quotes runtime internals (kernel text)', () => {
    const kernel = new CorollaError('KERNEL_ERROR', 'span [0, 5) failed to run: onnxruntime: status at /src/secret.cc:42');
    expect(isPeerSafe(kernel)).toBe(false);
    expect(toPeerError(kernel)).toEqual({ code: 'INTERNAL', message: 'internal error' });
    for (const code of CODES) {
      const error = new CorollaError(code, 'm');
      expect(isPeerSafe(error)).toBe(!ERROR_CODES[code].internal);
      expect(toPeerError(error).code).toBe(ERROR_CODES[code].internal ? 'INTERNAL' : code);
    }
    expect(isPeerSafe(new Error('x'))).toBe(false);
  });
});

describe('RemoteError', () => {
  it('keeps a code this version knows, with its table semantics', () => {
    const error = new RemoteError('CACHE_FULL', 'full');
    expect(error).toBeInstanceOf(CorollaError);
    expect(error.code).toBe('CACHE_FULL');
    expect(error.remoteCode).toBe('CACHE_FULL');
    expect(error.retryable).toBe(true);
    expect(error.httpStatus).toBe(503);
  });

  it('maps an unknown code to REMOTE_ERROR and keeps the code as sent, bounded', () => {
    const error = new RemoteError('FUTURE_CODE', 'from a newer peer');
    expect(error.code).toBe('REMOTE_ERROR');
    expect(error.remoteCode).toBe('FUTURE_CODE');
    expect(error.message).toBe('from a newer peer');
    expect(error.httpStatus).toBe(ERROR_CODES.REMOTE_ERROR.httpStatus);
    expect(new RemoteError('X'.repeat(500), 'm').remoteCode).toHaveLength(64);
  });

  it('does not take inherited property names for codes', () => {
    expect(new RemoteError('toString', 'm').code).toBe('REMOTE_ERROR');
  });
});
