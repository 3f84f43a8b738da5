import { z } from 'zod';
import { AppError } from './app-error';

/** `?limit=1..200&cursor=<opaque>` (CONTRACT §1). The cursor is the last id seen, base64url-wrapped. */
export const pageQuery = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(512).optional(),
});

export type PageQuery = z.infer<typeof pageQuery>;

/** A list response (CONTRACT §1): the OpenAPI schema of a page of `item`. */
export const pageSchema = <T extends z.ZodType>(item: T) => z.object({ items: z.array(item), next_cursor: z.string().nullable() });

/** The type of `pageSchema(schema)` for an item type `T`, i.e. `z.infer<ReturnType<typeof pageSchema<typeof schema>>>`. */
export type Page<T> = Omit<z.infer<ReturnType<typeof pageSchema>>, 'items'> & { items: T[] };

export function decodeCursor(cursor: string | undefined): string | undefined {
  if (cursor === undefined || cursor === '') return undefined;
  try {
    const parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { after?: unknown };
    if (typeof parsed.after === 'string') return parsed.after;
  } catch {
    // fall through
  }
  throw new AppError('validation_failed', { errors: [{ path: 'cursor', message: 'is not a cursor from this list' }] });
}

/** Rows fetched with `take: limit + 1`, ordered by a unique string key. */
export function toPage<R, T>(rows: R[], limit: number, keyOf: (row: R) => string, view: (row: R) => T): Page<T> {
  const more = rows.length > limit;
  const kept = more ? rows.slice(0, limit) : rows;
  const last = kept[kept.length - 1];
  return {
    items: kept.map(view),
    next_cursor: more && last !== undefined ? Buffer.from(JSON.stringify({ after: keyOf(last) })).toString('base64url') : null,
  };
}
