/**
 * Logging is injected, the js-libp2p way: components take a `ComponentLogger` and call `forComponent('corolla:…')`.
 * Library code never writes to stderr itself; the default is silent, and the CLI passes a logger that prints
 * (`@libp2p/logger`'s, enabled with DEBUG=corolla:*). The same logger can be handed to libp2p.
 */
import { format } from 'node:util';
import type { ComponentLogger, Logger } from '@libp2p/interface';

export type { ComponentLogger, Logger };

const noop = (): void => {};

function silent(): Logger {
  const log = Object.assign(() => {}, { error: noop, trace: noop, enabled: false, newScope: (): Logger => log }) as Logger;
  return log;
}

const SILENT = silent();

/** A logger that discards everything: the default for library components. */
export const silentLogger: ComponentLogger = { forComponent: () => SILENT };

/** A ComponentLogger that sends every line (`namespace message`) to `write`; for tests and simple embedding. */
export function lineLogger(write: (line: string) => void): ComponentLogger {
  const make = (name: string): Logger => {
    const out = (level: string) => (formatter: unknown, ...args: unknown[]) =>
      // printf-style, as the debug loggers libp2p's components are written for (%s, %d, %o); errors by message only
      write(`${name}${level} ${format(...[formatter, ...args].map((a) => (a instanceof Error ? a.message : a)))}`);
    return Object.assign(out(''), { error: out(':error'), trace: out(':trace'), enabled: true, newScope: (scope: string) => make(`${name}:${scope}`) });
  };
  return { forComponent: make };
}
