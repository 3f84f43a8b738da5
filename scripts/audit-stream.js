'use strict';
/*
 * Backup of the audit stream through the JetStream API (no `nats` CLI needed):
 *
 *   NATS_URL=nats://nats:4222 node scripts/audit-stream.js export audit-stream.ndjson
 *   DATABASE_URL=postgresql://... node scripts/audit-stream.js compare audit-stream.ndjson
 *
 * `export` writes every message of GATEHOUSE_AUDIT as one JSON line (the record as published,
 * with seq, prev_hash and hash). `compare` checks a restored database against such a file:
 * every audit row must be in the file with the same seq and hash (the stream may hold more:
 * records written after the database dump). Exits non-zero on any difference.
 * NATS credentials: NATS_USER/NATS_PASSWORD; TLS: a tls:// URL and NATS_TLS_CA_FILE.
 */
const fs = require('node:fs');
const { connect } = require('@nats-io/transport-node');
const { jetstream, jetstreamManager } = require('@nats-io/jetstream');
const pg = require('pg');

const STREAM = 'GATEHOUSE_AUDIT';

async function exportStream(file) {
  const servers = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
  const options = { servers: servers.split(','), name: 'gatehouse-audit-export' };
  if (process.env.NATS_USER) Object.assign(options, { user: process.env.NATS_USER, pass: process.env.NATS_PASSWORD });
  if (process.env.NATS_TLS_CA_FILE) options.tls = { caFile: process.env.NATS_TLS_CA_FILE };
  const nc = await connect(options);
  const out = fs.createWriteStream(file);
  let written = 0;
  try {
    const info = await (await jetstreamManager(nc)).streams.info(STREAM);
    if (info.state.messages > 0) {
      const consumer = await jetstream(nc).consumers.get(STREAM);
      const messages = await consumer.consume();
      for await (const message of messages) {
        out.write(message.string() + '\n');
        written += 1;
        if (message.info.pending === 0) break;
      }
    }
  } finally {
    await new Promise((resolve) => out.end(resolve));
    await nc.close();
  }
  console.log(`exported ${written} audit records from ${STREAM} to ${file}`);
}

async function compare(file) {
  const published = new Map();
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    const record = JSON.parse(line);
    published.set(record.id, record);
  }
  const client = new pg.Client({ connectionString: process.env.DATABASE_URL });
  await client.connect();
  try {
    const { rows } = await client.query('SELECT id, seq::text AS seq, hash FROM audit_records ORDER BY seq');
    const problems = [];
    for (const row of rows) {
      const record = published.get(row.id);
      if (record === undefined) problems.push(`seq ${row.seq}: not in the stream backup`);
      else if (String(record.seq) !== row.seq || record.hash !== row.hash) problems.push(`seq ${row.seq}: differs from the stream backup`);
    }
    if (problems.length > 0) {
      console.error(`${problems.length} of ${rows.length} audit records do not match ${file}:\n${problems.slice(0, 20).join('\n')}`);
      process.exitCode = 1;
      return;
    }
    console.log(`all ${rows.length} audit records match ${file}`);
  } finally {
    await client.end();
  }
}

const [command, file] = process.argv.slice(2);
const run = command === 'export' ? exportStream : command === 'compare' ? compare : undefined;
if (run === undefined || file === undefined) {
  console.error('usage: node scripts/audit-stream.js export|compare FILE');
  process.exit(2);
}
run(file).catch((error) => {
  console.error(`audit-stream ${command} failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
