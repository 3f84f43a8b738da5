import { z } from 'zod';

/** Response shapes for the OpenAPI document (CONTRACT §3, §4, §6). Validation schemas live beside their controllers. */
const userSchema = z.object({ id: z.string(), email: z.string(), email_verified: z.boolean(), display_name: z.string().nullable() });

export const tokenResponseSchema = z
  .object({
    access_token: z.string().describe('ES256 JWT, typ at+jwt'),
    token_type: z.literal('Bearer'),
    expires_in: z.number().int(),
    refresh_token: z.string().describe('opaque, single use: each refresh rotates it'),
    session_id: z.string(),
    user: userSchema,
  })
  .meta({ id: 'TokenResponse' });

export const mfaPendingSchema = z
  .object({ mfa_required: z.literal(true), mfa_token: z.string(), mfa_methods: z.array(z.enum(['totp', 'recovery_code'])) })
  .meta({ id: 'MfaPending' });

export const signinResponseSchema = z.union([tokenResponseSchema, mfaPendingSchema]);

export const adminUserSchema = userSchema
  .extend({ status: z.enum(['active', 'disabled']), created_at: z.string(), updated_at: z.string() })
  .meta({ id: 'AdminUser' });

export const roleSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    tenant_id: z.string().nullable(),
    description: z.string().nullable(),
    built_in: z.boolean(),
    grants: z.array(z.string()),
  })
  .meta({ id: 'Role' });

export const assignmentSchema = z
  .object({
    id: z.string(),
    principal_id: z.string(),
    principal_type: z.enum(['user', 'service_account']),
    tenant_id: z.string().nullable(),
    role_id: z.string(),
    created_at: z.string(),
  })
  .meta({ id: 'Assignment' });

export const tenantSchema = z
  .object({ id: z.string(), name: z.string(), created_at: z.string(), updated_at: z.string() })
  .meta({ id: 'Tenant' });

export const serviceAccountSchema = z
  .object({ id: z.string(), client_id: z.string(), name: z.string(), tenant_id: z.string().nullable(), created_at: z.string() })
  .meta({ id: 'ServiceAccount' });

export const serviceAccountWithSecretSchema = serviceAccountSchema.extend({ client_secret: z.string().describe('shown only here') });

export const page = <T extends z.ZodType>(item: T) => z.object({ items: z.array(item), next_cursor: z.string().nullable() });
