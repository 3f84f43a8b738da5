import type { ServerResponse } from 'node:http';
import { Injectable, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { InjectThrottlerOptions, InjectThrottlerStorage, ThrottlerGuard, type ThrottlerModuleOptions } from '@nestjs/throttler';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../common/app-error';
import { mapIn } from '../common/nested-map';
import { requestContext, type RequestContext } from '../common/request-context';
import { MetricsService } from '../observability/metrics.service';
import { InFlightCounter } from './in-flight.counter';
import type { ScopePolicy } from './limit-policies';
import { LimitPolicies } from './limit-policies.service';
import { ROUTE_CLASS, type LimitScope, type RouteClass } from './route-class';
import type { TakeResult, TokenBucketStorage } from './token-bucket.storage';

/** Who is calling, for the three scopes of CONTRACT §9. */
export interface AdmissionInput {
  routeClass: RouteClass;
  principalId?: string;
  /** absent: the tenant scope is skipped (runner on the `*` placement, forward rules with tenant "none") */
  tenantId?: string;
  clientIp: string;
  /** whether the call holds an in-flight slot until release (a WebSocket handshake does not) */
  holdsSlot?: boolean;
  /** false: the answer carries no `RateLimit` (a gRPC answer), so none is built */
  rateLimitHeader?: false;
}

export interface Admission {
  /** `RateLimit` for the admitted answer (empty when no rate scope applied) */
  headers: Record<string, string>;
  /** ends the call's in-flight count; idempotent */
  release(): void;
}

export const NOTHING_TO_RELEASE = (): void => undefined;

/**
 * Ends an HTTP call's in-flight count when its response closes, or at once when it already has:
 * a client that hung up while the call was being authorized (a token's first use, grants loaded,
 * the policy hook asked) closed the response before this, and 'close' is not emitted twice, so
 * the slot would stay taken for good (IP_IN_FLIGHT_LIMIT then refuses that address until restart).
 */
export function releaseOnClose(response: ServerResponse, release: () => void): void {
  if (release === NOTHING_TO_RELEASE) return;
  // `on`, not `once`: release is idempotent, and once() allocates a wrapper per call
  response.on('close', release);
  if (response.destroyed) release();
}
/** One settled promise for every admitted call: the guard allocates no promise of its own. */
const ADMITTED = Promise.resolve(true);
const NO_HEADERS: Record<string, string> = {};
/** Bucket key strings kept per scope and route class (then forgotten all at once and built again). */
const MAX_KEPT_BUCKET_KEYS = 10_000;
/** Retry-After of an in-flight refusal: a slot frees when any call of that address ends. */
const IN_FLIGHT_RETRY_SECONDS = 1;

/**
 * CONTRACT §9 admission for every proxied call, as a subclass of @nestjs/throttler's guard:
 * its two named throttlers (`tenant`, `principal`) take from TokenBucketStorage, the
 * throttler storage of ours; the in-flight count per client IP sits beside them (the library
 * has no notion of it). `canActivate` covers the HTTP routes Nest still serves
 * (`@LimitedAs(routeClass)` puts it on a handler, after the global AuthGuard); the fast routes,
 * the gRPC server, the WebSocket handshake check and the forward-auth decision admit directly. The library's own `X-RateLimit-*` headers are off; refusals
 * are 429 `rate_limited` with Retry-After and the IETF RateLimit headers.
 */
@Injectable()
export class TrafficLimitGuard extends ThrottlerGuard {
  private readonly routeClasses = new Map<unknown, RouteClass>();
  /** bucketKey's strings, per route class and id */
  private readonly tenantKeys = new Map<RouteClass, Map<string, string>>();
  private readonly principalKeys = new Map<RouteClass, Map<string, string>>();
  private readonly buckets: TokenBucketStorage;

  constructor(
    @InjectThrottlerOptions() options: ThrottlerModuleOptions,
    @InjectThrottlerStorage() storage: TokenBucketStorage,
    reflector: Reflector,
    private readonly policies: LimitPolicies,
    private readonly inFlight: InFlightCounter,
    private readonly metrics: MetricsService,
  ) {
    super(options, storage, reflector);
    this.buckets = storage;
  }

  override canActivate(context: ExecutionContext): Promise<boolean> {
    try {
      this.admitCall(context);
      return ADMITTED;
    } catch (error) {
      return Promise.reject(error as Error);
    }
  }

  /** canActivate's work, synchronous: a refusal throws. */
  private admitCall(context: ExecutionContext): void {
    const routeClass = this.routeClassOf(context);
    const request = context.switchToHttp().getRequest<FastifyRequest>();
    const reply = context.switchToHttp().getResponse<FastifyReply>();
    const admission = this.admitNow(
      { routeClass, principalId: request.principal?.id, tenantId: request.ctx.tenantId, clientIp: request.ctx.clientIp, holdsSlot: true },
      request.ctx,
    );
    if (admission.headers.ratelimit !== undefined) reply.header('ratelimit', admission.headers.ratelimit);
    releaseOnClose(reply.raw, admission.release);
  }

  /**
   * Admits one call or throws 429 `rate_limited`: the client IP's in-flight count first, then
   * the tenant and principal buckets of its route class. A refused call takes nothing.
   */
  admit(input: AdmissionInput, context: RequestContext | undefined = requestContext.get()): Promise<Admission> {
    try {
      return Promise.resolve(this.admitNow(input, context));
    } catch (error) {
      return Promise.reject(error as Error);
    }
  }

  /** `admit` without the promise: every check is in this process's memory (the proxied HTTP fast path). */
  admitNow(input: AdmissionInput, context: RequestContext | undefined): Admission {
    const { routeClass, clientIp } = input;
    let release = NOTHING_TO_RELEASE;
    const ipLimit = this.policies.ipInFlight;
    if (ipLimit > 0) {
      if (!this.inFlight.acquire(clientIp, ipLimit)) {
        this.refuse('ip_in_flight', routeClass, context, IN_FLIGHT_RETRY_SECONDS, `"ip_in_flight";q=${ipLimit}`);
      }
      if (input.holdsSlot === true) {
        let held = true;
        release = () => {
          if (!held) return;
          held = false;
          this.inFlight.release(clientIp);
        };
      } else {
        this.inFlight.release(clientIp);
      }
    }
    try {
      // the scope with the least remaining, for the admitted answer's RateLimit
      let namedScope: LimitScope | undefined;
      let named: TakeResult | undefined;
      let tenantKey: string | undefined;
      if (input.tenantId !== undefined) {
        const policy = this.policies.tenant(input.tenantId);
        if (policy !== undefined) {
          tenantKey = this.bucketKey('tenant', routeClass, input.tenantId);
          const result = this.take(tenantKey, policy);
          if (result.isBlocked) this.refuse('tenant', routeClass, context, result.timeToBlockExpire, policy.header);
          namedScope = 'tenant';
          named = result;
        }
      }
      const principalPolicy = this.policies.principal;
      if (input.principalId !== undefined && principalPolicy !== undefined) {
        const result = this.take(this.bucketKey('principal', routeClass, input.principalId), principalPolicy);
        if (result.isBlocked) {
          // the tenant's token was not used after all
          if (tenantKey !== undefined) this.buckets.refund(tenantKey);
          this.refuse('principal', routeClass, context, result.timeToBlockExpire, principalPolicy.header);
        }
        if (named === undefined || result.remaining < named.remaining) {
          namedScope = 'principal';
          named = result;
        }
      }
      const headers =
        named === undefined || input.rateLimitHeader === false
          ? NO_HEADERS
          : { ratelimit: `"${namedScope}";r=${named.remaining};t=${named.timeToExpire}` };
      return { headers, release };
    } catch (error) {
      release();
      throw error;
    }
  }

  /**
   * The bucket key `<scope>|<route class>|<id>`, the same string object for the same scope,
   * route class and id: a key built per call is a new string, which the bucket map flattens and
   * hashes character by character on every lookup (~0.5 µs per key, measured); the id is the
   * principal's (a string whose hash V8 keeps) or the tenant header's (a few characters).
   */
  private bucketKey(scope: 'tenant' | 'principal', routeClass: RouteClass, id: string): string {
    const byId = mapIn(scope === 'tenant' ? this.tenantKeys : this.principalKeys, routeClass);
    let key = byId.get(id);
    if (key === undefined) {
      key = `${scope}|${routeClass}|${id}`;
      if (byId.size >= MAX_KEPT_BUCKET_KEYS) byId.clear();
      byId.set(id, key);
    }
    return key;
  }

  /**
   * One throttler's take from the throttler storage (TokenBucketStorage): its synchronous
   * `take`, which its `increment` (the library's storage contract) only wraps in a promise;
   * a promise per scope per call showed in the proxied path's profile.
   */
  private take(key: string, policy: ScopePolicy): TakeResult {
    return this.buckets.take(key, policy.ttl, policy.limit, Date.now());
  }

  private refuse(
    scope: LimitScope,
    routeClass: RouteClass,
    context: RequestContext | undefined,
    retryAfter: number,
    policy: string,
  ): never {
    this.metrics.rateLimited.inc({ scope, route_class: routeClass });
    if (context !== undefined) context.rateLimited = scope;
    throw new AppError('rate_limited', {
      detail: scope === 'ip_in_flight' ? 'too many calls in flight from this address' : `${scope} rate limit reached`,
      headers: { 'retry-after': String(retryAfter), 'ratelimit-policy': policy, ratelimit: `"${scope}";r=0;t=${retryAfter}` },
      logReason: `rate limited: ${scope} (${routeClass})`,
    });
  }

  private routeClassOf(context: ExecutionContext): RouteClass {
    const handler = context.getHandler();
    let routeClass = this.routeClasses.get(handler);
    if (routeClass === undefined) {
      routeClass = this.reflector.get<RouteClass | undefined>(ROUTE_CLASS, handler);
      if (routeClass === undefined) throw new Error(`${context.getClass().name}.${handler.name} is limited without a route class`);
      this.routeClasses.set(handler, routeClass);
    }
    return routeClass;
  }
}
