/**
 * A model id pins exact weights: a readable name plus a prefix of the sha256 of the weight files, so servers with
 * different weights never mix in one swarm (e.g. "stories260K@3f2a9c0d1e7b5a64").
 */
import path from 'node:path';
import { modelFingerprint, type FingerprintOptions, type LoadedModelSource } from '../model/load.js';

export async function modelIdOf(source: LoadedModelSource, options: FingerprintOptions = {}): Promise<string> {
  const fingerprint = await modelFingerprint(source, options);
  const base = path.basename(source.files[0] ?? source.location).replace(/\.(gguf|bin|safetensors)$/i, '');
  const name = base.replace(/[^A-Za-z0-9._-]+/g, '-').slice(0, 64) || 'model';
  return `${name}@${fingerprint.slice(0, 16)}`;
}
