import { type PipeTransform } from '@nestjs/common';
import type { ZodType } from 'zod';
import { AppError } from './app-error';

/** Validates a body/query with a zod schema; failures are 400 validation_failed with paths. */
export class ZodValidationPipe<T> implements PipeTransform<unknown, T> {
  /**
   * `refusal`: the error a mismatch is instead, for bodies whose every malformed value must look
   * like an unknown one (a refresh token too long, empty or not a string is 401 `invalid_grant`).
   */
  constructor(
    private readonly schema: ZodType<T>,
    private readonly refusal?: () => AppError,
  ) {}

  transform(value: unknown): T {
    const result = this.schema.safeParse(value ?? {});
    if (result.success) return result.data;
    if (this.refusal !== undefined) throw this.refusal();
    throw new AppError('validation_failed', {
      detail: 'The request has invalid fields.',
      errors: result.error.issues.map((issue) => ({
        path: issue.path.length > 0 ? issue.path.map(String).join('.') : '(body)',
        // zod messages describe the rule, never the input value
        message: issue.message,
      })),
    });
  }
}
