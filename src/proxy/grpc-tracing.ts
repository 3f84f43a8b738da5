import type http2 from 'node:http2';
import type * as OpenTelemetry from '@opentelemetry/api';
import { tracingEnabled } from '../observability/active-span';

const SERVICE = 'aggregate.gateway.v1.CommandService';
const METHOD = 'SubmitCommand';
const SPAN_NAME = `${SERVICE}/${METHOD}`;

/** Ends a span with the call's gRPC status code (or a hop failure's reason). */
export type EndSpan = (code: number | undefined, failure?: string) => void;
const NO_SPAN: EndSpan = () => undefined;

let loaded: typeof OpenTelemetry | undefined;

/** The OpenTelemetry API, only with tracing on: without OTEL_EXPORTER_OTLP_ENDPOINT no OpenTelemetry module is loaded. */
function otel(): typeof OpenTelemetry | undefined {
  if (!tracingEnabled()) return undefined;
  // loaded on first use, never when tracing is off
  loaded ??= require('@opentelemetry/api') as typeof OpenTelemetry;
  return loaded;
}

function ender(api: typeof OpenTelemetry, span: OpenTelemetry.Span): EndSpan {
  return (code, failure) => {
    if (code !== undefined) span.setAttribute('rpc.grpc.status_code', code);
    if (code !== 0) span.setStatus({ code: api.SpanStatusCode.ERROR, ...(failure === undefined ? {} : { message: failure }) });
    span.end();
  };
}

/**
 * The gRPC spans grpc-js's instrumentation used to make, now that both legs are node:http2 (which
 * no instrumentation covers). With tracing on: `handle` runs in a SERVER span continuing the
 * call's `traceparent`, so the request context adopts its ids (continueTrace). Off: no span.
 */
export function inServerSpan(headers: http2.IncomingHttpHeaders, handle: (end: EndSpan) => void): void {
  const api = otel();
  if (api === undefined) {
    handle(NO_SPAN);
    return;
  }
  const parent = api.propagation.extract(api.ROOT_CONTEXT, headers);
  const span = api.trace
    .getTracer('gatehouse-grpc')
    .startSpan(
      SPAN_NAME,
      { kind: api.SpanKind.SERVER, attributes: { 'rpc.system': 'grpc', 'rpc.service': SERVICE, 'rpc.method': METHOD } },
      parent,
    );
  api.context.with(api.trace.setSpan(parent, span), () => handle(ender(api, span)));
}

/**
 * A CLIENT span for one upstream attempt, child of the active span; its traceparent (and
 * tracestate) replaces the stamped one in the raw header list `headers` (as with the undici
 * instrumentation), so the upstream names it as parent. Every other field the propagator writes
 * (`baggage` with OpenTelemetry's default propagators) goes along too.
 */
export function startClientSpan(endpoint: string, headers: string[]): EndSpan {
  const api = otel();
  if (api === undefined) return NO_SPAN;
  const active = api.context.active();
  if (api.trace.getSpan(active) === undefined) return NO_SPAN;
  const separator = endpoint.lastIndexOf(':');
  const span = api.trace.getTracer('gatehouse-grpc').startSpan(
    SPAN_NAME,
    {
      kind: api.SpanKind.CLIENT,
      attributes: {
        'rpc.system': 'grpc',
        'rpc.service': SERVICE,
        'rpc.method': METHOD,
        'server.address': endpoint.slice(0, separator),
        'server.port': Number(endpoint.slice(separator + 1)),
      },
    },
    active,
  );
  const carrier: Record<string, string> = {};
  api.propagation.inject(api.trace.setSpan(active, span), carrier);
  // a stamped tracestate the propagator does not write again is dropped (it named the old parent)
  setRawHeader(headers, 'traceparent', carrier.traceparent);
  setRawHeader(headers, 'tracestate', carrier.tracestate);
  for (const [name, value] of Object.entries(carrier)) {
    const lower = name.toLowerCase();
    if (lower !== 'traceparent' && lower !== 'tracestate') setRawHeader(headers, lower, value);
  }
  return ender(api, span);
}

/** Sets (or, with no value, removes) a header of a raw header list (name, value, name, value …). */
function setRawHeader(headers: string[], name: string, value: string | undefined): void {
  let index = 0;
  while (index < headers.length && headers[index] !== name) index += 2;
  if (value === undefined) {
    if (index < headers.length) headers.splice(index, 2);
  } else if (index < headers.length) headers[index + 1] = value;
  else headers.push(name, value);
}
