import { AppError } from '../common/app-error';

// C0 controls, DEL and a literal backslash (some servers read it as "/")
const FORBIDDEN_RAW = /[\u0000-\u001f\u007f\\]/;
// encoded "/", "\" and NUL: Gatehouse and the runner could split the path differently
const FORBIDDEN_ENCODED = /%(?:2f|5c|00)/i;
const CONTROL = /[\u0000-\u001f\u007f]/;
// what a path segment may carry unencoded (RFC 3986 pchar without "%")
const PCHAR_SAFE = /[A-Za-z0-9\-._~!$&'()*+,;=:@]/;

function invalid(message: string): AppError {
  return new AppError('validation_failed', {
    detail: 'The runner path is not allowed.',
    errors: [{ path: 'path', message }],
    logReason: `runner path ${message}`,
  });
}

function encodeSegment(segment: string): string {
  let out = '';
  for (const char of segment) out += PCHAR_SAFE.test(char) ? char : encodeURIComponent(char);
  return out;
}

/**
 * The path and query a runner passthrough sends upstream, from what followed `/admin/runner`.
 * Each segment is decoded once and re-encoded canonically, so the runner sees exactly what was
 * authorized. Refused (400): dot segments (`.`, `..`, also encoded), empty segments (`//x` would
 * be read as another host: the absolute-form trick), an encoded `/`, `\` or NUL, control characters
 * and invalid percent-encoding. A trailing `/` is kept.
 */
export function runnerUpstreamPath(rest: string): string {
  const end = rest.indexOf('?');
  const rawPath = end === -1 ? rest : rest.slice(0, end);
  const query = end === -1 ? '' : rest.slice(end);
  if (rawPath === '' || rawPath === '/') return `/${query}`;
  if (!rawPath.startsWith('/')) throw invalid('must follow /admin/runner/');
  if (FORBIDDEN_RAW.test(rawPath)) throw invalid('holds a control character or a backslash');
  if (FORBIDDEN_ENCODED.test(rawPath)) throw invalid('holds an encoded "/", "\\" or NUL');
  if (CONTROL.test(query)) throw invalid('holds a control character in the query');
  const segments = rawPath.slice(1).split('/');
  const trailingSlash = segments.at(-1) === '';
  if (trailingSlash) segments.pop();
  const encoded = segments.map((raw) => {
    let segment: string;
    try {
      segment = decodeURIComponent(raw);
    } catch {
      throw invalid('holds invalid percent-encoding');
    }
    if (segment === '') throw invalid('holds an empty segment ("//")');
    if (segment === '.' || segment === '..' || segment.includes('..')) throw invalid('holds a dot segment');
    if (CONTROL.test(segment)) throw invalid('holds an encoded control character');
    return encodeSegment(segment);
  });
  return `/${encoded.join('/')}${trailingSlash ? '/' : ''}${query}`;
}
