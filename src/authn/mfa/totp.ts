import { generateSecret, verify } from 'otplib';

/** What authenticator apps assume when the otpauth URL says nothing else (RFC 6238 defaults). */
export const TOTP_ALGORITHM = 'sha1';
export const TOTP_DIGITS = 6;
export const TOTP_PERIOD_SECONDS = 30;
/** ±1 time step of clock drift between the phone and us. */
const DRIFT_STEPS = 1;

export type TotpAlgorithm = 'sha1' | 'sha256' | 'sha512';

export interface TotpCheck {
  /** base32 text (as enrolled) or raw key bytes (RFC test vectors) */
  secret: string | Uint8Array;
  code: string;
  /** Unix seconds; now by default */
  epochSeconds?: number;
  /** the last time step already accepted for this user: only later steps are accepted */
  afterTimeStep?: number | null;
  algorithm?: TotpAlgorithm;
  digits?: 6 | 7 | 8;
}

/**
 * The one TOTP check the service uses: returns the RFC 6238 time step the code belongs to,
 * or null. otplib is stateless; callers store the returned step to refuse replays.
 */
export async function matchTotp(check: TotpCheck): Promise<number | null> {
  const digits = check.digits ?? TOTP_DIGITS;
  if (!new RegExp(`^\\d{${digits}}$`).test(check.code)) return null;
  const epoch = check.epochSeconds ?? Math.floor(Date.now() / 1000);
  const currentStep = Math.floor(epoch / TOTP_PERIOD_SECONDS);
  const after = check.afterTimeStep ?? undefined;
  // every step inside the drift window is already spent (otplib refuses such a bound outright)
  if (after !== undefined && after >= currentStep + DRIFT_STEPS) return null;
  const result = await verify({
    secret: check.secret,
    token: check.code,
    epoch,
    algorithm: check.algorithm ?? TOTP_ALGORITHM,
    digits,
    period: TOTP_PERIOD_SECONDS,
    epochTolerance: DRIFT_STEPS * TOTP_PERIOD_SECONDS,
    afterTimeStep: after,
  });
  return result.valid && 'timeStep' in result ? result.timeStep : null;
}

/** 160 random bits, base32 (RFC 4226 recommends the HMAC-SHA1 output length). */
export function newTotpSecret(): string {
  return generateSecret({ length: 20 });
}

/** Key URI format understood by Google Authenticator, 1Password, Aegis and the like. */
export function otpauthUrl(issuer: string, accountName: string, secret: string): string {
  const label = `${encodeURIComponent(issuer)}:${encodeURIComponent(accountName)}`;
  const query = new URLSearchParams({
    secret,
    issuer,
    algorithm: TOTP_ALGORITHM.toUpperCase(),
    digits: String(TOTP_DIGITS),
    period: String(TOTP_PERIOD_SECONDS),
  });
  return `otpauth://totp/${label}?${query.toString()}`;
}
