import fs from 'node:fs';
import path from 'node:path';
import { ModulesContainer } from '@nestjs/core';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import {
  DocumentBuilder,
  SwaggerModule,
  type OpenAPIObject,
  type OperationObject,
  type ParameterObject,
  type ResponsesObject,
  type SchemaObject,
} from '@nestjs/swagger';
import { z } from 'zod';
import { AUTH_DECLARATION, type AuthDeclaration } from '../common/auth-declaration';
import { PROBLEM_CONTENT_TYPE } from '../common/problem-details';
import { problemDetailsSchema } from './problem-details.schema';

const PROBLEM_REF = { $ref: '#/components/schemas/ProblemDetails' };
const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

/** Every tag the controllers use (`@ApiTags`), in reading order, with what it groups. */
const TAGS: Array<{ name: string; description: string }> = [
  { name: 'auth', description: 'Sign-up, sign-in, email verification and password reset (CONTRACT §3)' },
  { name: 'account', description: 'The signed-in user: profile, sessions, refresh and sign-out' },
  { name: 'mfa', description: 'TOTP and recovery codes' },
  { name: 'google-sign-in', description: 'Google sign-in and account linking (CONTRACT §4)' },
  { name: 'oauth', description: 'Service-account tokens, introspection, revocation, JWKS and metadata' },
  { name: 'admin-tenants', description: 'Tenants (platform scope)' },
  { name: 'admin-users', description: 'User accounts, their credentials, sessions and linked identities' },
  { name: 'admin-rights', description: 'Rights: the built-in ones and custom ones' },
  { name: 'admin-roles', description: 'Roles and their grants' },
  { name: 'admin-assignments', description: 'Who holds which role where' },
  { name: 'admin-service-accounts', description: 'Service accounts and their secrets' },
  { name: 'admin-authz', description: 'Explaining authorization decisions' },
  { name: 'admin-keys', description: 'Token-signing keys' },
  { name: 'audit', description: 'The hash-chained audit trail' },
  { name: 'admin-routing', description: 'Routing tables and forward-auth rules' },
  { name: 'admin-rebalancing', description: 'Moving tenants between shards' },
  { name: 'proxy', description: 'Calls relayed to the tenant’s upstream shard (commands, queries, runner)' },
  { name: 'forward-auth', description: 'Decisions for edge proxies protecting services Gatehouse does not relay' },
  { name: 'operations', description: 'Liveness, readiness and metrics (keep `/metrics` off the public edge)' },
];

