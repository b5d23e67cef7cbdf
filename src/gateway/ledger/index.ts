/** The usage ledger: open it, and the money and export helpers around it. */
export { openLedger, LEDGER_MIGRATIONS, type OpenLedgerOptions } from './open.js';
export { parseFar, formatFar, UNITS_PER_FAR, FAR_DECIMALS } from './money.js';
export { usageCsvLines, usageJsonLines, usageEntryJson, USAGE_CSV_COLUMNS, type UsageEntryJson } from './export.js';
export { InvalidAmountError, LedgerLockedError } from './errors.js';
