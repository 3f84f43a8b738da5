import { z } from 'zod';

/** KV key of the forward-auth rules (CONTRACT §10): the bare array. */
export const FORWARD_RULES_KEY = 'forward.rules';

/** The most rules a list may hold: matching is a linear scan per decision. */
export const MAX_FORWARD_RULES = 1000;

/** A protected route of the decision API (CONTRACT §10). */
export interface ForwardRule {
  host?: string;
  path_prefix: string;
  methods?: string[];
  right?: string;
  resource?: string;
  tenant: 'header' | 'none';
  public: boolean;
}

// RFC 9110 token, written upper-case as methods are compared exactly
const METHOD = /^[A-Z][A-Z0-9!#$%&'*+.^_`|~-]{0,31}$/;
// a DNS name or IPv4 address, optional port; compared case-insensitively
const HOST = /^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(?::\d{1,5})?$/;
const RIGHT = /^[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*$/;
// a normalised absolute path: no empty, "." or ".." segments, no trailing slash (except "/")
const PATH_PREFIX = /^\/(?:[^/?#\\\s]+(?:\/[^/?#\\\s]+)*)?$/;
// a literal, with {n} (n ≥ 1) standing for the n-th normalised segment after the prefix
const RESOURCE = /^(?:[^{}\s]|\{[1-9][0-9]?\})+$/;

const ruleSchema = z
  .strictObject({
    host: z.string().regex(HOST, 'must be a host name, optionally with :port').optional(),
    path_prefix: z
      .string()
      .max(1024)
      .regex(PATH_PREFIX, 'must be a normalised absolute path ("/", "/orders", "/api/v1")')
      .refine((value) => !value.split('/').some((segment) => segment === '.' || segment === '..'), 'must not hold dot segments'),
    methods: z.array(z.string().regex(METHOD, 'must be an upper-case HTTP method')).min(1).max(16).optional(),
    right: z.string().max(128).regex(RIGHT, 'must be a right key').optional(),
    resource: z.string().max(256).regex(RESOURCE, 'must be a literal or use {n} placeholders (n ≥ 1)').optional(),
    tenant: z.enum(['header', 'none']).default('header'),
    public: z.boolean().default(false),
  })
  .superRefine((rule, context) => {
    if (rule.public) {
      // a public rule checks nothing; naming a right would suggest otherwise
      if (rule.right !== undefined) context.addIssue({ code: 'custom', path: ['right'], message: 'a public rule checks no right' });
      if (rule.resource !== undefined) {
        context.addIssue({ code: 'custom', path: ['resource'], message: 'a public rule checks no resource' });
      }
    } else if (rule.right === undefined) {
      context.addIssue({ code: 'custom', path: ['right'], message: 'is required unless public is true' });
    }
  });

export const forwardRulesSchema = z.array(ruleSchema).max(MAX_FORWARD_RULES);

/** The file form's `forward` member. */
export const forwardSectionSchema = z.strictObject({ rules: forwardRulesSchema.default([]) });
