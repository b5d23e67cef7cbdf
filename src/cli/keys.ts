/**
 * `corolla keys new --keystore FILE`: creates a new Ethereum key in an encrypted keystore (the password from
 * --keystore-password-file or COROLLA_KEYSTORE_PASSWORD) and prints its address only.
 * `corolla keys address`: prints the address of the account the flags, environment or .env give.
 * No key is ever printed.
 */
import { createKeystoreFile, keystorePassword } from '../chain/keys.js';
import { accountFlags, accountFrom, accountUsage } from './account.js';
import { UsageError } from './errors.js';
import { parse } from './options.js';

const usage = `usage: corolla keys new --keystore FILE [--keystore-password-file FILE]
       corolla keys address [account options]

  new       create a new key, encrypted in FILE (mode 0600; never over an existing file) with the password from
            --keystore-password-file or COROLLA_KEYSTORE_PASSWORD; prints the address
  address   print the address of the account the options below give

${accountUsage}`;

export async function run(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  const values = parse(rest, accountFlags, usage);
  if (sub === 'new') {
    const file = values.keystore ?? process.env.COROLLA_KEYSTORE;
    if (!file) throw new UsageError(`--keystore FILE is required\n\n${usage}`);
    if (values['private-key'] !== undefined) throw new UsageError('keys new creates a new key: --private-key does not apply');
    const passwordFile = values['keystore-password-file'];
    const password = passwordFile === undefined ? process.env.COROLLA_KEYSTORE_PASSWORD : undefined;
    const account = await createKeystoreFile(file, await keystorePassword({ file, password, passwordFile }));
    process.stdout.write(`${account.address}\n`);
    return;
  }
  if (sub === 'address') {
    const account = await accountFrom(values);
    if (!account) throw new UsageError(`no Ethereum account given\n\n${usage}`);
    process.stdout.write(`${account.address}\n`);
    return;
  }
  if (sub === undefined || sub === '--help' || sub === '-h') {
    process.stdout.write(usage + '\n');
    return;
  }
  throw new UsageError(`unknown keys command "${sub}"\n\n${usage}`);
}
