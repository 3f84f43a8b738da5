import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { Agent, request } from 'undici';
import { AppError } from '../common/app-error';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { MetricsService } from '../observability/metrics.service';
import type { Principal } from '../session/principal';

/** What the policy engine is asked (CONTRACT §13), field names as the PDP sees them. */
export interface PolicyInput {
  method: string;
  path: string[];
  tenant: string | null;
  right: string;
  resource: string | null;
  claims: { sub: string; principal_type: string; amr: string[] };
  client_ip: string;
  client_cert_subject: string | null;
}

/** What a transport knows about the request that RBAC does not need but the policy does. */
export interface PolicyRequest {
  method: string;
  /** the client's request path (no query), still percent-encoded */
  path: string;
  clientIp: string;
  clientCertSubject?: string;
}

type Verdict = { allow: true } | { allow: false; reason: string };

/** Decisions may be reused for at most 1 s (§13); the map is also bounded so a flood of distinct inputs cannot grow it. */
const CACHE_TTL_MS = 1000;
const CACHE_MAX_ENTRIES = 10_000;

export function pathSegments(path: string): string[] {
  const withoutQuery = path.split('?', 1)[0] ?? '';
  return withoutQuery
    .split('/')
    .filter((segment) => segment !== '')
    .map((segment) => {
      try {
        return decodeURIComponent(segment);
      } catch {
        return segment;
      }
    });
}

/**
 * The optional policy decision point after an RBAC allow (OPA data API). Off unless POLICY_URL
 * is set. Fails closed: a PDP that is down, slow, non-200 or malformed gives 503 `unavailable`;
 * a deny gives 403 `forbidden` whose reason goes to the log only.
 */
@Injectable()
export class PolicyHook implements OnApplicationShutdown {
  private readonly url: string | undefined;
  private readonly agent: Agent | undefined;
  private readonly cache = new Map<string, { expires: number; verdict: Verdict }>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly metrics: MetricsService,
  ) {
    this.url = config.POLICY_URL;
    if (this.url !== undefined) {
      this.agent = new Agent({ keepAliveTimeout: 30_000, connections: 64, connect: { timeout: config.POLICY_TIMEOUT_MS } });
    }
  }

  get enabled(): boolean {
    return this.url !== undefined;
  }

  async onApplicationShutdown(): Promise<void> {
    await this.agent?.close().catch(() => undefined);
  }

  /** Throws AppError `forbidden` (deny) or `unavailable` (PDP trouble); returns on allow. */
  async check(
    principal: Principal,
    decided: { tenantId?: string; right: string; resource?: string },
    policyRequest: PolicyRequest,
  ): Promise<void> {
    if (this.url === undefined) return;
    const input: PolicyInput = {
      method: policyRequest.method.toUpperCase(),
      path: pathSegments(policyRequest.path),
      tenant: decided.tenantId ?? null,
      right: decided.right,
      resource: decided.resource ?? null,
      claims: { sub: principal.id, principal_type: principal.type, amr: principal.amr },
      client_ip: policyRequest.clientIp,
      client_cert_subject: policyRequest.clientCertSubject ?? null,
    };
    const verdict = await this.decide(input);
    if (!verdict.allow) throw new AppError('forbidden', { logReason: `deny: policy: ${verdict.reason}` });
  }

  private async decide(input: PolicyInput): Promise<Verdict> {
    const key = JSON.stringify(input);
    const now = Date.now();
    const cached = this.cache.get(key);
    if (cached !== undefined && cached.expires > now) {
      this.metrics.policyDecisions.inc({ outcome: cached.verdict.allow ? 'allow' : 'deny' });
      return cached.verdict;
    }
    const started = performance.now();
    let verdict: Verdict;
    try {
      verdict = await this.ask(input);
    } catch (error) {
      this.metrics.policyDecisions.inc({ outcome: 'error' });
      this.metrics.policyDuration.observe((performance.now() - started) / 1000);
      throw new AppError('unavailable', {
        headers: { 'retry-after': '1' },
        logReason: `policy decision failed: ${error instanceof Error ? error.message : String(error)}`,
      });
    }
    this.metrics.policyDuration.observe((performance.now() - started) / 1000);
    this.metrics.policyDecisions.inc({ outcome: verdict.allow ? 'allow' : 'deny' });
    if (this.cache.size >= CACHE_MAX_ENTRIES) this.cache.clear();
    this.cache.set(key, { expires: now + CACHE_TTL_MS, verdict });
    return verdict;
  }

  private async ask(input: PolicyInput): Promise<Verdict> {
    const timeoutMs = this.config.POLICY_TIMEOUT_MS;
    const response = await request(this.url!, {
      dispatcher: this.agent,
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ input }),
      signal: AbortSignal.timeout(timeoutMs),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    if (response.statusCode !== 200) {
      await response.body.dump().catch(() => undefined);
      throw new Error(`PDP answered ${response.statusCode}`);
    }
    const body = (await response.body.json()) as { result?: { allow?: unknown; reason?: unknown } } | null;
    const result = body?.result;
    if (typeof result !== 'object' || result === null || typeof result.allow !== 'boolean') {
      throw new Error('PDP answer has no boolean result.allow');
    }
    if (result.allow) return { allow: true };
    return { allow: false, reason: typeof result.reason === 'string' && result.reason !== '' ? result.reason : 'denied by policy' };
  }
}
