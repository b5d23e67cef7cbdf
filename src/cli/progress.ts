/**
 * Draws library progress events on stderr: a single updating line on a TTY, a few plain lines otherwise, and
 * nothing for tasks that finish within a second. COROLLA_QUIET=1 silences it.
 */
import { humanBytes, type OnProgress, type ProgressEvent } from '../util/progress.js';

export function terminalProgress(options: { stream?: NodeJS.WriteStream; quiet?: boolean } = {}): OnProgress {
  const stream = options.stream ?? process.stderr;
  const quiet = options.quiet ?? process.env.COROLLA_QUIET === '1';
  const tty = Boolean(stream.isTTY);
  const tasks = new Map<string, { started: number; lastDraw: number; lastPercent: number }>();
  const describe = (event: ProgressEvent) => {
    const show = event.unit === 'items' ? String : humanBytes;
    if (event.total && event.total > 0) {
      const percent = Math.min(100, Math.floor((event.done / event.total) * 100));
      return { percent, text: `${event.task}: ${percent}% (${show(event.done)} / ${show(event.total)})` };
    }
    return { percent: -1, text: `${event.task}: ${show(event.done)}` };
  };
  return (event) => {
    if (quiet) return;
    const now = Date.now();
    let state = tasks.get(event.task);
    if (!state) tasks.set(event.task, (state = { started: now, lastDraw: 0, lastPercent: -1 }));
    if (event.finished) {
      tasks.delete(event.task);
      const seconds = (now - state.started) / 1000;
      if (tty && state.lastDraw) stream.write('\r\x1b[K');
      if (seconds >= 1 || event.message) stream.write(`${event.message ?? event.task} (${seconds.toFixed(1)} s)\n`);
      return;
    }
    if (now - state.started < 1000 || now - state.lastDraw < 100) return; // silent for fast operations
    state.lastDraw = now;
    const { percent, text } = describe(event);
    if (tty) stream.write(`\r${text}\x1b[K`);
    else if (percent >= state.lastPercent + 25) {
      state.lastPercent = percent;
      stream.write(text + '\n');
    }
  };
}
