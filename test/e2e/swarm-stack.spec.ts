import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { validate, ValidationSeverity, type ValidatorSettings } from 'dockerfile-utils';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { configSchema } from '../../src/config/config.schema';
import { parseDocument } from '../../src/routing/routing-document';

/*
 * The deployment files, checked without a Docker engine: `docker stack config` (the CLI
 * validates and interpolates a stack file offline), the properties the platform relies on,
 * and the Dockerfile (dockerfile-utils, the validator behind the Dockerfile language server,
 * plus the properties a reviewer would look for).
 */

const ROOT = path.resolve(__dirname, '..', '..');
const STACK_FILE = path.join(ROOT, 'swarm', 'stacks', 'platform.yml');
const DOCKERFILE = path.join(ROOT, 'Dockerfile');

/** Variables that are secrets: in the stack they may only arrive as NAME_FILE. */
const SECRET_VARIABLES = [
  'MASTER_KEY',
  'DATABASE_PASSWORD',
  'DATABASE_MIGRATION_PASSWORD',
  'OIDC_GOOGLE_CLIENT_SECRET',
  'BOOTSTRAP_ADMIN_PASSWORD',
  'SMTP_URL',
  'NATS_PASSWORD',
];

const dockerCli = spawnSync('docker', ['--version'], { encoding: 'utf8' });
const hasDocker = dockerCli.status === 0;
const requireDocker = process.env.REQUIRE_SERVICES === '1';
if (!hasDocker) {
  console.warn(
    requireDocker
      ? 'swarm stack: the docker CLI is missing and REQUIRE_SERVICES=1: the `docker stack config` test fails'
      : 'swarm stack: the docker CLI is missing: `docker stack config` is skipped; the raw stack file is checked instead',
  );
}

function dockerStackConfig(env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  // a clean environment, so variables of the calling shell do not change the result
  const result = spawnSync('docker', ['stack', 'config', '-c', STACK_FILE], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    timeout: 30_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** What Swarm would deploy: the CLI's interpolated output, or (no CLI) the file with defaults. */
function loadStack(): Stack {
  if (hasDocker) {
    const result = dockerStackConfig();
    if (result.status !== 0) throw new Error(`docker stack config failed: ${result.stderr}`);
    return parse(result.stdout) as Stack;
  }
  // compose files are YAML 1.1 (0400 is octal); `${NAME:-default}` becomes its default
  const raw = fs.readFileSync(STACK_FILE, 'utf8').replace(/\$\{[A-Z0-9_]+(?::-([^}]*))?\}/g, (_match, fallback?: string) => fallback ?? '');
  return parse(raw, { version: '1.1' }) as Stack;
}

interface ServiceSecret {
  source: string;
  target?: string;
  uid?: string;
  mode?: number;
}
interface Service {
  image: string;
  command?: string[];
  environment?: Record<string, string | null>;
  secrets?: (ServiceSecret | string)[];
  configs?: { source: string; target?: string }[];
  networks?: string[] | Record<string, unknown>;
  ports?: { target: number; published?: number; mode?: string }[];
  volumes?: (string | { source: string; target: string })[];
  healthcheck?: { test: string[] | string; interval?: string; timeout?: string; retries?: number; start_period?: string };
  stop_grace_period?: string;
  deploy?: {
    mode?: string;
    replicas?: number;
    endpoint_mode?: string;
    placement?: { constraints?: string[]; preferences?: { spread: string }[]; max_replicas_per_node?: number };
    resources?: { limits?: { cpus?: string; memory?: string }; reservations?: { cpus?: string; memory?: string } };
    update_config?: { parallelism?: number; order?: string; failure_action?: string; monitor?: string };
    rollback_config?: { parallelism?: number; order?: string; failure_action?: string };
  };
}
interface Stack {
  services: Record<string, Service>;
  networks?: Record<string, { driver?: string; attachable?: boolean; ipam?: { config?: { subnet: string }[] } } | null>;
  volumes?: Record<string, unknown>;
  secrets?: Record<string, { external?: boolean; file?: string; name?: string }>;
  configs?: Record<string, { file?: string; external?: boolean; name?: string }>;
}

/** Go duration strings as compose writes them ("1m30s", "30s", "500ms") in milliseconds. */
function durationMs(value: string | undefined): number {
  if (value === undefined) return 0;
  let total = 0;
  for (const [, amount, unit] of value.matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g)) {
    total += Number(amount) * { h: 3_600_000, m: 60_000, s: 1000, ms: 1 }[unit as 'h' | 'm' | 's' | 'ms'];
  }
  return total;
}

