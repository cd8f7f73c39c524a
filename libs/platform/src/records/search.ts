import { Migration } from '@mikro-orm/migrations';
import { snakeCase } from '@crm/contracts';

/**
 * Search of the records kit (a list's `q`): a case- and accent-insensitive substring match over a
 * record's `search` fields, served by one trigram index per table.
 *
 * - `crm_fold(text)` (in each service schema, created by {@link platformSearchMigration}):
 *   `lower(unaccent(text))` — immutable, so it can be indexed (`unaccent()` alone is only stable:
 *   the two-argument form with an explicit dictionary is the documented way to index it).
 * - The searched text of a row is the folded concatenation of its search fields, separated by a
 *   space, so "ada love" finds Ada Lovelace across first and last name ({@link searchExpression}).
 * - Index `<table>_search_idx`: GIN `gin_trgm_ops` over that expression, partial on live rows. A
 *   `LIKE '%…%'` of three or more characters is answered from it (pg_trgm); shorter terms scan.
 * - The term is matched as text: LIKE's `%`, `_` and `\` are escaped, NUL is refused earlier (400).
 *   A term that looks like a phone number (digits with `+ ( ) - . ` and spaces) also matches its
 *   digits alone, so "415 555" finds the E.164 number `+14155550100`.
 */

/** Creates pg_trgm and unaccent (database-wide, in `public`) and `crm_fold` in the service schema. */
export class PlatformSearchMigration extends Migration {
  override name = 'Migration20261123000050_platform_search';

  override up(): void {
    for (const sql of searchSetupSql()) this.addSql(sql);
  }

  override down(): void {
    this.addSql('drop function crm_fold(text)');
  }
}

/**
 * The statements of {@link PlatformSearchMigration}: pg_trgm and unaccent in `public` (one service
 * at a time: extensions are per database and services may migrate concurrently), then `crm_fold`
 * in `schema` (default: the first schema of the search path, i.e. the migrating service's).
 */
export function searchSetupSql(schema?: string): string[] {
  return [
    `select pg_advisory_xact_lock(hashtext('crm:extensions'))`,
    'create extension if not exists pg_trgm with schema public',
    'create extension if not exists unaccent with schema public',
    `create function ${schema ? `${schema}.` : ''}crm_fold(text) returns text
      language sql immutable parallel safe strict
      return lower(public.unaccent('public.unaccent'::regdictionary, $1))`,
  ];
}

/** Migration list entry for a service's `migrations` (before the first migration creating a search index). */
export const platformSearchMigration = { name: 'Migration20261123000050_platform_search', class: PlatformSearchMigration };

/**
 * The folded searched text of a row: `<schema>.crm_fold(coalesce(a, '') || ' ' || coalesce(b, '') …)`
 * over the columns of `fields` (property names, snake_cased), for index definitions and queries
 * alike (the planner uses the index only when both are the same expression). `schema` is quoted
 * by the caller when needed.
 */
export function searchExpression(schema: string, fields: readonly string[]): string {
  return `${schema}.crm_fold(${fields.map((f) => `coalesce(${snakeCase(f)}, '')`).join(` || ' ' || `)})`;
}

/**
 * The LIKE patterns of a search term (see above): the term escaped and wrapped in `%`, plus the
 * digits alone when it looks like a phone number with at least three digits.
 */
export function searchPatterns(term: string): string[] {
  const escaped = (text: string) => `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
  const patterns = [escaped(term)];
  const digits = term.replace(/\D/g, '');
  if (/^[+\d\s().-]+$/.test(term) && digits.length >= 3 && digits !== term) patterns.push(escaped(digits));
  return patterns;
}
