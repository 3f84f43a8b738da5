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

let reader: (() => ActiveSpanIds | undefined) | undefined;

export function installActiveSpanReader(read: () => ActiveSpanIds | undefined): void {
  reader = read;
}

/** The span the instrumentation made current (server span of this request), if tracing is on. */
export function activeSpanIds(): ActiveSpanIds | undefined {
  return reader?.();
}

/** Whether outgoing calls get their traceparent from the instrumentations (their client span). */
export function tracingEnabled(): boolean {
  return reader !== undefined;
}
