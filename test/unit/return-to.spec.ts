import { describe, expect, it } from 'vitest';
import { isAllowedReturnTo } from '../../src/authn/oidc/return-to';

const ALLOWLIST = ['https://app.example.com/auth/', 'http://localhost:5173/cb', 'https://admin.example.com'];

describe('return_to allowlist', () => {
  it.each([
    'https://app.example.com/auth/',
    'https://app.example.com/auth/done?x=1',
    'http://localhost:5173/cb',
    'http://localhost:5173/cb/inner',
    'https://admin.example.com/',
    'https://admin.example.com/anything',
  ])('allows %s', (candidate) => {
    expect(isAllowedReturnTo(candidate, ALLOWLIST)).toBe(true);
  });

  it.each([
    'https://evil.example/auth/',
    'https://app.example.com.evil.test/auth/',
    'https://app.example.com@evil.test/auth/',
    'https://user:pw@app.example.com/auth/',
    'http://app.example.com/auth/',
    'https://app.example.com:8443/auth/',
    'https://app.example.com/other',
    'https://app.example.com/auth',
    'https://app.example.com/auth/../admin',
    'https://app.example.com/auth/%2e%2e/admin',
    'http://localhost:5173/cb-other',
    'https://app.example.com/auth/#frag',
    'https://app.example.com/auth/\\evil',
    'https://app.example.com/auth/\nx',
    '//evil.example/auth/',
    '/auth/',
    'javascript:alert(1)//https://app.example.com/auth/',
    'not a url',
  ])('refuses %s', (candidate) => {
    expect(isAllowedReturnTo(candidate, ALLOWLIST)).toBe(false);
  });

  it('refuses everything when the allowlist is empty', () => {
    expect(isAllowedReturnTo('https://app.example.com/auth/', [])).toBe(false);
  });
});