function packageVersion(): string {
  try {
    // src/docs or dist/docs: the package root is two levels up either way
    const manifest = JSON.parse(fs.readFileSync(path.resolve(__dirname, '..', '..', 'package.json'), 'utf8')) as { version?: string };
    return manifest.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

function problem(description: string): ResponsesObject[string] {
  return { description, content: { [PROBLEM_CONTENT_TYPE]: { schema: PROBLEM_REF } } };
}

/** Every controller handler's auth declaration, keyed like @nestjs/swagger's default operationId. */
function declarationsByOperationId(app: NestFastifyApplication): Map<string, AuthDeclaration | undefined> {
  const declarations = new Map<string, AuthDeclaration | undefined>();
  for (const module of app.get(ModulesContainer).values()) {
    for (const wrapper of module.controllers.values()) {
      const controller = wrapper.metatype as (new (...args: never[]) => unknown) | null;
      if (controller === null) continue;
      const classDeclaration = Reflect.getMetadata(AUTH_DECLARATION, controller) as AuthDeclaration | undefined;
      for (const name of Object.getOwnPropertyNames(controller.prototype)) {
        const handler = (controller.prototype as Record<string, unknown>)[name];
        if (typeof handler !== 'function' || name === 'constructor') continue;
        const declaration = (Reflect.getMetadata(AUTH_DECLARATION, handler) as AuthDeclaration | undefined) ?? classDeclaration;
        declarations.set(`${controller.name}_${name}`, declaration);
      }
    }
  }
  return declarations;
}

function describeDeclaration(declaration: AuthDeclaration | undefined): string {
  if (declaration === undefined) return 'Not callable: the route declares no authorization.';
  switch (declaration.kind) {
    case 'public':
      return 'Public: no credentials needed.';
    case 'authenticated':
      return 'Any signed-in principal (Bearer access token); acts on the caller’s own data.';
    case 'delegated':
      return `Decided per call by the ${declaration.by}: the first matching rule names the right (or makes the route public); no rule → 403.`;
    case 'requires': {
      const scope =
        declaration.tenant === 'required'
          ? ' in the tenant named by `x-tenant-id` (required)'
          : declaration.tenant === 'optional'
            ? ' in the tenant named by `x-tenant-id` when given (the call is then confined to that tenant), at platform scope otherwise'
            : ' at platform scope';
      const resource = declaration.resource !== undefined ? ` for the resource in \`${declaration.resource}\`` : '';
      return `Requires the right \`${declaration.right}\`${resource}${scope}.`;
    }
  }
}

/** Adds what the global guard enforces to one operation: security, x-tenant-id, and the errors it answers with. */
function annotate(operation: OperationObject, declaration: AuthDeclaration | undefined): void {
  const responses: ResponsesObject = operation.responses ?? {};
  const add = (status: string, description: string) => {
    responses[status] ??= problem(description);
  };
  const sentence = describeDeclaration(declaration);
  operation.description = operation.description ? `${operation.description}\n\n${sentence}` : sentence;
  (operation as OperationObject & Record<string, unknown>)['x-gatehouse-authorization'] = declaration ?? { kind: 'undeclared' };

  if (declaration?.kind === 'public') {
    operation.security = [];
  } else {
    operation.security = [{ bearer: [] }];
    add('401', '`unauthenticated` (no token) or `invalid_token` (bad, expired or revoked token); with `WWW-Authenticate: Bearer`');
    if (declaration?.kind === 'requires' || declaration?.kind === 'delegated') {
      add('403', '`forbidden` (right not held) or `tenant_forbidden`');
    }
  }
  if (declaration?.kind === 'requires' && declaration.tenant !== 'none') {
    const header: ParameterObject = {
      name: 'x-tenant-id',
      in: 'header',
      required: declaration.tenant === 'required',
      description: 'tenant the call acts in',
      schema: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{1,62}$' },
    };
    operation.parameters = [...(operation.parameters ?? []), header];
    add('400', '`tenant_required`, `invalid_tenant_id` or `validation_failed`');
  }
  if ((operation.parameters ?? []).some((parameter) => 'in' in parameter && parameter.in !== 'header')) {
    add('400', '`validation_failed`, with `errors` naming each field');
  }
  if (operation.requestBody !== undefined) {
    add('400', '`validation_failed` (with `errors`) or `malformed_json`');
    add('413', '`payload_too_large`');
    add('415', '`unsupported_media_type`');
  }
  add('default', 'Any other error, as RFC 9457 problem details (`429 rate_limited` carries `Retry-After`)');
  operation.responses = responses;
}

/** The OpenAPI 3 document of every controller route, with the authorization each declares. */
export function buildOpenApiDocument(app: NestFastifyApplication): OpenAPIObject {
  const config = new DocumentBuilder()
    .setTitle('Gatehouse')
    .setDescription(
      'Identity and gateway service. JSON in and out with snake_case fields; errors are RFC 9457 problem details ' +
        '(`application/problem+json`); lists are `{items, next_cursor}` with `limit` 1..200 and an opaque `cursor`. ' +
        'Every response carries `x-request-id` and `x-correlation-id`.',
    )
    .setVersion(packageVersion())
    .addBearerAuth({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'ES256 access token (`at+jwt`)' }, 'bearer')
    .build();
  const document = SwaggerModule.createDocument(app, config);
  const problemSchema = z.toJSONSchema(problemDetailsSchema, { target: 'openapi-3.0' }) as SchemaObject & { $schema?: string };
  delete problemSchema.$schema;
  document.components = { ...document.components, schemas: { ...document.components?.schemas, ProblemDetails: problemSchema } };

  document.servers = [{ url: '/', description: 'this Gatehouse' }];
  document.tags = TAGS;

  const declarations = declarationsByOperationId(app);
  for (const pathItem of Object.values(document.paths)) {
    // @All() routes also come out with methods OpenAPI 3.0 does not have (e.g. SEARCH)
    for (const key of Object.keys(pathItem)) {
      if (!(HTTP_METHODS as readonly string[]).includes(key) && !['summary', 'description', 'parameters', 'servers'].includes(key)) {
        delete (pathItem as Record<string, unknown>)[key];
      }
    }
    for (const method of HTTP_METHODS) {
      const operation = pathItem[method];
      if (operation === undefined) continue;
      const id = operation.operationId ?? '';
      // an @All() handler's operations carry the method as a suffix (`RunnerController_passthrough_get`)
      annotate(operation, declarations.get(id) ?? declarations.get(id.replace(/_[a-z]+$/, '')));
    }
  }
  return document;
}

/**
 * `GET /docs/openapi.json` and the interactive reference at `GET /docs`. They are Fastify
 * routes outside Nest's controllers, so the global guard does not apply: both are public, as
 * the document describes routes, not data. Built on first request, so boot stays fast.
 * Must run before the app listens (it registers routes and the static-asset plugin).
 */
export function setupOpenApi(app: NestFastifyApplication): void {
  SwaggerModule.setup('docs', app, () => buildOpenApiDocument(app), {
    jsonDocumentUrl: 'docs/openapi.json',
    raw: ['json'],
    customSiteTitle: 'Gatehouse API reference',
  });
}
