import { AppError } from '../../common/app-error';

export interface PresentedClient {
  clientId: string;
  clientSecret: string;
  /** how the client authenticated: HTTP Basic (client_secret_basic) or in the body (client_secret_post) */
  method: 'basic' | 'post';
}

/** Sent with a 401 to a client that authenticated (or should have) with HTTP Basic (RFC 6749 §5.2). */
export const BASIC_CHALLENGE = { 'www-authenticate': 'Basic realm="gatehouse", charset="UTF-8"' };

/** RFC 6749 §2.3.1: id and secret are form-urlencoded before they are joined and base64-encoded. */
function formDecode(value: string): string {
  return decodeURIComponent(value.replace(/\+/g, ' '));
}

function refused(logReason: string, basic: boolean): AppError {
  return new AppError('invalid_credentials', { logReason, headers: basic ? BASIC_CHALLENGE : undefined });
}

/**
 * The client credentials of an OAuth request: an `Authorization: Basic` header or
 * `client_id`/`client_secret` in the body, never both (RFC 6749 §2.3: one method per request).
 * `undefined` when the request carries neither.
 */
export function presentedClient(
  authorization: string | undefined,
  body: { client_id?: string; client_secret?: string },
  /** `always`: every refusal carries the Basic challenge (introspection, CONTRACT §12) */
  challenge: 'when-basic' | 'always' = 'when-basic',
): PresentedClient | undefined {
  const inBody = body.client_id !== undefined || body.client_secret !== undefined;
  if (authorization !== undefined && /^basic\s/i.test(authorization.trim())) {
    if (inBody) {
      throw new AppError('validation_failed', {
        detail: 'Authenticate the client with HTTP Basic or with client_id and client_secret in the body, not both.',
        errors: [{ path: 'client_id', message: 'must not be sent together with HTTP Basic client authentication' }],
      });
    }
    const decoded = Buffer.from(authorization.trim().slice(6).trim(), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) throw refused('malformed HTTP Basic client credentials', true);
    try {
      return { clientId: formDecode(decoded.slice(0, colon)), clientSecret: formDecode(decoded.slice(colon + 1)), method: 'basic' };
    } catch {
      throw refused('HTTP Basic client credentials are not form-urlencoded', true);
    }
  }
  if (!inBody) return undefined;
  if (body.client_id === undefined || body.client_secret === undefined) {
    throw refused('client_id without client_secret, or the reverse', challenge === 'always');
  }
  return { clientId: body.client_id, clientSecret: body.client_secret, method: 'post' };
}
