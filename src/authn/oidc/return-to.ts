/**
 * Whether `candidate` may receive the browser after a Google sign-in. Allowlist entries are URL
 * prefixes, compared structurally rather than as strings, so `https://app.example` does not
 * admit `https://app.example.evil.test` and `https://app.example/cb` does not admit `/cb-other`.
 */
export function isAllowedReturnTo(candidate: string, allowlist: readonly string[]): boolean {
  // the URL parser silently drops tabs and newlines and treats `\` as `/`; refuse them outright
  if (/[\s\\\u0000-\u001f\u007f]/.test(candidate)) return false;
  let url: URL;
  try {
    url = new URL(candidate);
  } catch {
    return false;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return false;
  // credentials would be sent along; a fragment would collide with the one we append
  if (url.username !== '' || url.password !== '' || candidate.includes('#')) return false;
  return allowlist.some((entry) => {
    let allowed: URL;
    try {
      allowed = new URL(entry);
    } catch {
      return false;
    }
    if (allowed.origin !== url.origin) return false;
    const prefix = allowed.pathname;
    if (prefix === '/' || prefix.endsWith('/')) return url.pathname.startsWith(prefix);
    return url.pathname === prefix || url.pathname.startsWith(`${prefix}/`);
  });
}

/** `return_to` with our fragment parameter appended (return_to never carries a fragment). */
export function withFragment(returnTo: string, name: string, value: string): string {
  return `${returnTo}#${name}=${encodeURIComponent(value)}`;
}
