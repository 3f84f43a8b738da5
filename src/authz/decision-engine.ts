/** One assignment as the engine sees it: where it applies and what its role grants. */
export interface GrantSource {
  assignmentId: string;
  /** null = platform scope (applies in every tenant and to platform-scope requests) */
  tenantId: string | null;
  roleId: string;
  roleName: string;
  grants: string[];
}

export interface DecisionInput {
  principalId: string;
  tenantId?: string;
  right: string;
  resource?: string;
  assignments: GrantSource[];
}

export interface MatchedGrant {
  assignment_id: string;
  role: string;
  grant: string;
}

export interface Decision {
  decision: 'allow' | 'deny';
  /** set on deny: which contract code the refusal carries */
  code?: 'forbidden' | 'tenant_forbidden';
  reason: string;
  matched: MatchedGrant[];
}

const globCache = new Map<string, RegExp>();

function globRegex(glob: string): RegExp {
  let regex = globCache.get(glob);
  if (regex === undefined) {
    const body = glob
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.');
    regex = new RegExp(`^${body}$`);
    globCache.set(glob, regex);
  }
  return regex;
}

/** Splits "right:glob" at the first colon; "*" alone grants every right. */
export function parseGrant(grant: string): { right: string; glob?: string } {
  const colon = grant.indexOf(':');
  return colon === -1 ? { right: grant } : { right: grant.slice(0, colon), glob: grant.slice(colon + 1) };
}

/**
 * Whether `grant` gives `right` on `resource`. A grant without a glob covers every resource;
 * a request without a resource is covered only by grants without a glob or with glob "*".
 */
export function grantMatches(grant: string, right: string, resource?: string): boolean {
  if (grant === '*') return true;
  const parsed = parseGrant(grant);
  if (parsed.right !== right) return false;
  if (parsed.glob === undefined || parsed.glob === '*') return true;
  if (resource === undefined) return false;
  return globRegex(parsed.glob).test(resource);
}

/** Whether holding `held` is enough to hand out `wanted` (no escalation through role edits). */
export function grantCovers(held: string, wanted: string): boolean {
  if (held === '*') return true;
  if (wanted === '*') return false;
  const have = parseGrant(held);
  const want = parseGrant(wanted);
  if (have.right !== want.right) return false;
  if (have.glob === undefined || have.glob === '*') return true;
  if (want.glob === undefined || want.glob === '*') return false;
  // the wanted glob, read as a name, must fall under the held one (order-eu* under order*)
  return have.glob === want.glob || globRegex(have.glob).test(want.glob.replace(/[*?]+$/, ''));
}

function scopeLabel(tenantId: string | undefined): string {
  return tenantId === undefined ? 'at platform scope' : `in tenant ${tenantId}`;
}

/**
 * The policy decision: (principal, tenant?, right, resource?) → allow | deny with a reason.
 * Platform-scope assignments apply everywhere; tenant assignments only in their tenant.
 */
export function decide(input: DecisionInput): Decision {
  const relevant = input.assignments.filter(
    (assignment) => assignment.tenantId === null || (input.tenantId !== undefined && assignment.tenantId === input.tenantId),
  );
  if (input.tenantId !== undefined && relevant.length === 0) {
    return { decision: 'deny', code: 'tenant_forbidden', reason: `deny: no assignment in tenant ${input.tenantId}`, matched: [] };
  }
  const matched: MatchedGrant[] = [];
  for (const assignment of relevant) {
    for (const grant of assignment.grants) {
      if (grantMatches(grant, input.right, input.resource)) {
        matched.push({ assignment_id: assignment.assignmentId, role: assignment.roleName, grant });
      }
    }
  }
  const what = input.resource === undefined ? input.right : `${input.right} on ${input.resource}`;
  if (matched.length === 0) {
    return { decision: 'deny', code: 'forbidden', reason: `deny: no grant of ${what} ${scopeLabel(input.tenantId)}`, matched };
  }
  const first = matched[0]!;
  return {
    decision: 'allow',
    reason: `allow: role ${first.role} grants ${first.grant} for ${what} ${scopeLabel(input.tenantId)}`,
    matched,
  };
}
