/** Errors of the command line: bad flags, and child processes that fail to start. */
import { CorollaError } from '../errors.js';

/** Bad or missing command-line flags; the message says what to give instead. */
export class UsageError extends CorollaError {
  override readonly name = 'UsageError';
  constructor(message: string) {
    super('USAGE', message);
  }
}

/** A `corolla` child process was not ready in time, or exited early. */
export class ChildProcessError extends CorollaError {
  override readonly name = 'ChildProcessError';
  constructor(message: string) {
    super('CHILD_PROCESS', message);
  }
}
