#!/usr/bin/env node
// Entry point: the compiled CLI when .compiled/ is current with src/ (bin/compiled.js), else the TypeScript
// sources through tsx's loader.
import { compiledEntry } from './compiled.js';

let entry = compiledEntry();
if (!entry) {
  const { register } = await import('tsx/esm/api');
  register();
  entry = '../src/cli/main.ts';
}
const { main } = await import(entry);
await main(process.argv.slice(2));
