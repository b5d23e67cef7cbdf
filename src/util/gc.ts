/**
 * A full garbage collection on demand, for the end of a model load. Loading reads every weight into JavaScript
 * buffers that are garbage once onnxruntime has packed them, but V8 collects them only when its external-memory
 * heuristic says so: up to about 64 MB of them could stay resident, and onnxruntime's arena then took fresh pages
 * for the first prefill instead of reusing theirs (SmolLM2 q8_0 peaked at 491 MB; 447 MB with the collection).
 */
import v8 from 'node:v8';
import vm from 'node:vm';

/** The collector, looked up once: null where the runtime offers none. */
let gc: (() => void) | null | undefined;

/** Collects garbage now; a no-op where the runtime offers no way to. */
export function collectGarbage(): void {
  if (gc === undefined) gc = exposeGc();
  gc?.();
}

function exposeGc(): (() => void) | null {
  const global = (globalThis as { gc?: () => void }).gc;
  if (typeof global === 'function') return global;
  try {
    // The flag exposes `gc` to contexts created after it is set; the process's own global scope stays as it was.
    v8.setFlagsFromString('--expose-gc');
    const fn = vm.runInNewContext('gc') as unknown;
    return typeof fn === 'function' ? (fn as () => void) : null;
  } catch {
    return null;
  }
}
