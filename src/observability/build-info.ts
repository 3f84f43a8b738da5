import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const APP_ROOT = path.resolve(__dirname, '..', '..');

export interface BuildInfo {
  version: string;
  commit: string;
}

/**
 * Read once at start, never per request: an image carries `build-info.json` (written by the
 * Dockerfile from its APP_VERSION / GIT_SHA build arguments); a checkout falls back to
 * package.json and the commit git reports for it.
 */
let cached: BuildInfo | undefined;

export function readBuildInfo(): BuildInfo {
  cached ??= loadBuildInfo();
  return cached;
}

function loadBuildInfo(): BuildInfo {
  try {
    const info = JSON.parse(fs.readFileSync(path.join(APP_ROOT, 'build-info.json'), 'utf8')) as Partial<BuildInfo>;
    if (typeof info.version === 'string' && typeof info.commit === 'string') return { version: info.version, commit: info.commit };
  } catch {
    // not an image build
  }
  let version = 'unknown';
  let commit = 'unknown';
  try {
    version = (JSON.parse(fs.readFileSync(path.join(APP_ROOT, 'package.json'), 'utf8')) as { version?: string }).version ?? version;
  } catch {
    // keep "unknown"
  }
  try {
    commit = execFileSync('git', ['rev-parse', 'HEAD'], {
      cwd: APP_ROOT,
      encoding: 'utf8',
      timeout: 2000,
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    // no git, or not a checkout
  }
  return { version, commit };
}
