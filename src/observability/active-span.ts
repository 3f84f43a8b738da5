/**
 * The seam between the request pipeline and OpenTelemetry. tracing.ts installs a reader when
 * OTEL_EXPORTER_OTLP_ENDPOINT is set; otherwise nothing OpenTelemetry is ever loaded and the
 * pipeline keeps its own W3C trace-context (trace-context.ts).
 */
export interface ActiveSpanIds {
  traceId: string;
  spanId: string;
  traceFlags: string;
}

let reader: ((incoming?: object) => ActiveSpanIds | undefined) | undefined;

export function installActiveSpanReader(read: (incoming?: object) => ActiveSpanIds | undefined): void {
  reader = read;
}

/**
 * The span a request's context adopts, if tracing is on: the server span the HTTP
 * instrumentation made for `incoming` (Node's request object) when there is one, else the span
 * the instrumentation made current (the gRPC server span). On HTTP the context is opened inside
 * one of @fastify/otel's onRequest hook spans, which is what is current then.
 */
export function activeSpanIds(incoming?: object): ActiveSpanIds | undefined {
  return reader?.(incoming);
}

/** Whether outgoing calls get their traceparent from the instrumentations (their client span). */
export function tracingEnabled(): boolean {
  return reader !== undefined;
}
