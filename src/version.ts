/** The software name and version, read once from package.json so there is one place to bump it. */
import { readFileSync } from 'node:fs';

// package.json sits one level above both src/ and dist/
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

export const SOFTWARE_NAME = 'corolla';
export const SOFTWARE_VERSION: string = pkg.version;
