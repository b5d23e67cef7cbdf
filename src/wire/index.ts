/** The wire layer: the protocol table, schemas, tensor codecs, framing, block and generate messages, and their errors. */
export * from './errors.js';
export * from './tensor-codec.js';
export * from './frames.js';
export * from './messages.js';
export * from './protocols.js';
export * from './generate.js';
