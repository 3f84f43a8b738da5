import pg from 'pg';

const SETTING = 'dev_master_key';

/**
 * Development only (no MASTER_KEY): replicas started from different DATA_DIRs on one
 * database must seal and open with the same key, so the first one to start records its
 * generated key in the database and the others adopt it. Production requires MASTER_KEY
 * and never reaches this.
 */
export async function sharedDevMasterKey(databaseUrl: string, generated: Buffer): Promise<Buffer> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query(`INSERT INTO system_settings (key, value, updated_at) VALUES ($1, $2, now()) ON CONFLICT (key) DO NOTHING`, [
      SETTING,
      generated.toString('base64'),
    ]);
    const { rows } = await client.query<{ value: string }>(`SELECT value FROM system_settings WHERE key = $1`, [SETTING]);
    return Buffer.from(rows[0]!.value, 'base64');
  } finally {
    await client.end();
  }
}
