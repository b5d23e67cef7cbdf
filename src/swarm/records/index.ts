/** Signed server announcement records and signed load reports: schema, canonical encoding, signing, verification. */
export * from './schema.js';
export * from './canonical.js';
export * from './sign.js';
export * from './verify.js';
