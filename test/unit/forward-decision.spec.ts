import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { AuthorizationResult, RequestAuthorizer } from '../../src/authz/request-authorizer.service';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ForwardDecisionService } from '../../src/forward/forward-decision.service';
import { ForwardController } from '../../src/forward/forward.controller';
import type { ForwardAdmission, ForwardLimits } from '../../src/forward/forward-limits';
import type { MetricsService } from '../../src/observability/metrics.service';
import type { InternalTokenService } from '../../src/proxy/internal-token.service';
import type { RoutingService } from '../../src/routing/routing.service';

const PRINCIPAL = { id: 'user-1', type: 'user' as const, amr: ['pwd'] };
const AUTHORIZED: AuthorizationResult = { principal: PRINCIPAL, tenantId: 'acme', decision: { decision: 'allow', reason: 'role member' } };

/** The decision service with its collaborators replaced by counters; `remembers` says what is in memory. */
function decisionService(remembers: { authorization: boolean; internalToken: boolean }) {
  const calls = { authorizeNow: 0, authorize: 0, mintNow: 0, mint: 0, admit: 0, release: 0 };
  const routing = {
    forwardRules: () => ({ rules: [{ path_prefix: '/orders', right: 'orders.read', tenant: 'header', public: false }] }),
  } as unknown as RoutingService;
  const authorizer = {
    authorizeNow: () => {
      calls.authorizeNow += 1;
      return remembers.authorization ? AUTHORIZED : undefined;
    },
    authorize: () => {
      calls.authorize += 1;
      return Promise.resolve(AUTHORIZED);
    },
  } as unknown as RequestAuthorizer;
  const tokens = {
    mintNow: () => {
      calls.mintNow += 1;
      return remembers.internalToken ? 'reused-token' : undefined;
    },
    mint: () => {
      calls.mint += 1;
      return Promise.resolve('signed-token');
    },
  } as unknown as InternalTokenService;
  const limits = {
    admit: (): ForwardAdmission => {
      calls.admit += 1;
      return { headers: {}, release: () => (calls.release += 1) };
    },
  } as unknown as ForwardLimits;
  const metrics = { registry: new Registry() } as unknown as MetricsService;
  const controller = new ForwardController(new ForwardDecisionService(routing, authorizer, tokens, limits, metrics));
  const headers = {
    'x-forwarded-method': 'GET',
    'x-forwarded-uri': '/orders/7',
    'x-forwarded-host': 'app.test',
    authorization: 'Bearer t',
    'x-tenant-id': 'acme',
  };
  /** One decision request through the controller; what it answered: status and headers. */
  const decide = (): { pending: Promise<void> | undefined; answer: { status?: number; headers: Record<string, string> } } => {
    const answer: { status?: number; headers: Record<string, string> } = { headers: {} };
    const request = { headers, ctx: { clientIp: '203.0.113.7' } } as unknown as FastifyRequest;
    const reply = {
      request,
      raw: { on: () => undefined, destroyed: false },
      header: (name: string, value: string) => {
        answer.headers[name] = value;
        return reply;
      },
      status: (status: number) => {
        answer.status = status;
        return reply;
      },
      send: () => reply,
    } as unknown as FastifyReply;
    return { pending: controller.decide(request, reply), answer };
  };
  return { calls, decide };
}

describe('forward-auth decision: each step once', () => {
  it('everything in memory: answered at once, authorized once, the token reused', () => {
    const { calls, decide } = decisionService({ authorization: true, internalToken: true });
    const { pending, answer } = decide();
    expect(pending).toBeUndefined();
    expect(answer).toMatchObject({ status: 200, headers: { authorization: 'Bearer reused-token', 'x-tenant-id': 'acme' } });
    expect(calls).toMatchObject({ authorizeNow: 1, authorize: 0, mint: 0, admit: 1 });
  });

  it('authorized from memory but the internal token must be signed: authorization is not run again', async () => {
    const { calls, decide } = decisionService({ authorization: true, internalToken: false });
    const { pending, answer } = decide();
    await pending;
    expect(answer).toMatchObject({ status: 200, headers: { authorization: 'Bearer signed-token', 'x-tenant-id': 'acme' } });
    expect(calls).toMatchObject({ authorizeNow: 1, authorize: 0, mint: 1, admit: 1, release: 0 });
  });

  it('authorization needs loading: authorized once more (loaded), limits taken once, token signed', async () => {
    const { calls, decide } = decisionService({ authorization: false, internalToken: false });
    const { pending, answer } = decide();
    await pending;
    expect(answer).toMatchObject({ status: 200, headers: { authorization: 'Bearer signed-token' } });
    expect(calls).toMatchObject({ authorizeNow: 1, authorize: 1, mint: 1, admit: 1 });
  });
});
