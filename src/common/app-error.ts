import type { ErrorCode } from './error-codes';

export interface FieldError {
  path: string;
  message: string;
}

export interface AppErrorOptions {
  detail?: string;
  errors?: FieldError[];
  /** extra response headers, e.g. Retry-After */
  headers?: Record<string, string>;
  /** precise reason for the log only; never sent to the client */
  logReason?: string;
  /** a status other than the code's usual one (412 with code `conflict` for a stale If-Match) */
  status?: number;
  /** RFC 9457 extension members added to the body (e.g. `checks` of a refused rebalancing) */
  extensions?: Record<string, unknown>;
}

/** Domain error carrying a contract code; mapped to HTTP / gRPC / WebSocket at the edge. */
export class AppError extends Error {
  constructor(
    readonly code: ErrorCode,
    readonly options: AppErrorOptions = {},
  ) {
    super(options.logReason ?? options.detail ?? code);
    this.name = 'AppError';
  }
}
