import { z } from 'zod';
import { forwardRulesSchema, forwardSectionSchema, type ForwardRule } from './forward-rules-document';

/** Service kinds of CONTRACT §7, each with its own placement and shard directory. */
export const SERVICE_KINDS = ['aggregate', 'projection', 'runner'] as const;
export type ServiceKind = (typeof SERVICE_KINDS)[number];
export const ROUTING_PARTS = ['placement', 'shards'] as const;
export type RoutingPart = (typeof ROUTING_PARTS)[number];

/** The default placement key: tenants without their own entry go to this shard. */
export const DEFAULT_PLACEMENT = '*';

// CONTRACT §5 tenant ids; `*` is the default entry.
const TENANT_ID = /^[a-z0-9][a-z0-9-]{1,62}$/;
const SHARD_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
// host:port with a DNS name, IPv4 address or bracketed IPv6 address; no scheme, no path
const ENDPOINT = /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]):(\d{1,5})$/;

export type Placement = Record<string, string>;
export type ShardDirectory = Record<string, string[]>;

export interface KindTable {
  placement: Placement;
  shards: ShardDirectory;
}

export type RoutingDocument = Record<ServiceKind, KindTable> & {
  /** forward-auth rules (CONTRACT §10); absent in the file = none */
  forward?: { rules: ForwardRule[] };
};

export const placementSchema = z.record(
  z.string().refine((key) => key === DEFAULT_PLACEMENT || TENANT_ID.test(key), 'must be a tenant id or "*"'),
  z.string().regex(SHARD_ID, 'must be a shard id'),
);

const endpointSchema = z
  .string()
  .regex(ENDPOINT, 'must be host:port')
  .refine((value) => {
    const port = Number(ENDPOINT.exec(value)?.[1]);
    return port >= 1 && port <= 65535;
  }, 'port must be 1..65535');

export const shardsSchema = z.record(
  z.string().regex(SHARD_ID, 'must be a shard id'),
  z.array(endpointSchema).min(1, 'a shard needs at least one endpoint').max(64),
);

const kindTableSchema = z.strictObject({ placement: placementSchema.default({}), shards: shardsSchema.default({}) });

/** The file form; every kind may be omitted (empty table). */
export const routingDocumentSchema = z.strictObject({
  aggregate: kindTableSchema.optional(),
  projection: kindTableSchema.optional(),
  runner: kindTableSchema.optional(),
  forward: forwardSectionSchema.optional(),
});

export interface RoutingProblem {
  path: string;
  message: string;
}

/** Thrown when a document or part is refused; the last good table stays. */
export class RoutingValidationError extends Error {
  constructor(readonly problems: RoutingProblem[]) {
    super(problems.map((problem) => `${problem.path}: ${problem.message}`).join('; '));
    this.name = 'RoutingValidationError';
  }
}

function problemsOf(error: z.ZodError, prefix: string): RoutingProblem[] {
  return error.issues.map((issue) => ({
    path: [prefix, ...issue.path.map(String)].filter(Boolean).join('.'),
    message: issue.message,
  }));
}

export function emptyKindTable(): KindTable {
  return { placement: {}, shards: {} };
}

/** Parses one part as stored under a KV key (`aggregate.placement`, ...). Bad JSON or shape throws. */
export function parsePart(kind: ServiceKind, part: RoutingPart, raw: string | Uint8Array): Placement | ShardDirectory {
  let value: unknown;
  try {
    value = JSON.parse(typeof raw === 'string' ? raw : Buffer.from(raw).toString('utf8'));
  } catch {
    throw new RoutingValidationError([{ path: `${kind}.${part}`, message: 'is not valid JSON' }]);
  }
  const schema = part === 'placement' ? placementSchema : shardsSchema;
  const result = schema.safeParse(value);
  if (!result.success) throw new RoutingValidationError(problemsOf(result.error, `${kind}.${part}`));
  return result.data;
}

/** Parses the whole file form. */
export function parseDocument(raw: string): RoutingDocument {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new RoutingValidationError([{ path: '(document)', message: 'is not valid JSON' }]);
  }
  const result = routingDocumentSchema.safeParse(value);
  if (!result.success) throw new RoutingValidationError(problemsOf(result.error, ''));
  const document = {} as RoutingDocument;
  for (const kind of SERVICE_KINDS) {
    const table = result.data[kind] ?? emptyKindTable();
    checkConsistency(kind, table);
    document[kind] = table;
  }
  if (result.data.forward !== undefined) document.forward = { rules: result.data.forward.rules };
  return document;
}

/** Parses the forward rules as stored under the KV key `forward.rules` (the bare array). */
export function parseForwardRules(raw: string | Uint8Array): ForwardRule[] {
  let value: unknown;
  try {
    value = JSON.parse(typeof raw === 'string' ? raw : Buffer.from(raw).toString('utf8'));
  } catch {
    throw new RoutingValidationError([{ path: 'forward.rules', message: 'is not valid JSON' }]);
  }
  return validateForwardRules(value);
}

/** Validates a decoded rules array (the API's PUT body, a KV value). */
export function validateForwardRules(value: unknown): ForwardRule[] {
  const result = forwardRulesSchema.safeParse(value);
  if (!result.success) throw new RoutingValidationError(problemsOf(result.error, 'forward.rules'));
  return result.data;
}

/** Placement may only name shards the directory has. */
export function checkConsistency(kind: ServiceKind, table: KindTable): void {
  const problems: RoutingProblem[] = [];
  for (const [tenant, shard] of Object.entries(table.placement)) {
    if (!Object.hasOwn(table.shards, shard)) problems.push({ path: `${kind}.placement.${tenant}`, message: `unknown shard id ${shard}` });
  }
  if (problems.length > 0) throw new RoutingValidationError(problems);
}

export function isServiceKind(value: unknown): value is ServiceKind {
  return typeof value === 'string' && (SERVICE_KINDS as readonly string[]).includes(value);
}

/** KV key of a part: `aggregate.placement`, `projection.shards`, ... */
export function partKey(kind: ServiceKind, part: RoutingPart): string {
  return `${kind}.${part}`;
}

export function parsePartKey(key: string): { kind: ServiceKind; part: RoutingPart } | undefined {
  const [kind, part, ...rest] = key.split('.');
  if (rest.length > 0 || !isServiceKind(kind) || (part !== 'placement' && part !== 'shards')) return undefined;
  return { kind, part };
}
