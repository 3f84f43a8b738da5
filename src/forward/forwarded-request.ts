import { AppError } from '../common/app-error';
import { firstHeader } from '../common/header-value';

/** The request a proxy asks about, as read from its X-Forwarded-* or X-Original-* headers. */
export interface ForwardedRequest {
  method: string;
  /** lower-case, as the client sent it to the proxy; undefined when the proxy did not say */
  host?: string;
  /** normalised path segments: decoded once, dot segments resolved, empty segments dropped */
  segments: string[];
  /** the normalised path, "/" + segments (for logs and the policy input) */
  path: string;
  /** the original path as received (query stripped), for the log line */
  rawPath: string;
}

type Headers = Record<string, string | string[] | undefined>;

const METHOD = /^[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]{0,31}$/;
const MAX_URI = 8192;
// C0 controls and DEL; a literal backslash is refused too, as some servers read it as "/"
const FORBIDDEN_RAW = /[\u0000-\u001f\u007f\\]/;
// encoded "/", "\" and NUL (CONTRACT §10): the proxy and the service could split differently
const FORBIDDEN_ENCODED = /%(?:2f|5c|00)/i;
const CONTROL = /[\u0000-\u001f\u007f]/;

/** The header's first value, trimmed; undefined when absent or blank. */
function presentHeader(value: string | string[] | undefined): string | undefined {
  const one = firstHeader(value)?.trim();
  return one === '' ? undefined : one;
}

function invalid(header: string, message: string): AppError {
  return new AppError('validation_failed', { errors: [{ path: header, message }], logReason: `forward: ${header} ${message}` });
}

/**
 * Normalises the original URI (CONTRACT §10): path only, percent-decoded once, dot segments
 * resolved. Refused (400): anything not origin-form, an encoded `/` or `\`, a NUL or other
 * control character, invalid percent-encoding, a `..` that would climb above the root, and a
 * segment still holding `..` afterwards (`..;`, `a..b`), which some servers read as a climb.
 * Repeated slashes collapse, as nginx's merge_slashes does.
 */
export function normalisePath(uri: string, header: string): { segments: string[]; rawPath: string } {
  if (uri.length > MAX_URI) throw invalid(header, 'is too long');
  const end = uri.search(/[?#]/);
  const rawPath = end === -1 ? uri : uri.slice(0, end);
  if (!rawPath.startsWith('/')) throw invalid(header, 'must be an absolute path');
  if (FORBIDDEN_RAW.test(rawPath)) throw invalid(header, 'holds a control character or a backslash');
  if (FORBIDDEN_ENCODED.test(rawPath)) throw invalid(header, 'holds an encoded "/", "\\" or NUL');
  let decoded: string;
  try {
    decoded = decodeURIComponent(rawPath);
  } catch {
    throw invalid(header, 'holds invalid percent-encoding');
  }
  if (CONTROL.test(decoded)) throw invalid(header, 'holds an encoded control character');
  const segments: string[] = [];
  for (const segment of decoded.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      if (segments.length === 0) throw invalid(header, 'climbs above the root');
      segments.pop();
      continue;
    }
    if (segment.includes('..')) throw invalid(header, 'holds a ".." segment');
    segments.push(segment);
  }
  return { segments, rawPath };
}

/**
 * Reads the original request: `X-Forwarded-Method` + `X-Forwarded-Uri` (+ `X-Forwarded-Host`)
 * as Traefik and Caddy send them, or nginx's `X-Original-Method` + `X-Original-URI`.
 */
export function readForwardedRequest(headers: Headers): ForwardedRequest {
  const forwardedUri = presentHeader(headers['x-forwarded-uri']);
  const uriHeader = forwardedUri !== undefined ? 'X-Forwarded-Uri' : 'X-Original-URI';
  const uri = forwardedUri ?? presentHeader(headers['x-original-uri']);
  const methodHeader = presentHeader(headers['x-forwarded-method']) !== undefined ? 'X-Forwarded-Method' : 'X-Original-Method';
  const method = presentHeader(headers['x-forwarded-method']) ?? presentHeader(headers['x-original-method']);
  if (uri === undefined) throw invalid('X-Forwarded-Uri', 'is required (or X-Original-URI)');
  if (method === undefined) throw invalid('X-Forwarded-Method', 'is required (or X-Original-Method)');
  if (!METHOD.test(method)) throw invalid(methodHeader, 'must be an HTTP method');
  const { segments, rawPath } = normalisePath(uri, uriHeader);
  // a proxy chain may list several hosts; the first is the client's
  const host = presentHeader(headers['x-forwarded-host'])?.split(',')[0]?.trim().toLowerCase();
  return { method: method.toUpperCase(), host: host === '' ? undefined : host, segments, path: `/${segments.join('/')}`, rawPath };
}
