/**
 * Logging is injected, the js-libp2p way: components take a `ComponentLogger` and call `forComponent('corolla:…')`.
 * Library code never writes to stderr itself; the default is silent, and the CLI passes a logger that prints
 * (`@libp2p/logger`'s, enabled with DEBUG=corolla:*). The same logger can be handed to libp2p.
 */
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
      write(`${name}${level} ${[formatter, ...args].map((a) => (typeof a === 'string' ? a : a instanceof Error ? a.message : JSON.stringify(a))).join(' ')}`);
    return Object.assign(out(''), { error: out(':error'), trace: out(':trace'), enabled: true, newScope: (scope: string) => make(`${name}:${scope}`) });
  };
  return { forComponent: make };
}
