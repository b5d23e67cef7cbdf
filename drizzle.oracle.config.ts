/** drizzle-kit for the oracle's own database: `npx drizzle-kit generate --config drizzle.oracle.config.ts`. */
import { defineConfig } from 'drizzle-kit';

export default defineConfig({
  dialect: 'postgresql',
  schema: './src/oracle/schema.ts',
  out: './migrations/oracle',
});