const secretsOf = (service: Service): ServiceSecret[] =>
  (service.secrets ?? []).map((secret) => (typeof secret === 'string' ? { source: secret } : secret));
const networksOf = (service: Service): string[] =>
  Array.isArray(service.networks) ? service.networks : Object.keys(service.networks ?? {});
const KNOWN_VARIABLES = new Set(Object.keys(configSchema.shape));
/** NAME_FILE indirections (ROUTING_FILE is a variable of its own, not one). */
const isFileIndirection = (name: string) => name.endsWith('_FILE') && !KNOWN_VARIABLES.has(name);
const environmentOf = (service: Service): Record<string, string> =>
  Object.fromEntries(Object.entries(service.environment ?? {}).map(([key, value]) => [key, value ?? '']));

describe('swarm/stacks/platform.yml', () => {
  it.skipIf(!hasDocker && !requireDocker)('passes `docker stack config` and wires deployment variables through', () => {
    expect(hasDocker, 'the docker CLI is required with REQUIRE_SERVICES=1').toBe(true);
    const plain = dockerStackConfig();
    expect(plain.stderr).toBe('');
    expect(plain.status).toBe(0);
    const tagged = dockerStackConfig({ GATEHOUSE_TAG: '3f2c1ab', GATEHOUSE_PUBLIC_URL: 'https://id.acme.test' });
    expect(tagged.status).toBe(0);
    const stack = parse(tagged.stdout) as Stack;
    expect(stack.services.gatehouse!.image).toMatch(/:3f2c1ab$/);
    expect(stack.services.gatehouse!.environment!.PUBLIC_URL).toBe('https://id.acme.test');
    expect(stack.services.gatehouse!.environment!.OIDC_GOOGLE_REDIRECT_URI).toBe('https://id.acme.test/v1/auth/oidc/google/callback');
  });

  const stack = loadStack();
  const gatehouse = stack.services.gatehouse!;
  const env = environmentOf(gatehouse);

  it('runs two Gatehouse replicas, updated start-first one at a time, rolled back on failure', () => {
    expect(gatehouse.deploy?.mode ?? 'replicated').toBe('replicated');
    expect(gatehouse.deploy?.replicas).toBe(2);
    expect(gatehouse.deploy?.update_config).toMatchObject({ parallelism: 1, order: 'start-first', failure_action: 'rollback' });
    expect(durationMs(gatehouse.deploy?.update_config?.monitor)).toBeGreaterThan(0);
    expect(gatehouse.deploy?.rollback_config).toMatchObject({ parallelism: 1, order: 'start-first' });
    // an image tag, never an implicit :latest, so a rollback has something to go back to
    expect(gatehouse.image).toMatch(/:[\w.-]+$/);
    expect(gatehouse.image).not.toMatch(/:latest$/);
  });

  it('health-checks /ready on the port Gatehouse listens on', () => {
    const test = gatehouse.healthcheck?.test;
    expect(Array.isArray(test) ? test[0] : test).toBe('CMD');
    const command = Array.isArray(test) ? test.join(' ') : String(test);
    expect(command).toContain(`http://127.0.0.1:${env.PORT}/ready`);
    expect(durationMs(gatehouse.healthcheck?.timeout)).toBeLessThan(durationMs(gatehouse.healthcheck?.interval));
    expect(durationMs(gatehouse.healthcheck?.start_period)).toBeGreaterThanOrEqual(30_000);
  });

  it('gives SIGTERM more time than the drain plus the longest upstream call', () => {
    const drain = Number(env.SHUTDOWN_DRAIN_MS);
    const upstreamTimeout = Number(env.UPSTREAM_TIMEOUT_MS);
    expect(drain).toBeGreaterThan(0);
    expect(upstreamTimeout).toBeGreaterThan(0);
    // an idempotent proxied call may try two endpoints, each until UPSTREAM_TIMEOUT_MS + 1 s
    expect(durationMs(gatehouse.stop_grace_period)).toBeGreaterThan(drain + 2 * (upstreamTimeout + 1000));
  });

  it('places and sizes every service', () => {
    for (const [name, service] of Object.entries(stack.services)) {
      expect(service.deploy?.placement?.constraints?.length, name).toBeGreaterThan(0);
      expect(service.deploy?.resources?.limits?.memory, name).toBeDefined();
      expect(service.deploy?.resources?.limits?.cpus, name).toBeDefined();
      expect(service.healthcheck?.test, name).toBeDefined();
    }
    expect(gatehouse.deploy?.resources?.reservations?.memory).toBeDefined();
    // with start-first on two nodes, max_replicas_per_node: 1 would leave the new task nowhere
    expect(gatehouse.deploy?.placement?.max_replicas_per_node).toBeUndefined();
  });

  it('names only real configuration variables', () => {
    for (const name of Object.keys(env)) {
      const variable = isFileIndirection(name) ? name.slice(0, -'_FILE'.length) : name;
      expect(KNOWN_VARIABLES.has(variable), `${name} is not a Gatehouse variable`).toBe(true);
    }
  });

  it('hands every secret over as a Swarm secret read through *_FILE, and none in the environment', () => {
    for (const name of SECRET_VARIABLES) {
      expect(env, `${name} must not be in environment`).not.toHaveProperty(name);
      expect(env, `${name}_FILE`).toHaveProperty(`${name}_FILE`);
    }
    const attached = new Map(secretsOf(gatehouse).map((secret) => [`/run/secrets/${secret.target ?? secret.source}`, secret]));
    for (const [name, value] of Object.entries(env).filter(([key]) => isFileIndirection(key))) {
      const secret = attached.get(value);
      expect(secret, `${name}=${value} is not an attached secret`).toBeDefined();
      const declared = stack.secrets?.[secret!.source];
      // external: created with `docker secret create`, never a file in this repository
      expect(declared?.external, `${secret!.source} must be external`).toBe(true);
      expect(declared?.file).toBeUndefined();
      // readable by the image's user (node, uid 1000) only
      expect(secret!.uid).toBe('1000');
      expect(secret!.mode).toBe(0o400);
    }
    // DATABASE_URL carries no password; nothing else looks like a credential
    expect(new URL(env.DATABASE_URL!).password).toBe('');
    expect(new URL(env.DATABASE_MIGRATION_URL!).password).toBe('');
    for (const [name, value] of Object.entries(env)) {
      expect(value, name).not.toMatch(/:\/\/[^/@\s]*:[^/@\s]+@/);
    }
    for (const declared of Object.values(stack.secrets ?? {})) expect(declared.external).toBe(true);
  });

  it("migrates as the owner role (PostgreSQL's own secret) and serves as a second role with a second secret (issue 11)", () => {
    const postgres = stack.services.postgres!;
    const postgresEnv = environmentOf(postgres);
    const byPath = (service: Service, file: string) =>
      secretsOf(service).find((secret) => `/run/secrets/${secret.target ?? secret.source}` === file);
    expect(postgresEnv).not.toHaveProperty('POSTGRES_PASSWORD');
    // owner: POSTGRES_USER with the secret PostgreSQL is initialised with
    expect(byPath(postgres, postgresEnv.POSTGRES_PASSWORD_FILE!)?.source).toBe(
      byPath(gatehouse, env.DATABASE_MIGRATION_PASSWORD_FILE!)?.source,
    );
    const owner = new URL(env.DATABASE_MIGRATION_URL!);
    const serving = new URL(env.DATABASE_URL!);
    expect(owner.username).toBe(postgresEnv.POSTGRES_USER);
    // serving: another role, another secret, on the same database
    expect(serving.username).not.toBe(owner.username);
    expect(serving.host).toBe(owner.host);
    expect(serving.pathname).toBe(`/${postgresEnv.POSTGRES_DB}`);
    expect(owner.pathname).toBe(serving.pathname);
    const servingSecret = byPath(gatehouse, env.DATABASE_PASSWORD_FILE!)?.source;
    expect(servingSecret).toBeDefined();
    expect(servingSecret).not.toBe(byPath(gatehouse, env.DATABASE_MIGRATION_PASSWORD_FILE!)?.source);
    // the serving role is created by an init script of the postgres image, with that secret
    const init = (postgres.configs ?? []).find((config) => config.target?.startsWith('/docker-entrypoint-initdb.d/'));
    expect(init, 'an init script in /docker-entrypoint-initdb.d').toBeDefined();
    const declared = stack.configs?.[init!.source];
    const script = fs.readFileSync(path.resolve(path.dirname(STACK_FILE), declared!.file!), 'utf8');
    expect(script).toContain(`CREATE ROLE ${serving.username} LOGIN PASSWORD`);
    const postgresSecret = secretsOf(postgres).find((secret) => secret.source === servingSecret);
    expect(postgresSecret, "the serving role's secret is attached to postgres").toBeDefined();
    expect(script).toContain(`/run/secrets/${postgresSecret!.target ?? postgresSecret!.source}`);
  });

  it('runs PostgreSQL and NATS JetStream once each, on persistent volumes, never two at a time', () => {
    const volumeTargets = (service: Service) =>
      (service.volumes ?? []).map((volume) =>
        typeof volume === 'string' ? { source: volume.split(':')[0], target: volume.split(':')[1] } : volume,
      );
    for (const name of ['postgres', 'nats']) {
      const service = stack.services[name]!;
      expect(service.deploy?.replicas, name).toBe(1);
      expect(service.deploy?.update_config?.order, name).toBe('stop-first');
      expect(service.deploy?.rollback_config?.order, name).toBe('stop-first');
      for (const volume of volumeTargets(service)) expect(stack.volumes, name).toHaveProperty(volume.source!);
    }
    expect(volumeTargets(stack.services.postgres!).map((volume) => volume.target)).toContain('/var/lib/postgresql/data');
    const nats = stack.services.nats!;
    const command = nats.command ?? [];
    expect(command.some((arg) => arg === '--jetstream' || arg === '-js')).toBe(true);
    const storeDir = command[command.findIndex((arg) => arg === '--store_dir' || arg === '-sd') + 1];
    expect(volumeTargets(nats).map((volume) => volume.target)).toContain(storeDir);
    expect(env.NATS_URL).toBe('tls://nats:4222');
    expect(new URL(env.DATABASE_URL!).host).toBe('postgres:5432');
  });

  it('talks TLS to PostgreSQL and NATS, verified against the internal CA, with NATS credentials (CONTRACT §13)', () => {
    const attachedPaths = secretsOf(gatehouse).map((secret) => `/run/secrets/${secret.target ?? secret.source}`);
    expect(attachedPaths).toContain(env.DATABASE_CA_FILE);
    expect(attachedPaths).toContain(env.NATS_TLS_CA_FILE);
    expect(env.NATS_URL).toMatch(/^tls:\/\//);
    expect(env.NATS_USER).toBeDefined();
    const postgresCommand = (stack.services.postgres!.command ?? []).join(' ');
    expect(postgresCommand).toContain('ssl=on');
    const natsCommand = stack.services.nats!.command ?? [];
    expect(natsCommand).toContain('--tls');
    const natsSecrets = secretsOf(stack.services.nats!).map((secret) => `/run/secrets/${secret.target ?? secret.source}`);
    for (const flag of ['--tlscert', '--tlskey', '--config']) {
      expect(natsSecrets).toContain(natsCommand[natsCommand.indexOf(flag) + 1]);
    }
    const postgresSecrets = secretsOf(stack.services.postgres!).map((secret) => `/run/secrets/${secret.target ?? secret.source}`);
    for (const setting of ['ssl_cert_file', 'ssl_key_file']) {
      const file = /=(.*)$/.exec((stack.services.postgres!.command ?? []).find((arg) => arg.startsWith(`${setting}=`)) ?? '')?.[1];
      expect(postgresSecrets).toContain(file);
    }
  });

  it('keeps Gatehouse off the ingress mesh: the edge publishes in host mode and is the only trusted proxy', () => {
    for (const network of Object.values(stack.networks ?? {})) expect(network?.driver).toBe('overlay');
    expect(networksOf(gatehouse).sort()).toEqual(['backend', 'edge']);
    expect(gatehouse.ports ?? []).toEqual([]);
    const edge = stack.services.edge!;
    // `apps`: the services the edge protects through forward auth (not trusted, no Gatehouse)
    expect(networksOf(edge).sort()).toEqual(['apps', 'edge']);
    expect(networksOf(gatehouse)).not.toContain('apps');
    expect(edge.ports?.length).toBeGreaterThan(0);
    for (const port of edge.ports ?? []) expect(port.mode).toBe('host');
    expect(env.TRUST_PROXY).toBe(stack.networks!.edge!.ipam!.config![0]!.subnet);

    const nginx = fs.readFileSync(path.join(ROOT, 'swarm', 'edge', 'nginx.conf'), 'utf8');
    expect(nginx).toContain(`server tasks.gatehouse:${env.PORT} resolve`);
    expect(nginx).toContain(`server tasks.gatehouse:${env.GRPC_PORT} resolve`);
    expect(nginx).toContain('grpc_pass grpc://gatehouse_grpc;');
    // overwritten with the address nginx saw, never appended to what the client sent
    expect(nginx).not.toMatch(/\$proxy_add_x_forwarded_for/);
    const forwardedFor = nginx.match(/proxy_set_header X-Forwarded-For \S+;/g) ?? [];
    expect(forwardedFor.length).toBeGreaterThanOrEqual(2);
    for (const line of forwardedFor) expect(line).toBe('proxy_set_header X-Forwarded-For $remote_addr;');
    // the forward-auth decision cache (its keys hold bearer tokens) is on tmpfs
    const cachePath = /proxy_cache_path (\S+) /.exec(nginx)?.[1];
    expect(edge.volumes ?? []).toContainEqual(expect.objectContaining({ type: 'tmpfs', target: cachePath }));
    expect(nginx).toContain('grpc_set_header X-Forwarded-For $remote_addr;');
  });

  it('seeds routing from a Swarm config that Gatehouse accepts', () => {
    const routing = (gatehouse.configs ?? []).find((config) => config.target === env.ROUTING_FILE);
    expect(routing, 'a config mounted at ROUTING_FILE').toBeDefined();
    const declared = stack.configs?.[routing!.source];
    expect(declared?.file).toBeDefined();
    const file = path.resolve(path.dirname(STACK_FILE), declared!.file!);
    const document = parseDocument(fs.readFileSync(file, 'utf8'));
    expect(Object.keys(document.aggregate.shards).length).toBeGreaterThan(0);
  });
});

// ---- Dockerfile

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

/** Instructions with continuation lines joined; comments and parser directives dropped. */
function instructionsOf(text: string): Instruction[] {
  const instructions: Instruction[] = [];
  let pending: Instruction | undefined;
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (pending === undefined && (line === '' || line.startsWith('#'))) return;
    if (pending !== undefined && line.startsWith('#')) return;
    const continued = line.endsWith('\\');
    const body = continued ? line.slice(0, -1).trim() : line;
    if (pending === undefined) {
      const [keyword = '', ...rest] = body.split(/\s+/);
      pending = { keyword: keyword.toUpperCase(), args: rest.join(' '), line: index + 1 };
    } else {
      pending.args = `${pending.args} ${body}`.trim();
    }
    if (!continued) {
      instructions.push(pending);
      pending = undefined;
    }
  });
  return instructions;
}

