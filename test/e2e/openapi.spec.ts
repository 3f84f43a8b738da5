import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootApp, type TestApp } from '../support/app';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { http } from '../support/http';
import { servicesAvailable } from '../support/services';

const available = servicesAvailable({ postgres: true });

describe.skipIf(!available)('OpenAPI document and interactive reference', () => {
  let db: TestDatabase;
  let app: TestApp;

  beforeAll(async () => {
    db = await createTestDatabase();
    app = await bootApp({ DATABASE_URL: db.url });
  });
  afterAll(async () => {
    await app?.close();
    await db?.drop();
  });

  it('serves an OpenAPI 3 document listing the auth and admin routes, without credentials', async () => {
    const response = await http(app.url, 'GET', '/docs/openapi.json');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    const document = response.json;
    expect(document.openapi).toMatch(/^3\./);
    expect(document.info.title).toBe('Gatehouse');
    for (const path of [
      '/v1/auth/signup',
      '/v1/auth/signin',
      '/v1/auth/refresh',
      '/v1/auth/me',
      '/admin/keys/rotate',
      '/admin/audit',
      '/admin/audit/export',
      '/admin/audit/verify',
    ]) {
      expect(Object.keys(document.paths), path).toContain(path);
    }
    expect(document.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(document.components.schemas.ProblemDetails.properties).toHaveProperty('code');
    expect(document.components.schemas.ProblemDetails.properties.code.enum).toContain('validation_failed');
  });

  it('states each route’s authorization and the problem responses it can give', async () => {
    const { json: document } = await http(app.url, 'GET', '/docs/openapi.json');
    const signin = document.paths['/v1/auth/signin'].post;
    expect(signin.security).toEqual([]);
    expect(signin.responses.default.content['application/problem+json'].schema.$ref).toBe('#/components/schemas/ProblemDetails');

    const list = document.paths['/admin/audit'].get;
    expect(list.security).toEqual([{ bearer: [] }]);
    expect(list['x-gatehouse-authorization']).toEqual({ kind: 'requires', right: 'iam.audit.read', tenant: 'optional' });
    expect(Object.keys(list.responses)).toEqual(expect.arrayContaining(['200', '400', '401', '403', 'default']));
    const names = list.parameters.map((parameter: { name: string }) => parameter.name);
    expect(names).toEqual(
      expect.arrayContaining(['actor_id', 'target_id', 'tenant_id', 'action', 'from', 'to', 'limit', 'cursor', 'x-tenant-id']),
    );
    expect(list.responses['200'].content['application/json'].schema.$ref).toBe('#/components/schemas/AuditPage');
    expect(document.components.schemas.AuditPage.properties.items.items.$ref).toBe('#/components/schemas/AuditRecord');
    expect(Object.keys(document.components.schemas.AuditRecord.properties)).toEqual(
      expect.arrayContaining(['id', 'seq', 'at', 'actor', 'action', 'target', 'tenant_id', 'changes', 'prev_hash', 'hash']),
    );

    const verify = document.paths['/admin/audit/verify'].get;
    expect(verify.parameters ?? []).not.toContainEqual(expect.objectContaining({ name: 'x-tenant-id' }));
    expect(document.paths['/admin/audit/export'].get.responses['200'].content).toHaveProperty('application/x-ndjson');
  });

  it('serves the interactive reference at /docs, with its assets, without credentials', async () => {
    for (const path of ['/docs', '/docs/']) {
      const page = await http(app.url, 'GET', path);
      expect(page.status, path).toBe(200);
      expect(page.headers.get('content-type')).toMatch(/^text\/html/);
      expect(page.text).toContain('swagger-ui');
      expect(page.headers.get('x-request-id')).toBeTruthy();
    }
    const page = await http(app.url, 'GET', '/docs');
    // every script and stylesheet the page references loads (relative to /docs as the browser resolves them)
    const assets = [...page.text.matchAll(/(?:src|href)="([^"]+\.(?:js|css))"/g)].map((match) => match[1]!);
    expect(assets.length).toBeGreaterThan(1);
    for (const asset of assets) {
      const url = new URL(asset, `${app.url}/docs`);
      const response = await fetch(url);
      expect(response.status, url.pathname).toBe(200);
      await response.arrayBuffer();
    }
  });
});

describe.skipIf(!available)('OpenAPI request schemas', () => {
  it('describes request bodies and query parameters from the same zod schemas that validate them', async () => {
    const db = await createTestDatabase();
    const app = await bootApp({ DATABASE_URL: db.url });
    try {
      const document = (await http(app.url, 'GET', '/docs/openapi.json')).json;
      const signup = JSON.stringify(document.paths['/v1/auth/signup'].post.requestBody);
      for (const field of ['email', 'password', 'display_name']) expect(signup).toContain(field);
      const assignment = JSON.stringify(document.paths['/admin/assignments'].post.requestBody);
      for (const field of ['principal_id', 'tenant_id', 'role_id']) expect(assignment).toContain(field);
      const users = (document.paths['/admin/users'].get.parameters as Array<{ name: string }>).map((parameter) => parameter.name);
      expect(users).toEqual(expect.arrayContaining(['limit', 'cursor', 'email', 'status', 'tenant_id']));
    } finally {
      await app.close();
      await db.drop();
    }
  });
});

describe.skipIf(!available)('OpenAPI response schemas', () => {
  it('describes the token response and the admin resources', async () => {
    const db = await createTestDatabase();
    const app = await bootApp({ DATABASE_URL: db.url });
    try {
      const document = (await http(app.url, 'GET', '/docs/openapi.json')).json;
      const text = (value: unknown) => JSON.stringify(value);
      expect(text(document.paths['/v1/auth/signup'].post.responses['201'])).toMatch(/TokenResponse|refresh_token/);
      expect(text(document.paths['/v1/auth/signin'].post.responses['200'])).toMatch(/mfa_required|MfaPending/);
      expect(text(document)).toContain('refresh_token');
      for (const [path, field] of [
        ['/admin/users', 'email_verified'],
        ['/admin/roles', 'built_in'],
        ['/admin/assignments', 'principal_type'],
        ['/admin/tenants', 'name'],
        ['/admin/service-accounts', 'client_id'],
      ] as const) {
        expect(text(document.paths[path].get.responses['200']) + text(document.components), path).toContain(field);
      }
    } finally {
      await app.close();
      await db.drop();
    }
  });
});
