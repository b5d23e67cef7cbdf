/** The generate protocol's schemas: the request validator and the server-message check. */
import { describe, expect, it } from 'vitest';
import { checkGenerateServerMessage, MAX_STOP_TOKENS, validateGenerateRequest } from '../../src/wire/generate.js';
import { GenerateRequestTooLargeError, InvalidGenerateRequestError } from '../../src/wire/errors.js';

const limits = { vocabSize: 512, maxLength: 4096 };

describe('validateGenerateRequest', () => {
  it('returns exactly the fields given', () => {
    expect(validateGenerateRequest({ prompt: [1, 2], maxTokens: 3 }, limits)).toEqual({ prompt: [1, 2], maxTokens: 3 });
    const full = { prompt: [1], maxTokens: 0, sampling: { temperature: 0.5, seed: 7 }, stopTokens: [] };
    expect(validateGenerateRequest(full, limits)).toEqual(full);
  });

  it.each([
    ['not an object', 'x', /must be a JSON object/],
    ['a missing prompt', { maxTokens: 1 }, /missing field "prompt"/],
    ['an empty prompt', { prompt: [], maxTokens: 1 }, /prompt must hold at least one token id/],
    ['a token outside the vocabulary', { prompt: [1, 512], maxTokens: 1 }, /prompt\[1\] must be a token id in 0\.\.511/],
    ['a fractional token', { prompt: [1.5], maxTokens: 1 }, /prompt\[0\] must be a token id/],
    ['a negative maxTokens', { prompt: [1], maxTokens: -1 }, /maxTokens must be an integer ≥ 0/],
    ['an unknown field', { prompt: [1], maxTokens: 1, bogus: true }, /unknown field "bogus"/],
    ['an unknown sampling option', { prompt: [1], maxTokens: 1, sampling: { beam: 4 } }, /sampling: unknown field "beam"/],
    ['a non-numeric sampling value', { prompt: [1], maxTokens: 1, sampling: { temperature: 'hot' } }, /sampling.temperature must be a number/],
    ['too many stop tokens', { prompt: [1], maxTokens: 1, stopTokens: new Array(MAX_STOP_TOKENS + 1).fill(1) }, /stopTokens must hold at most/],
  ])('rejects %s with INVALID_REQUEST', (_, value, reason) => {
    let caught: unknown;
    try {
      validateGenerateRequest(value, limits);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(InvalidGenerateRequestError);
    expect(caught).toMatchObject({ code: 'INVALID_REQUEST', message: expect.stringMatching(reason) });
  });

  it('rejects prompt + maxTokens beyond the server limit with REQUEST_TOO_LARGE', () => {
    expect(() => validateGenerateRequest({ prompt: [1, 2], maxTokens: 4095 }, limits)).toThrow(GenerateRequestTooLargeError);
  });

  it('checks token ids against each vocabulary it is given', () => {
    expect(() => validateGenerateRequest({ prompt: [300], maxTokens: 1 }, { vocabSize: 256, maxLength: 10 })).toThrow(/0\.\.255/);
    expect(validateGenerateRequest({ prompt: [300], maxTokens: 1 }, limits).prompt).toEqual([300]);
  });
});

describe('checkGenerateServerMessage', () => {
  it.each([{ token: 0 }, { done: true, finishReason: 'stop' }, { done: true, finishReason: 'length' }, { error: { code: 'CACHE_FULL', message: 'full' } }])(
    'accepts %j',
    (message) => {
      expect(checkGenerateServerMessage(message)).toEqual({ ok: true, value: message });
    },
  );

  it.each([
    [{ token: -1 }, /token must be a token id/],
    [{ token: 1.5 }, /token must be a token id/],
    [{ done: false, finishReason: 'stop' }, /done must be true/],
    [{ done: true, finishReason: 'abort' }, /finishReason must be one of stop, length/],
    [{ error: 'boom' }, /error must be an object/],
    [{ error: { code: 'bad code!', message: 'm' } }, /error.code must be/],
    [{ error: { code: 'X', message: 'm'.repeat(5000) } }, /error.message is longer than/],
    [{ token: 1, extra: true }, /unknown field "extra"/],
    [{}, /must be \{token\}, \{done, finishReason\} or \{error\}/],
    [null, /got null/],
  ])('rejects %j', (message, reason) => {
    const result = checkGenerateServerMessage(message);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toMatch(reason);
  });
});
