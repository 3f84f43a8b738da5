import { defineConfig } from 'prisma/config';

// Prisma 7 reads no .env and env("DATABASE_URL") throws when unset, even for `generate`;
// migrations are applied by Gatehouse itself (src/database/migrator.ts), not by the CLI.
export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  datasource: { url: process.env.DATABASE_URL ?? '' },
});
