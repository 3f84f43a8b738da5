import type { ForwardRule } from '../routing/forward-rules-document';
import type { ForwardedRequest } from './forwarded-request';

export interface RuleMatch {
  rule: Readonly<ForwardRule>;
  /** position in the list, for the log */
  index: number;
  /** the resource the right applies to; undefined when the rule names none or a {n} segment is missing */
  resource?: string;
}

function prefixSegments(prefix: string): string[] {
  return prefix.split('/').filter((segment) => segment !== '');
}

/** A rule without a port matches the host on any port; with one, only that host:port. */
function hostMatches(ruleHost: string, host: string | undefined): boolean {
  if (host === undefined) return false;
  const wanted = ruleHost.toLowerCase();
  if (wanted.includes(':')) return host === wanted;
  return host.replace(/:\d+$/, '') === wanted;
}

/** `{n}` → the n-th normalised segment after the prefix; a missing one leaves no resource. */
function resourceOf(template: string | undefined, rest: string[]): string | undefined {
  if (template === undefined) return undefined;
  let missing = false;
  const resource = template.replace(/\{(\d+)\}/g, (_placeholder, n: string) => {
    const segment = rest[Number(n) - 1];
    if (segment === undefined) missing = true;
    return segment ?? '';
  });
  return missing ? undefined : resource;
}

/**
 * The first rule whose host (if given), path prefix (at a segment boundary: `/orders`
 * matches `/orders` and `/orders/1`, not `/orders-archive`) and method (if given) match.
 */
export function matchRule(rules: readonly Readonly<ForwardRule>[], request: ForwardedRequest): RuleMatch | undefined {
  for (const [index, rule] of rules.entries()) {
    if (rule.host !== undefined && !hostMatches(rule.host, request.host)) continue;
    if (rule.methods !== undefined && !rule.methods.includes(request.method)) continue;
    const prefix = prefixSegments(rule.path_prefix);
    if (prefix.length > request.segments.length) continue;
    if (!prefix.every((segment, position) => request.segments[position] === segment)) continue;
    return { rule, index, resource: resourceOf(rule.resource, request.segments.slice(prefix.length)) };
  }
  return undefined;
}
