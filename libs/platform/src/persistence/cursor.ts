import { DomainError } from '../errors.ts';
import { isUuid } from './ids.ts';

/** Page size bounds of every list (architecture: "page size ≤ 200"). */
export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 200;

/**
 * Keyset cursors: the sort key values of the last row of a page, as base64url JSON. Opaque to
 * clients; a cursor that does not decode to an object with the expected string keys is rejected
 * with INVALID_ARGUMENT (`pageToken`).
 */
export function encodeCursor(key: Record<string, string>): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

/** Decodes a cursor made by {@link encodeCursor}; `keys` are the fields it must carry. */
export function decodeCursor<K extends string>(token: string, keys: readonly K[]): Record<K, string> {
  try {
    const value: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (typeof value === 'object' && value !== null && keys.every((k) => typeof (value as Record<string, unknown>)[k] === 'string')) {
      return value as Record<K, string>;
    }
  } catch {
    // fall through to the error below
  }
  throw invalidCursor();
}

/** INVALID_ARGUMENT `INVALID_CURSOR` naming `cursor`: a page token that no previous page gave. */
export function invalidCursor(): DomainError {
  return new DomainError('invalid_argument', 'INVALID_CURSOR', 'page token is not valid', [{ field: 'cursor', message: 'not a cursor from a previous page' }]);
}

/** Clamps a requested page size: 0/absent → default, otherwise 1..200 or INVALID_ARGUMENT. */
export function pageSize(requested: number | undefined): number {
  if (!requested) return DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(requested) || requested < 1 || requested > MAX_PAGE_SIZE) {
    throw new DomainError('invalid_argument', 'INVALID_PAGE_SIZE', `page size must be 1..${MAX_PAGE_SIZE}`, [
      { field: 'limit', message: `must be between 1 and ${MAX_PAGE_SIZE}` },
    ]);
  }
  return requested;
}

/**
 * One page of a list ordered by id (UUIDv7, so creation order): validates the page size and the
 * cursor, asks `fetch` for `limit + 1` rows after the cursor's id to learn whether more follow,
 * and returns the page with the next cursor (undefined on the last page). Errors:
 * INVALID_PAGE_SIZE, INVALID_CURSOR.
 */
export async function keysetPageById<T extends { id: string }>(
  request: { pageSize?: number | undefined; cursor?: string | undefined },
  fetch: (afterId: string | undefined, limit: number) => Promise<T[]>,
): Promise<{ items: T[]; nextCursor: string | undefined }> {
  const limit = pageSize(request.pageSize);
  const after = request.cursor ? decodeCursor(request.cursor, ['id']).id : undefined;
  if (after !== undefined && !isUuid(after)) throw invalidCursor();
  const rows = await fetch(after, limit + 1);
  const more = rows.length > limit;
  const items = more ? rows.slice(0, limit) : rows;
  return { items, nextCursor: more ? encodeCursor({ id: items[items.length - 1]!.id }) : undefined };
}

/**
 * The cursor of a sorted list page: sort name, the sort values of the last row (as Postgres
 * prints them) and its id, as base64url JSON (`{ s, v, id }`; the default order `id`: `{ id }`).
 * Opaque to clients.
 */
export function encodeListCursor(sort: string, values: readonly string[], id: string): string {
  // the default order keeps the plain `{ id }` cursor of keysetPageById (the same pages, the same tokens)
  if (sort === 'id' && values.length === 0) return encodeCursor({ id });
  return Buffer.from(JSON.stringify({ s: sort, v: values, id })).toString('base64url');
}

/**
 * Decodes {@link encodeListCursor}'s cursor for a list sorted by `sort` on `count` fields:
 * INVALID_CURSOR when it does not decode, was made for another sort (a client switching the sort
 * must start over), carries another number of values or a non-UUID id. The plain id cursors of
 * {@link keysetPageById} (`{ id }`) are accepted for the default sort (`id`).
 */
export function decodeListCursor(token: string, sort: string, count: number): { values: string[]; id: string } {
  try {
    const value: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (typeof value === 'object' && value !== null) {
      const c = value as { s?: unknown; v?: unknown; id?: unknown };
      const values = c.v === undefined && sort === 'id' ? [] : c.v;
      if (
        (c.s ?? 'id') === sort &&
        Array.isArray(values) &&
        values.length === count &&
        values.every((v) => typeof v === 'string' && v.length <= 1000) &&
        typeof c.id === 'string' &&
        isUuid(c.id)
      ) {
        return { values: values as string[], id: c.id };
      }
    }
  } catch {
    // fall through to the error below
  }
  throw invalidCursor();
}
