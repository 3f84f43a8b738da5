import { RequestMethod } from '@nestjs/common';
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants';
import { ModulesContainer } from '@nestjs/core';
import { PATTERN_METADATA } from '@nestjs/microservices/constants';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUTH_DECLARATION, type AuthDeclaration } from '../../src/authz/auth-declaration';
import { SUBSCRIBE_DECLARATION, SUBSCRIBE_PATH } from '../../src/proxy/subscription-handshake';
import { bootApp, type TestApp } from '../support/app';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { servicesAvailable } from '../support/services';

const available = servicesAvailable({ postgres: true });

function describeDeclaration(declaration: AuthDeclaration | undefined): string {
  if (declaration === undefined) return 'UNDECLARED (denied)';
  switch (declaration.kind) {
    case 'public':
      return 'public';
    case 'authenticated':
      return 'authenticated';
    case 'requires':
      return `requires ${declaration.right}${declaration.tenant !== 'none' ? ` tenant=${declaration.tenant}` : ''}${declaration.resource ? ` resource=${declaration.resource}` : ''}`;
  }
}

/**
 * Who can reach what: every route with its auth declaration, compared to a committed
 * snapshot. A diff here is a permission change and is reviewed as one.
 */
describe.skipIf(!available)('route authorization declarations', () => {
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

  it('matches the reviewed snapshot (HTTP routes, gRPC methods, WebSocket paths), and no route is undeclared', async () => {
    const lines: string[] = [];
    for (const module of app.gatehouse.app.get(ModulesContainer).values()) {
      for (const wrapper of module.controllers.values()) {
        const controller = wrapper.metatype as (new (...args: never[]) => unknown) | null;
        if (controller === null) continue;
        const prefix = (Reflect.getMetadata(PATH_METADATA, controller) as string | undefined) ?? '';
        const classDeclaration = Reflect.getMetadata(AUTH_DECLARATION, controller) as AuthDeclaration | undefined;
        for (const name of Object.getOwnPropertyNames(controller.prototype)) {
          const handler = (controller.prototype as Record<string, unknown>)[name];
          if (typeof handler !== 'function' || name === 'constructor') continue;
          const declared = (Reflect.getMetadata(AUTH_DECLARATION, handler) as AuthDeclaration | undefined) ?? classDeclaration;
          // gRPC methods: @GrpcMethod('Service', 'Method') patterns
          const patterns = Reflect.getMetadata(PATTERN_METADATA, handler) as unknown;
          for (const pattern of Array.isArray(patterns) ? patterns : patterns === undefined ? [] : [patterns]) {
            const { service, rpc } = pattern as { service?: string; rpc?: string };
            if (service !== undefined && rpc !== undefined) {
              lines.push(`GRPC UNARY  ${`${service}/${rpc}`.padEnd(40)} ${describeDeclaration(declared)}`);
            }
          }
          const path = Reflect.getMetadata(PATH_METADATA, handler) as string | undefined;
          const method = Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod | undefined;
          if (path === undefined || method === undefined) continue;
          const full = `/${[prefix, path]
            .map((part) => part.replace(/^\/|\/$/g, ''))
            .filter(Boolean)
            .join('/')}`;
          lines.push(`HTTP ${RequestMethod[method].padEnd(6)} ${full.padEnd(40)} ${describeDeclaration(declared)}`);
        }
      }
    }
    // WebSocket upgrades are handled outside Nest's router (the guard does not see handshakes)
    lines.push(`WS   GET    ${SUBSCRIBE_PATH.padEnd(40)} ${describeDeclaration(SUBSCRIBE_DECLARATION)}`);
    lines.sort();
    expect(lines.filter((line) => line.includes('UNDECLARED'))).toEqual([]);
    await expect(lines.join('\n') + '\n').toMatchFileSnapshot('./__snapshots__/route-declarations.txt');
  });
});
