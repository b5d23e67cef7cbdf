// TEMPORARY stand-in until the ledger branch lands (it owns this file).
export const UNITS_PER_FAR = 10n ** 18n;
export function parseFar(value: string): bigint {
  const m = /^(\d+)(?:\.(\d{1,18}))?$/.exec(value);
  if (!m) throw new RangeError(`not a decimal amount of FAR: ${value}`);
  return BigInt(m[1]!) * UNITS_PER_FAR + BigInt((m[2] ?? '').padEnd(18, '0'));
}
export function formatFar(units: bigint): string {
  const whole = units / UNITS_PER_FAR;
  const frac = (units % UNITS_PER_FAR).toString().padStart(18, '0').replace(/0+$/, '');
  return frac ? `${whole}.${frac}` : `${whole}`;
}
