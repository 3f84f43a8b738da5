import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const MAIN = path.resolve(__dirname, '..', '..', 'dist', 'main.js');

function start(env: Record<string, string>): { status: number | null; stderr: string; stdout: string } {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-config-e2e-'));
  const result = spawnSync(process.execPath, [MAIN], {
    env: { PATH: process.env.PATH, NODE_ENV: 'test', DATA_DIR: dataDir, PORT: '0', GRPC_PORT: '0', ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: result.status, stderr: result.stderr, stdout: result.stdout };
}

describe('bad configuration stops the process with one line naming the variable', () => {
  it.each([
    ['TRUST_PROXY', 'banana'],
    ['CORS_ORIGINS', 'https://admin.example.com/path'],
    ['PUBLIC_URL', 'not a url'],
    ['AUTH_WINDOW', '15m'],
  ])('%s=%s exits 78 naming it', (name, value) => {
    const result = start({ [name]: value });
    expect(result.status).toBe(78);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(new RegExp(`^config: ${name}: `));
    expect(result.stdout).toBe('');
  });
});

describe('the bootstrap admin password follows the password policy', () => {
  it.each([
    ['too short', 'short pass 12', 'must be at least 15 characters'],
    ['a common password', 'passwordpassword', 'is a commonly used password'],
    ['containing the email', 'first-admin is my password', 'must not contain the email address'],
  ])('%s stops start-up with exit 78 and one line naming BOOTSTRAP_ADMIN_PASSWORD, without the value', (_case, password, reason) => {
    const result = start({ BOOTSTRAP_ADMIN_EMAIL: 'first-admin@example.com', BOOTSTRAP_ADMIN_PASSWORD: password });
    expect(result.status).toBe(78);
    expect(result.stderr.trim().split('\n')).toEqual([`config: BOOTSTRAP_ADMIN_PASSWORD: ${reason}`]);
    expect(result.stderr + result.stdout).not.toContain(password);
  });
});
