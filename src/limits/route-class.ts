/** The route classes of CONTRACT §9: each has its own buckets per tenant and per principal. */
export const ROUTE_CLASSES = ['commands', 'query', 'subscribe', 'runner', 'forward'] as const;
export type RouteClass = (typeof ROUTE_CLASSES)[number];

/** Metadata key naming a handler's route class (set by `@LimitedAs`). */
export const ROUTE_CLASS = 'gatehouse:route-class';

/** Scopes named in `gatehouse_rate_limited_total{scope}`, the log line and the RateLimit headers. */
export type LimitScope = 'tenant' | 'principal' | 'ip_in_flight' | 'ws_message';