function stagesOf(instructions: Instruction[]): { name: string; from: string; body: Instruction[] }[] {
  const stages: { name: string; from: string; body: Instruction[] }[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const [from = '', as, name = ''] = instruction.args.split(/\s+/);
      expect(as?.toUpperCase(), `stage at line ${instruction.line} is named`).toBe('AS');
      stages.push({ name, from, body: [] });
    } else {
      stages.at(-1)?.body.push(instruction);
    }
  }
  return stages;
}

describe('Dockerfile', () => {
  const text = fs.readFileSync(DOCKERFILE, 'utf8');
  const instructions = instructionsOf(text);
  const stages = stagesOf(instructions);
  const runtime = stages.at(-1)!;
  const inRuntime = (keyword: string) => runtime.body.filter((instruction) => instruction.keyword === keyword);

  it('passes dockerfile-utils with every check as an error', () => {
    const strict: ValidatorSettings = {
      deprecatedMaintainer: ValidationSeverity.ERROR,
      directiveCasing: ValidationSeverity.ERROR,
      emptyContinuationLine: ValidationSeverity.ERROR,
      instructionCasing: ValidationSeverity.ERROR,
      instructionCmdMultiple: ValidationSeverity.ERROR,
      instructionEntrypointMultiple: ValidationSeverity.ERROR,
      instructionHealthcheckMultiple: ValidationSeverity.ERROR,
      instructionJSONInSingleQuotes: ValidationSeverity.ERROR,
      instructionWorkdirRelative: ValidationSeverity.ERROR,
    };
    const problems = validate(text, strict).map((problem) => `line ${problem.range.start.line + 1}: ${problem.message}`);
    expect(problems).toEqual([]);
  });

  it('is multi-stage on a pinned Node 24 LTS base', () => {
    expect(stages.length).toBeGreaterThanOrEqual(3);
    const baseArg = instructions.find((instruction) => instruction.keyword === 'ARG' && instruction.args.startsWith('NODE_IMAGE='));
    const base = baseArg?.args.split('=')[1] ?? '';
    expect(base).toMatch(/^node:24\.\d+\.\d+-[a-z]+-slim$/);
    for (const stage of stages) expect(stage.from).toBe('${NODE_IMAGE}');
  });

  it('runs as a non-root user with production dependencies only', () => {
    const users = inRuntime('USER');
    expect(users.length).toBeGreaterThan(0);
    expect(users.at(-1)!.args).not.toMatch(/^(root|0)(:|$)/);
    const cmd = inRuntime('CMD').at(-1)!;
    expect(users.at(-1)!.line).toBeLessThan(cmd.line);
    // the same node flags as `npm start` (the young generation's size; the benchmarks start Gatehouse with them)
    const start = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start;
    expect(JSON.parse(cmd.args)).toEqual(start.split(' '));
    expect(start).toMatch(/^node (--[a-z-]+=\d+ )*dist\/main\.js$/);
    // runtime installs nothing; its node_modules come from a stage that installed with --omit=dev
    expect(inRuntime('RUN').filter((instruction) => /\bnpm\b/.test(instruction.args))).toEqual([]);
    const copies = inRuntime('COPY').filter((instruction) => /node_modules/.test(instruction.args));
    expect(copies).toHaveLength(1);
    const fromStage = /--from=(\S+)/.exec(copies[0]!.args)?.[1];
    const source = stages.find((stage) => stage.name === fromStage)!;
    const installs = source.body.filter((instruction) => instruction.keyword === 'RUN' && /\bnpm ci\b/.test(instruction.args));
    expect(installs).toHaveLength(1);
    expect(installs[0]!.args).toContain('--omit=dev');
    expect(
      inRuntime('ENV')
        .map((instruction) => instruction.args)
        .join(' '),
    ).toContain('NODE_ENV=production');
  });

  it('exposes both ports, health-checks /ready and embeds the version and commit', () => {
    const exposed = inRuntime('EXPOSE').flatMap((instruction) => instruction.args.split(/\s+/));
    expect(exposed).toEqual(expect.arrayContaining(['3000', '50051']));
    expect(inRuntime('HEALTHCHECK').at(-1)?.args).toContain('/ready');
    const args = instructions.filter((instruction) => instruction.keyword === 'ARG').map((instruction) => instruction.args.split('=')[0]);
    expect(args).toEqual(expect.arrayContaining(['GIT_SHA', 'APP_VERSION']));
    expect(inRuntime('COPY').some((instruction) => instruction.args.includes('build-info.json'))).toBe(true);
  });

  it('bakes no secret into an image layer', () => {
    for (const instruction of instructions.filter((candidate) => candidate.keyword === 'ENV' || candidate.keyword === 'ARG')) {
      expect(instruction.args, `line ${instruction.line}`).not.toMatch(/PASSWORD|SECRET|MASTER_KEY|TOKEN|DATABASE_URL|SMTP_URL/i);
    }
    expect(instructions.filter((instruction) => instruction.keyword === 'ADD')).toEqual([]);
  });

  it('sends only what the build needs as the build context', () => {
    const rules = fs
      .readFileSync(path.join(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#'));
    // allow-list: everything is excluded, then the sources are let back in
    expect(rules[0]).toBe('*');
    const allowed = rules.filter((rule) => rule.startsWith('!')).map((rule) => rule.slice(1).replace(/\/$/, ''));
    for (const forbidden of ['.git', '.env', 'data', 'node_modules', 'dist', 'test']) expect(allowed).not.toContain(forbidden);
    const sources = instructions
      .filter((instruction) => instruction.keyword === 'COPY' && !instruction.args.includes('--from='))
      .flatMap((instruction) => instruction.args.split(/\s+/).slice(0, -1));
    for (const source of sources) {
      expect(
        allowed.some((entry) => source === entry || source.startsWith(`${entry}/`)),
        `${source} is in the build context`,
      ).toBe(true);
    }
  });
});
