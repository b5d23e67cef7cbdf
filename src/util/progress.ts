/**
 * Progress on stderr for anything that may take more than a second (loading weights, downloading, building
 * graphs). Draws a single updating line on a TTY and a few plain lines otherwise, so logs stay readable.
 */
export interface Progress {
  update(done: number, total?: number): void;
  done(message?: string): void;
}

export function createProgress(label: string, options: { stream?: NodeJS.WriteStream; quiet?: boolean; unit?: 'bytes' | 'items' } = {}): Progress {
  const show = options.unit === 'items' ? (n: number) => String(n) : humanBytes;
  const stream = options.stream ?? process.stderr;
  const started = Date.now();
  let lastDraw = 0;
  let lastPercentLogged = -1;
  const tty = Boolean(stream.isTTY);
  const quiet = options.quiet ?? process.env.COROLLA_QUIET === '1';
  const format = (done: number, total?: number) => {
    if (total && total > 0) {
      const percent = Math.min(100, Math.floor((done / total) * 100));
      return { percent, text: `${label}: ${percent}% (${show(done)} / ${show(total)})` };
    }
    return { percent: -1, text: `${label}: ${show(done)}` };
  };
  return {
    update(done, total) {
      if (quiet) return;
      const now = Date.now();
      if (now - started < 1000 || now - lastDraw < 100) return; // silent for fast operations
      lastDraw = now;
      const { percent, text } = format(done, total);
      if (tty) stream.write(`\r${text}\x1b[K`);
      else if (percent >= lastPercentLogged + 25) {
        lastPercentLogged = percent;
        stream.write(text + '\n');
      }
    },
    done(message) {
      if (quiet) return;
      const seconds = (Date.now() - started) / 1000;
      if (tty && lastDraw) stream.write('\r\x1b[K');
      if (seconds >= 1 || message) stream.write(`${message ?? label} (${seconds.toFixed(1)} s)\n`);
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
