/**
 * FAR amounts, exactly: integer base units as bigint (1 FAR = 10^18 units, like wei), written as plain decimal
 * strings at the edges. No float ever touches an amount.
 */
import { InvalidAmountError } from './errors.js';

/** Base units per FAR. */
export const FAR_DECIMALS = 18;
export const UNITS_PER_FAR = 10n ** BigInt(FAR_DECIMALS);

const PLAIN_DECIMAL = /^(\d+)(?:\.(\d+))?$/;

/** '0.0001' → 100000000000000n. Rejects negatives, exponents, more than 18 decimals and anything else not plain. */
export function parseFar(amount: string): bigint {
  const match = PLAIN_DECIMAL.exec(amount);
  if (!match) {
    if (/^\s*-/.test(amount)) throw new InvalidAmountError(amount, 'amounts cannot be negative');
    if (/^[\d.]+e[+-]?\d+$/i.test(amount)) throw new InvalidAmountError(amount, 'write it without an exponent (e.g. 0.0001, not 1e-4)');
    throw new InvalidAmountError(amount, 'expected a plain decimal number such as 0.0001');
  }
  const [, whole, fraction = ''] = match;
  if (fraction.length > FAR_DECIMALS) throw new InvalidAmountError(amount, `FAR has at most ${FAR_DECIMALS} decimals`);
  return BigInt(whole!) * UNITS_PER_FAR + BigInt(fraction.padEnd(FAR_DECIMALS, '0'));
}

/** 100000000000000n → '0.0001'; trailing zeros trimmed, '0' for zero. */
export function formatFar(units: bigint): string {
  if (units < 0n) throw new InvalidAmountError(units.toString(), 'amounts cannot be negative');
  const whole = units / UNITS_PER_FAR;
  const fraction = (units % UNITS_PER_FAR).toString().padStart(FAR_DECIMALS, '0').replace(/0+$/, '');
  return fraction ? `${whole}.${fraction}` : `${whole}`;
}
