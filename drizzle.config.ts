/** drizzle-kit: `npm run db:generate` writes the next ledger migration from the schema. */
import { defineConfig } from 'drizzle-kit';

export default defineConfig({
  dialect: 'postgresql',
  schema: './src/gateway/ledger/schema.ts',
  out: './migrations/ledger',
});
