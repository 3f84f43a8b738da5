import { FastifyOtelInstrumentation } from '@fastify/otel';
import { context, trace, TraceFlags, type Span } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { GrpcInstrumentation } from '@opentelemetry/instrumentation-grpc';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import { UndiciInstrumentation } from '@opentelemetry/instrumentation-undici';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { installActiveSpanReader } from './active-span';

/** Probes and scrapes would drown the traces that matter. */
const UNTRACED_PATHS = new Set(['/health', '/ready', '/metrics']);
/** Query parameters that carry secrets (OAuth codes, state) are replaced in span attributes. */
const SECRET_QUERY_PARAMETERS = ['code', 'state', 'token', 'access_token', 'refresh_token', 'id_token', 'client_secret'];

export interface Tracing {
  /** exports what is still buffered; call once the app is closed */
  shutdown(): Promise<void>;
}

function pathOf(url: string | undefined): string {
  const value = url ?? '/';
  const query = value.indexOf('?');
  return query === -1 ? value : value.slice(0, query);
}

/**
 * Starts the OpenTelemetry SDK: spans (only; metrics stay Prometheus) exported over OTLP/HTTP
 * to OTEL_EXPORTER_OTLP_ENDPOINT, honouring the standard OTEL_* variables. Must run before
 * fastify, pg, undici, http and @grpc/grpc-js are first required, so main.ts loads this
 * module, and only then the application.
 */
export function startTracing(serviceVersion: string): Tracing {
  process.env.OTEL_SERVICE_NAME ??= 'gatehouse';
  process.env.OTEL_RESOURCE_ATTRIBUTES ??= `service.version=${serviceVersion}`;
  // Each incoming request's server span: the request context adopts it, not the @fastify/otel
  // onRequest hook span that is current when the context is opened (a leaf ended within the hook)
  const serverSpans = new WeakMap<object, Span>();
  const sdk = new NodeSDK({
    traceExporter: new OTLPTraceExporter(),
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations: [
      new HttpInstrumentation({
        ignoreIncomingRequestHook: (request) => UNTRACED_PATHS.has(pathOf(request.url)),
        // called with the server span of an incoming request (and the span of an outgoing one,
        // never looked up)
        requestHook: (span, request) => serverSpans.set(request, span),
        redactedQueryParamsServer: SECRET_QUERY_PARAMETERS,
        // a WebSocket handshake has no server span: without a parent the request keeps the
        // traceparent Gatehouse stamped instead of starting a trace of its own
        requireParentforOutgoingSpans: true,
      }),
      new FastifyOtelInstrumentation({ registerOnInitialization: true, ignorePaths: (route) => UNTRACED_PATHS.has(pathOf(route.url)) }),
      new UndiciInstrumentation({
        requireParentforSpans: true,
        // Gatehouse stamps its own traceparent on every upstream call; with a client span the
        // instrumentation adds the span's one, so the stamped header is removed first.
        requestHook: (span, request) => {
          if (!trace.isSpanContextValid(span.spanContext())) return;
          if (Array.isArray(request.headers)) {
            for (let index = request.headers.length - 2; index >= 0; index -= 2) {
              if (String(request.headers[index]).toLowerCase() === 'traceparent') request.headers.splice(index, 2);
            }
          } else if (typeof request.headers === 'string') {
            request.headers = request.headers.replace(/^traceparent:[^\r\n]*\r\n/gim, '');
          }
        },
      }),
      new GrpcInstrumentation(),
      new PgInstrumentation({ requireParentSpan: true }),
    ],
  });
  sdk.start();
  installActiveSpanReader((incoming) => {
    const span = (incoming === undefined ? undefined : serverSpans.get(incoming)) ?? trace.getSpan(context.active());
    if (span === undefined) return undefined;
    const ids = span.spanContext();
    if (!trace.isSpanContextValid(ids)) return undefined;
    return {
      traceId: ids.traceId,
      spanId: ids.spanId,
      traceFlags: (ids.traceFlags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED ? '01' : '00',
    };
  });
  return { shutdown: () => sdk.shutdown() };
}
