/**
 * `corolla <command> …`: each command lives in its own file and is loaded only when used, so `corolla dht` never
 * pays for onnxruntime and `corolla generate` never pays for libp2p.
 */
import { CorollaError } from '../errors.js';
import { loadEnvFile, takeEnvFileFlag } from './env-file.js';

const commands: Record<string, { summary: string; load: () => Promise<{ run(argv: string[]): Promise<void> }> }> = {
  generate: { summary: 'generate text locally, or through a swarm with --swarm', load: () => import('./generate.js') },
  perplexity: { summary: 'perplexity of a text file, and KL divergence / top-1 agreement against a base model', load: () => import('./perplexity.js') },
  chat: { summary: 'interactive chat with a model, using its chat template', load: () => import('./chat.js') },
  serve: { summary: 'serve a span of blocks to the swarm', load: () => import('./serve.js') },
  dht: { summary: 'run a bootstrap-only DHT peer', load: () => import('./dht.js') },
  gateway: { summary: 'serve the Far Mesh and OpenAI-compatible HTTP APIs, dashboard and chat over a swarm', load: () => import('./gateway.js') },
  demo: { summary: 'start a local swarm (bootstrap + 3 servers) and a gateway; print the dashboard, chat and API URLs', load: () => import('./demo.js') },
  oracle: { summary: 'the incentive oracle: takes signed receipts and metrics, reports each epoch to the RewardPool', load: () => import('./oracle.js') },
  status: { summary: "a node's address, balance, registration, current epoch and pending reward (--json for JSON)", load: () => import('./status.js') },
  rewards: { summary: 'rewards claim: claim the rewards the oracle lists, each proof checked on chain first', load: () => import('./rewards.js') },
  ledger: { summary: 'export the gateway usage ledger (CSV or JSON) for payment: ledger export --since ISO', load: () => import('./ledger.js') },
  keys: { summary: 'Ethereum keys: keys new --keystore FILE (an encrypted keystore), keys address', load: () => import('./keys.js') },
  dev: { summary: 'developer tools: dev make-model', load: () => import('./dev.js') },
};

function usage(): string {
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  return `usage: corolla <command> [options] [--dotenv FILE]\n\ncommands:\n${lines.join('\n')}\n\nRun "corolla <command> --help" for a command's options. Variables (COROLLA_*, see .env.example) are read\nfrom the environment and from ./.env (or --dotenv FILE); flags win over the environment, which wins over the file.`;
}

export async function main(argv: string[]): Promise<void> {
  // onnxruntime-node 1.30's telemetry reads /proc/self/cmdline through a recursive std::regex when the first graph is
  // built; past ~30 KB of command line (a long --prompt) that overflows the stack and the process dies with SIGSEGV.
  // It is read then, not at import, so setting it here is in time. (It would also run `blkid; hostname`.)
  process.env.ORT_DISABLE_TELEMETRY ??= '1';
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage() + '\n');
    return;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`corolla: unknown command "${name}"\n\n${usage()}\n`);
    process.exitCode = 2;
    return;
  }
  try {
    // before any flag is parsed: flags, then the environment, then the file
    const { argv: commandArgv, envFile } = takeEnvFileFlag(rest);
    loadEnvFile(process.env, { envFile });
    const module = await command.load();
    await module.run(commandArgv);
  } catch (error) {
    reportFatal(error);
  }
}

/** Prints a typed error as one clear line (plus its causes) instead of a stack trace. */
export function reportFatal(error: unknown): void {
  if (error instanceof CorollaError || (error instanceof Error && (error as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION')) {
    let text = `corolla: ${error.message}`;
    let cause = error.cause;
    while (cause instanceof Error) {
      text += `\n  caused by: ${cause.message}`;
      cause = cause.cause;
    }
    process.stderr.write(text + '\n');
  } else {
    process.stderr.write(`corolla: unexpected error: ${error instanceof Error ? error.stack : String(error)}\n`);
  }
  process.exitCode = 1;
}
