/** The software name and version, read once from package.json so there is one place to bump it. */
import pkg from '../package.json' with { type: 'json' };

export const SOFTWARE_NAME = 'corolla';
export const SOFTWARE_VERSION: string = pkg.version;
