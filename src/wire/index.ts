/** The wire layer: tensor codecs, framing, block-protocol messages, protocol ids, and their errors. */
export * from './errors.js';
export * from './tensor-codec.js';
export * from './frames.js';
export * from './messages.js';
export * from './protocols.js';
