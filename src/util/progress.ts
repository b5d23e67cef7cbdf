/**
 * Progress of anything that may take more than a second (loading weights, downloading, fingerprinting), reported
 * as events through an `onProgress` callback (the js-libp2p way). Library code never draws: the CLI turns these
 * events into a line on stderr (src/cli/progress.ts).
 */
export interface ProgressEvent {
  /** What is in progress, e.g. "downloading acme/tiny/model.safetensors". */
  readonly task: string;
  readonly done: number;
  readonly total?: number;
  readonly unit: 'bytes' | 'items';
  /** Set on the last event of a task. */
  readonly finished?: boolean;
  /** A closing message for a finished task (e.g. "loaded 30 blocks"). */
  readonly message?: string;
}

export type OnProgress = (event: ProgressEvent) => void;

export interface ProgressOptions {
  readonly onProgress?: OnProgress;
}

export interface ProgressTask {
  update(done: number, total?: number): void;
  done(message?: string): void;
}

/** A task that reports to `onProgress` (nothing when it is undefined). */
export function progressTask(onProgress: OnProgress | undefined, task: string, unit: ProgressEvent['unit'] = 'bytes'): ProgressTask {
  let last = { done: 0, total: undefined as number | undefined };
  return {
    update(done, total) {
      last = { done, total };
      onProgress?.({ task, done, ...(total !== undefined ? { total } : {}), unit });
    },
    done(message) {
      onProgress?.({ task, done: last.done, ...(last.total !== undefined ? { total: last.total } : {}), unit, finished: true, ...(message ? { message } : {}) });
    },
  };
}

export function humanBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}
