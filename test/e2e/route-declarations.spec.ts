import 'reflect-metadata';
import { RequestMethod, type DynamicModule, type Type } from '@nestjs/common';
import { METHOD_METADATA, MODULE_METADATA, PATH_METADATA } from '@nestjs/common/constants';
import { PATTERN_METADATA } from '@nestjs/microservices/constants';
import { describe, expect, it } from 'vitest';
import { AppModule } from '../../src/app.module';
import { AUTH_DECLARATION, STEP_UP_DECLARATION, type AuthDeclaration } from '../../src/common/auth-declaration';
import { loadConfig } from '../../src/config/config';
import { createLogger } from '../../src/observability/logger';
import { MetricsService } from '../../src/observability/metrics.service';
import { SUBSCRIBE_DECLARATION, SUBSCRIBE_PATH } from '../../src/proxy/subscription-handshake';

type ModuleRef = Type | DynamicModule | Promise<DynamicModule>;

/**
 * Every controller the app module graph declares, read from the @Module metadata without
 * instantiating anything: the snapshot needs no database, NATS or listening port.
 */
async function controllersOf(root: ModuleRef): Promise<Set<Type>> {
  const controllers = new Set<Type>();
  const seen = new Set<unknown>();
  const visit = async (ref: ModuleRef | undefined): Promise<void> => {
    const resolved = await ref;
    if (resolved === undefined || seen.has(resolved)) return;
    seen.add(resolved);
    const isDynamic = typeof resolved === 'object' && 'module' in resolved;
    const type = isDynamic ? resolved.module : (resolved as Type);
    const dynamic = isDynamic ? resolved : undefined;
    const metadata = (key: string) => (Reflect.getMetadata(key, type) as unknown[] | undefined) ?? [];
    for (const controller of [...metadata(MODULE_METADATA.CONTROLLERS), ...(dynamic?.controllers ?? [])]) {
      controllers.add(controller as Type);
    }
    for (const imported of [...metadata(MODULE_METADATA.IMPORTS), ...(dynamic?.imports ?? [])]) {
      // forwardRef(() => Module) wraps the reference
      const unwrapped =
        typeof imported === 'object' && imported !== null && 'forwardRef' in imported
          ? (imported as { forwardRef: () => ModuleRef }).forwardRef()
          : imported;
      await visit(unwrapped as ModuleRef);
    }
  };
  await visit(root);
  return controllers;
}

function describeDeclaration(declaration: AuthDeclaration | undefined): string {
  if (declaration === undefined) return 'UNDECLARED (denied)';
  switch (declaration.kind) {
    case 'public':
      return 'public';
    case 'authenticated':
      return 'authenticated';
    case 'delegated':
      return `delegated to ${declaration.by}`;
    case 'requires':
      return `requires ${declaration.right}${declaration.tenant !== 'none' ? ` tenant=${declaration.tenant}` : ''}${declaration.resource ? ` resource=${declaration.resource}` : ''}${declaration.policy ? ' +policy' : ''}`;
  }
}

/**
 * Who can reach what: every route with its auth declaration, compared to a committed
 * snapshot. A diff here is a permission change and is reviewed as one.
 */
describe('route authorization declarations', () => {
  it('matches the reviewed snapshot (HTTP routes, gRPC methods, WebSocket paths), and no route is undeclared', async () => {
    const lines: string[] = [];
    const config = loadConfig({ NODE_ENV: 'test' });
    const root = AppModule.register({ config, logger: createLogger('silent'), metrics: new MetricsService() });
    for (const controller of await controllersOf(root)) {
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
        // step-up beyond the second factor every admin mutation needs (CONTRACT §6)
        const stepUp = Reflect.getMetadata(STEP_UP_DECLARATION, handler) === undefined ? '' : ' +recent-auth';
        lines.push(`HTTP ${RequestMethod[method].padEnd(6)} ${full.padEnd(40)} ${describeDeclaration(declared)}${stepUp}`);
      }
    }
    // WebSocket upgrades are handled outside Nest's router (the guard does not see handshakes)
    lines.push(`WS   GET    ${SUBSCRIBE_PATH.padEnd(40)} ${describeDeclaration(SUBSCRIBE_DECLARATION)}`);
    lines.sort();
    expect(lines.filter((line) => line.includes('UNDECLARED'))).toEqual([]);
    await expect(lines.join('\n') + '\n').toMatchFileSnapshot('./__snapshots__/route-declarations.txt');
  });
});
