import { type PipeTransform } from '@nestjs/common';
import type { ZodType } from 'zod';
import { AppError } from './app-error';

/** Validates a body/query with a zod schema; failures are 400 validation_failed with paths. */
export class ZodValidationPipe<T> implements PipeTransform<unknown, T> {
  constructor(private readonly schema: ZodType<T>) {}

  transform(value: unknown): T {
    const result = this.schema.safeParse(value ?? {});
    if (result.success) return result.data;
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
