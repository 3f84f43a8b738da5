import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/common/app-error';
import { matchRule } from '../../src/forward/forward-rule-matcher';
import { normalisePath, readForwardedRequest } from '../../src/forward/forwarded-request';
import { validateForwardRules } from '../../src/routing/routing-document';

const segmentsOf = (uri: string) => normalisePath(uri, 'X-Original-URI').segments;

function refused(uri: string): string {
  try {
    normalisePath(uri, 'X-Original-URI');
  } catch (error) {
    expect(error).toBeInstanceOf(AppError);
    expect((error as AppError).code).toBe('validation_failed');
    return (error as AppError).options.errors![0]!.message;
  }
  throw new Error(`${uri} was accepted`);
}

describe('forward-auth path normalisation (CONTRACT §10)', () => {
  it('strips the query, decodes once, resolves dot segments and collapses slashes', () => {
    expect(segmentsOf('/orders/1?token=secret#x')).toEqual(['orders', '1']);
    expect(segmentsOf('/orders/%31')).toEqual(['orders', '1']);
    expect(segmentsOf('/a/./b/../orders')).toEqual(['a', 'orders']);
    expect(segmentsOf('/payroll/%2e%2e/orders/7')).toEqual(['orders', '7']);
    expect(segmentsOf('//orders///7/')).toEqual(['orders', '7']);
    expect(segmentsOf('/')).toEqual([]);
    // decoded once: a double-encoded dot stays a literal "%2e"
    expect(segmentsOf('/orders/%252e%252e')).toEqual(['orders', '%2e%2e']);
    expect(segmentsOf('/caf%C3%A9')).toEqual(['café']);
  });

  it('refuses encoded separators, NUL, control characters, bad encoding and traversal tricks', () => {
    expect(refused('/orders%2F..%2Fpayroll')).toMatch(/encoded/);
    expect(refused('/orders%2f1')).toMatch(/encoded/);
    expect(refused('/orders%5C..%5Cpayroll')).toMatch(/encoded/);
    expect(refused('/orders\\..\\payroll')).toMatch(/backslash/);
    expect(refused('/orders%00.json')).toMatch(/encoded/);
    expect(refused('/orders%0a')).toMatch(/control/);
    expect(refused('/orders/%zz')).toMatch(/percent/);
    expect(refused('/../etc/passwd')).toMatch(/root/);
    expect(refused('/orders/%2e%2e/%2e%2e/x')).toMatch(/root/);
    expect(refused('/orders/..;/payroll')).toMatch(/\.\./);
    expect(refused('http://evil.example/orders')).toMatch(/absolute path/);
    expect(refused('orders')).toMatch(/absolute path/);
  });

  it('reads X-Forwarded-* (Traefik, Caddy) before X-Original-* (nginx), and requires method and URI', () => {
    const traefik = readForwardedRequest({
      'x-forwarded-method': 'post',
      'x-forwarded-uri': '/a?b',
      'x-forwarded-host': 'App.Example:8443',
    });
    expect(traefik).toMatchObject({ method: 'POST', host: 'app.example:8443', path: '/a', rawPath: '/a' });
    const nginx = readForwardedRequest({ 'x-original-method': 'GET', 'x-original-uri': '/x/../y' });
    expect(nginx).toMatchObject({ method: 'GET', host: undefined, path: '/y', rawPath: '/x/../y' });
    expect(() => readForwardedRequest({ 'x-original-method': 'GET' })).toThrow(AppError);
    expect(() => readForwardedRequest({ 'x-original-uri': '/' })).toThrow(AppError);
    expect(() => readForwardedRequest({ 'x-original-uri': '/', 'x-original-method': 'G E T' })).toThrow(AppError);
  });
});

describe('forward-auth rules', () => {
  const rules = validateForwardRules([
    { host: 'admin.example.com', path_prefix: '/', right: 'platform.routing.read', tenant: 'none' },
    { path_prefix: '/public', public: true },
    { path_prefix: '/orders', methods: ['GET'], right: 'queries.run', resource: 'order-{1}' },
    { path_prefix: '/orders', right: 'commands.submit', resource: '{1}' },
    { path_prefix: '/reports/monthly', right: 'queries.run', resource: 'reports', tenant: 'none' },
  ]);
  const match = (method: string, uri: string, host?: string) =>
    matchRule(rules, readForwardedRequest({ 'x-forwarded-method': method, 'x-forwarded-uri': uri, 'x-forwarded-host': host }));

  it('applies defaults and refuses lists that break the shape', () => {
    expect(rules[1]).toEqual({ path_prefix: '/public', public: true, tenant: 'header' });
    expect(rules[2]).toMatchObject({ tenant: 'header', public: false });
    const problems = (value: unknown) => {
      try {
        validateForwardRules(value);
        return [];
      } catch (error) {
        return (error as { problems: Array<{ path: string }> }).problems.map((problem) => problem.path);
      }
    };
    expect(problems([{ path_prefix: '/x' }])).toEqual(['forward.rules.0.right']);
    expect(problems([{ path_prefix: 'x', right: 'a.b' }])).toEqual(['forward.rules.0.path_prefix']);
    expect(problems([{ path_prefix: '/x/../y', right: 'a.b' }])).toEqual(['forward.rules.0.path_prefix']);
    expect(problems([{ path_prefix: '/x', right: 'a.b', methods: ['get'] }])).toEqual(['forward.rules.0.methods.0']);
    expect(problems([{ path_prefix: '/x', right: 'a.b', tenant: 'optional' }])).toEqual(['forward.rules.0.tenant']);
    expect(problems([{ path_prefix: '/x', right: 'a.b', resource: '{0}' }])).toEqual(['forward.rules.0.resource']);
    expect(problems([{ path_prefix: '/x', public: true, right: 'a.b' }])).toEqual(['forward.rules.0.right']);
    expect(problems([{ path_prefix: '/x', right: 'a.b', extra: 1 }])).toEqual(['forward.rules.0']);
    expect(problems({ rules: [] })).toEqual(['forward.rules']);
  });

  it('takes the first rule whose host, prefix (at a segment boundary) and method match', () => {
    expect(match('GET', '/anything', 'admin.example.com:443')?.index).toBe(0);
    expect(match('GET', '/public/logo.png')?.index).toBe(1);
    expect(match('GET', '/public')?.index).toBe(1);
    expect(match('GET', '/publicity')).toBeUndefined();
    expect(match('GET', '/orders/42')).toMatchObject({ index: 2, resource: 'order-42' });
    expect(match('POST', '/orders/42/items')).toMatchObject({ index: 3, resource: '42' });
    expect(match('POST', '/orders')).toMatchObject({ index: 3, resource: undefined });
    expect(match('GET', '/orders-archive/1')).toBeUndefined();
    expect(match('GET', '/reports/monthly/2026')?.index).toBe(4);
    expect(match('GET', '/reports/weekly')).toBeUndefined();
    // the normalised path decides: a climb out of /public lands on /orders
    expect(match('GET', '/public/%2e%2e/orders/9')).toMatchObject({ index: 2, resource: 'order-9' });
  });
});
