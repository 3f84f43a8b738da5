import 'reflect-metadata';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppModule } from '../../src/app.module';
import { loadConfig } from '../../src/config/config';
import { buildOpenApiDocument } from '../../src/docs/openapi';
import { createLogger } from '../../src/observability/logger';
import { MetricsService } from '../../src/observability/metrics.service';

const ROOT = path.resolve(__dirname, '..', '..');
const COMMITTED = path.join(ROOT, 'docs', 'openapi.json');
const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

/**
 * The OpenAPI document, built from the controllers' metadata in Nest's preview mode (modules
 * scanned, no provider instantiated): no database, NATS or port, so it runs in the unit tier.
 */
async function currentDocument(): Promise<string> {
  const config = loadConfig({ NODE_ENV: 'test' });
  const app = await NestFactory.create<NestFastifyApplication>(
    AppModule.register({ config, logger: createLogger('silent'), metrics: new MetricsService() }),
    new FastifyAdapter(),
    { preview: true, logger: false, abortOnError: false },
  );
  try {
    return `${JSON.stringify(buildOpenApiDocument(app), null, 2)}\n`;
  } finally {
    await app.close();
  }
}

function bin(name: string): string {
  return path.join(ROOT, 'node_modules', '.bin', name);
}

describe('docs/openapi.json', () => {
  let generated: string;
  beforeAll(async () => {
    generated = await currentDocument();
    if (process.env.UPDATE_OPENAPI === '1') fs.writeFileSync(COMMITTED, generated);
  });
  afterAll(() => undefined);

  it('is the document the code generates (regenerate with `npm run docs:openapi`)', () => {
    const committed = fs.existsSync(COMMITTED) ? fs.readFileSync(COMMITTED, 'utf8') : '';
    expect(committed === generated, 'docs/openapi.json is stale: run `npm run docs:openapi` and commit it').toBe(true);
  });

  it('gives every operation a summary, a tag, a unique id, and a schema for every success body', () => {
    const document = JSON.parse(generated) as {
      paths: Record<
        string,
        Record<
          string,
          {
            summary?: string;
            tags?: string[];
            operationId?: string;
            responses: Record<string, { content?: Record<string, { schema?: unknown }> }>;
          }
        >
      >;
      tags: Array<{ name: string }>;
    };
    const ids = new Set<string>();
    const declaredTags = new Set(document.tags.map((tag) => tag.name));
    for (const [route, item] of Object.entries(document.paths)) {
      expect(
        Object.keys(item).filter((key) => !HTTP_METHODS.includes(key)),
        route,
      ).toEqual([]);
      for (const [method, operation] of Object.entries(item)) {
        const where = `${method.toUpperCase()} ${route}`;
        expect(operation.summary, where).toBeTruthy();
        expect(operation.tags?.length, where).toBe(1);
        expect(declaredTags.has(operation.tags![0]!), where).toBe(true);
        expect(ids.has(operation.operationId!), where).toBe(false);
        ids.add(operation.operationId!);
        const successes = Object.entries(operation.responses).filter(([status]) => /^[23]/.test(status));
        expect(successes.length, where).toBeGreaterThan(0);
        for (const [, response] of successes) {
          for (const [type, media] of Object.entries(response.content ?? {})) expect(media.schema, `${where} ${type}`).toBeDefined();
        }
      }
    }
    expect(ids.size).toBeGreaterThan(60);
  });

  it('answers with the status codes the routes use', () => {
    const document = JSON.parse(generated) as { paths: Record<string, Record<string, { responses: Record<string, unknown> }>> };
    const statuses = (route: string, method: string) =>
      Object.keys(document.paths[route]![method]!.responses).filter((status) => /^[23]/.test(status));
    expect(statuses('/v1/query/{view_type}', 'post')).toEqual(['200']);
    expect(statuses('/v1/commands/{aggregate_type}/{aggregate_id}', 'post')).toEqual(['200']);
    expect(statuses('/v1/auth/signin', 'post')).toEqual(['200']);
    expect(statuses('/v1/auth/signup', 'post')).toEqual(['201']);
    expect(statuses('/admin/users/{id}', 'delete')).toEqual(['204']);
    expect(statuses('/v1/auth/oidc/google/start', 'get')).toEqual(['302']);
  });

  it('passes Redocly and Spectral without errors', () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'gh-openapi-')), 'openapi.json');
    fs.writeFileSync(file, generated);
    const redocly = spawnSync(bin('redocly'), ['lint', file, '--format=stylish'], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
    expect(redocly.status, redocly.stdout + redocly.stderr).toBe(0);
    const spectral = spawnSync(
      bin('spectral'),
      ['lint', file, '--ruleset', path.join(ROOT, '.spectral.yaml'), '--fail-severity', 'error'],
      {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 120_000,
      },
    );
    expect(spectral.status, spectral.stdout + spectral.stderr).toBe(0);
  });
});
