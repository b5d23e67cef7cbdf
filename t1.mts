import { PGlite } from '@electric-sql/pglite';
let t = performance.now();
const a = await PGlite.create();
console.log('memory create', performance.now() - t); t = performance.now();
await a.query('select 1');
const dump = await a.dumpDataDir('none');
console.log('dump', performance.now() - t, dump.size); t = performance.now();
const b = await PGlite.create({ loadDataDir: dump });
console.log('load from dump', performance.now() - t); t = performance.now();
const c = await PGlite.create('/tmp/lg/dir1');
console.log('dir create', performance.now() - t); t = performance.now();
await c.close();
const d = await PGlite.create('/tmp/lg/dir1');
console.log('dir reopen', performance.now() - t); t = performance.now();
try { const e = await PGlite.create('/tmp/lg/dir1'); console.log('second open same dir OK?!', performance.now() - t); await e.query('select 1'); } catch (err) { console.log('second open failed', err); }
