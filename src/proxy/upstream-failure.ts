import { AppError } from '../common/app-error';

/**
 * A failure of the hop itself (not an upstream's well-formed error reply). `phase` says
 * whether the request can have reached the upstream: only `connect` failures are safe to
 * send elsewhere whatever the method.
 */
export class HopFailure extends Error {
  constructor(
    readonly kind: 'timeout' | 'unavailable',
    readonly phase: 'connect' | 'sent',
    readonly reason: string,
  ) {
    super(reason);
    this.name = 'HopFailure';
  }

  toAppError(): AppError {
    return new AppError(this.kind === 'timeout' ? 'upstream_timeout' : 'upstream_unavailable', { logReason: this.reason });
  }
}

const CONNECT_FAILURES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'EADDRNOTAVAIL']);
/** The TLS handshake with the upstream failed (not vouched for by UPSTREAM_TLS_CA_FILE, not TLS at all): nothing was sent. */
const TLS_FAILURES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'EPROTO',
]);
const TIMEOUTS = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);

/** Maps a client library error (undici, ws, net) to a hop failure. */
export function classifyHopError(error: unknown): HopFailure {
  if (error instanceof HopFailure) return error;
  const code = (error as { code?: string } | null)?.code ?? '';
  const message = error instanceof Error ? error.message : String(error);
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return new HopFailure('timeout', 'connect', `connect timeout`);
  if (TIMEOUTS.has(code)) return new HopFailure('timeout', 'sent', `${code}: ${message}`);
  if (TLS_FAILURES.has(code) || code.startsWith('ERR_TLS_') || code.startsWith('ERR_SSL_')) {
    return new HopFailure('unavailable', 'connect', `TLS: ${code}: ${message}`);
  }
  if (CONNECT_FAILURES.has(code)) return new HopFailure('unavailable', 'connect', `${code}: ${message}`);
  // resets, closed sockets, garbage the HTTP parser refused (HPE_*), anything else
  return new HopFailure('unavailable', 'sent', `${code || 'error'}: ${message}`);
}

/** A well-formed gRPC error reply of the upstream (not a hop failure): relayed, not retried. */
export class UpstreamGrpcError extends Error {
  constructor(
    readonly grpcCode: number,
    readonly details: string,
  ) {
    super(details);
    this.name = 'UpstreamGrpcError';
  }
}
