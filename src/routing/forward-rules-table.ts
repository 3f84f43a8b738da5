import type { ForwardRule } from './forward-rules-document';
import { RoutingValidationError, parseForwardRules, type RoutingProblem } from './routing-document';

/** The forward rules in force. Immutable: a change replaces the whole object. */
export interface ForwardRulesSnapshot {
  readonly rules: readonly Readonly<ForwardRule>[];
  readonly revision: number;
  readonly appliedAt: Date | undefined;
}

export interface ForwardRulesRejection {
  at: Date;
  revision: number;
  problems: RoutingProblem[];
}

export type ForwardOfferResult = { applied: true; snapshot: ForwardRulesSnapshot } | { applied: false; rejection: ForwardRulesRejection };

function freeze(rules: ForwardRule[], revision: number, appliedAt: Date | undefined): ForwardRulesSnapshot {
  return Object.freeze({
    rules: Object.freeze(rules.map((rule) => Object.freeze({ ...rule, methods: rule.methods && Object.freeze([...rule.methods]) }))),
    revision,
    appliedAt,
  }) as ForwardRulesSnapshot;
}

/**
 * The last good forward-auth rule list of one replica (CONTRACT §10). An invalid list is
 * refused and remembered; the previous list stays in force. No list at all = no rule, so
 * every decision is a deny.
 */
export class ForwardRulesTable {
  private current: ForwardRulesSnapshot = freeze([], 0, undefined);
  private rejection: ForwardRulesRejection | undefined;

  snapshot(): ForwardRulesSnapshot {
    return this.current;
  }

  lastRejection(): ForwardRulesRejection | undefined {
    return this.rejection;
  }

  /** A KV value (`raw` null = deleted: no rules). */
  offerRaw(raw: string | Uint8Array | null, revision: number): ForwardOfferResult {
    let rules: ForwardRule[];
    try {
      rules = raw === null ? [] : parseForwardRules(raw);
    } catch (error) {
      return this.reject(revision, error);
    }
    return this.offerRules(rules, revision);
  }

  /** Already validated rules (the file form, an API write in single-node mode). */
  offerRules(rules: ForwardRule[], revision: number): ForwardOfferResult {
    this.current = freeze(rules, revision, new Date());
    return { applied: true, snapshot: this.current };
  }

  reject(revision: number, error: unknown): ForwardOfferResult {
    const problems =
      error instanceof RoutingValidationError
        ? error.problems
        : [{ path: 'forward.rules', message: error instanceof Error ? error.message : 'invalid' }];
    this.rejection = { at: new Date(), revision, problems };
    return { applied: false, rejection: this.rejection };
  }
}
