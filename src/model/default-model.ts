/** The model shipped inside the package (models/stories260K.gguf, MIT), used when no --model is given. */
import { fileURLToPath } from 'node:url';

export const DEFAULT_MODEL_PATH = fileURLToPath(new URL('../../models/stories260K.gguf', import.meta.url));
