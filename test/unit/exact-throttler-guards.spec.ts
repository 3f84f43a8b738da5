import type { ExecutionContext } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { ThrottlerModule } from '@nestjs/throttler';
import { describe, expect, it } from 'vitest';
import { AdminWriteLimitGuard } from '../../src/authn/admin-write-limit.guard';
import { AuthIpLimitGuard } from '../../src/authn/auth-ip-limit.guard';
import { ExactCounterStorage } from '../../src/authn/exact-counter.storage';
import { AppError } from '../../src/common/app-error';
import { APP_CONFIG } from '../../src/config/config';
import { MetricsService } from '../../src/observability/metrics.service';

/** The exact counters, recording what they were asked; `blocked` makes every call over the limit. */
function recordingStorage(blocked: boolean) {
  const calls: { key: string; ttl: number; limit: number }[] = [];
  return {
    calls,
    increment: (key: string, ttl: number, limit: number) => {
      calls.push({ key, ttl, limit });
      return Promise.resolve({ totalHits: 1, timeToExpire: 60, isBlocked: blocked, timeToBlockExpire: 42 });
    },
  };
}

function httpContext(request: Record<string, unknown>): ExecutionContext {
  return {
    getType: () => 'http',
    getHandler: () => httpContext,
    getClass: () => Object,
    switchToHttp: () => ({ getRequest: () => request, getResponse: () => ({ header: () => undefined }) }),
  } as unknown as ExecutionContext;
}

/** Both guards as Nest builds them, beside ThrottlerModule's own storage (the proxied scopes' buckets). */
async function guards(blocked = false) {
  const exact = recordingStorage(blocked);
  const rateLimited: Record<string, string>[] = [];
  const module = await Test.createTestingModule({
    imports: [ThrottlerModule.forRoot([{ limit: 1_000_000, ttl: 1000 }])],
    providers: [
      { provide: ExactCounterStorage, useValue: exact },
      { provide: APP_CONFIG, useValue: { AUTH_IP_LIMIT: 30, AUTH_WINDOW: 900, ADMIN_WRITE_LIMIT: { limit: 5, periodMs: 60_000 } } },
      { provide: MetricsService, useValue: { rateLimited: { inc: (labels: Record<string, string>) => rateLimited.push(labels) } } },
      AuthIpLimitGuard,
      AdminWriteLimitGuard,
    ],
  }).compile();
  await module.init();
  return { exact, rateLimited, ip: module.get(AuthIpLimitGuard), admin: module.get(AdminWriteLimitGuard) };
}

describe('the exact-counter guards (CONTRACT §4, ADMIN_WRITE_LIMIT)', () => {
  it('count on the exact shared counters under one key per scope and caller, with their configured limits', async () => {
    const { exact, ip, admin } = await guards();
    await expect(ip.canActivate(httpContext({ headers: {}, ctx: { clientIp: '203.0.113.7' } }))).resolves.toBe(true);
    const write = { headers: {}, method: 'POST', url: '/admin/roles', principal: { id: 'admin-1' } };
    await expect(admin.canActivate(httpContext(write))).resolves.toBe(true);
    // reads and the runner passthrough are not admin writes
    await admin.canActivate(httpContext({ ...write, method: 'GET' }));
    await admin.canActivate(httpContext({ ...write, url: '/admin/runner/x' }));
    expect(exact.calls).toEqual([
      { key: 'ip:203.0.113.7', ttl: 900_000, limit: 30 },
      { key: 'admin:admin-1', ttl: 60_000, limit: 5 },
    ]);
  });

  it('refuse with 429 rate_limited, Retry-After and the scope in the metric', async () => {
    const { rateLimited, ip, admin } = await guards(true);
    const refusal = ip.canActivate(httpContext({ headers: {}, ctx: { clientIp: '203.0.113.7' } }));
    await expect(refusal).rejects.toBeInstanceOf(AppError);
    await expect(refusal).rejects.toMatchObject({ code: 'rate_limited', options: { headers: { 'retry-after': '42' } } });
    await expect(
      admin.canActivate(httpContext({ headers: {}, method: 'DELETE', url: '/admin/roles/1', principal: { id: 'admin-1' } })),
    ).rejects.toMatchObject({ code: 'rate_limited' });
    expect(rateLimited).toEqual([
      { scope: 'ip', route_class: 'auth' },
      { scope: 'principal', route_class: 'admin' },
    ]);
  });
});
