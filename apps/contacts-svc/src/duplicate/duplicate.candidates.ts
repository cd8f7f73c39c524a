import type pg from 'pg';
import { e164 } from '@crm/contracts';
import { isUuid, type EntityManager } from '@crm/platform';
import { NAME_SIMILARITY_FLOOR, scoreDuplicate, type DuplicateEvidence, type DuplicateObject, type DuplicateScore } from './duplicate.rules.ts';

/**
 * The candidate search: live records of one organization that match a probe (a draft, or stored
 * records) by at least one rule of duplicate.rules.ts, with their evidence — one statement,
 * never a scan of the organization. Each rule is one arm served by its blocking index (migration
 * `Migration20261124000200_duplicates_merge`), and the arms' hits are grouped by record:
 *
 * | arm              | contacts                                          | companies |
 * | ---------------- | ------------------------------------------------- | --------- |
 * | email            | `contact_email_key_idx` (org, crm_email_key)      | `company_email_key_idx` |
 * | phone            | `contact_phone_idx`, `contact_mobile_idx`         | `company_phone_idx` |
 * | domain           | —                                                 | `company_domain_key_idx` (org, crm_company_domain_key) |
 * | name             | `contact_name_key_idx`: (org, company, name key) including the name columns — an index-only scan of the company's contacts, similarity computed on the stored key | `company_name_key_idx`: (org, lower(city), name key), the same way |
 *
 * The name arm reads the whole block (all contacts of the company, all companies of the city),
 * so its cost grows with the block: about 1.7 µs per record of the block (10 ms for a company
 * with 6,000 contacts); everything else is a few index probes. Every arm stops at
 * {@link ARM_LIMIT} hits per probe, so a value shared by thousands of records cannot make a
 * probe's result (or a scan batch) explode.
 */

/** A draft contact as the record service stores values (phones E.164; others are normalised best-effort). */
export interface ContactDraft {
  email?: string | null | undefined;
  phone?: string | null | undefined;
  mobile?: string | null | undefined;
  firstName?: string | null | undefined;
  lastName?: string | null | undefined;
  companyId?: string | null | undefined;
}

/** A draft company as the record service stores values. */
export interface CompanyDraft {
  name?: string | null | undefined;
  domain?: string | null | undefined;
  website?: string | null | undefined;
  email?: string | null | undefined;
  phone?: string | null | undefined;
  address?: { city?: string | null | undefined } | null | undefined;
}

/** A live record likely the same as the probe: its id, score and reasons. */
export interface DuplicateCandidate extends DuplicateScore {
  recordId: string;
}

/** Options of {@link findDuplicateCandidates}. */
export interface CandidateOptions {
  /** The organization searched (the caller's); every statement is scoped by it. */
  organizationId: string;
  /** Candidates must score at least this (1..100). */
  minScore: number;
  /** Records never returned (e.g. the record itself when re-checking a stored one). */
  excludeIds?: readonly string[] | undefined;
  /** At most this many, best first (default {@link MAX_CANDIDATES}). */
  limit?: number | undefined;
}

/** Candidates returned at most by default. */
export const MAX_CANDIDATES = 50;

/**
 * Hits each arm of the candidate statement returns at most per probe: a value many records share
 * (a switchboard phone on 10,000 contacts, a city full of similarly named companies) costs at most
 * this many rows per arm instead of the whole block — such a shared value is weak evidence anyway
 * (phone 40). Which of the sharers are returned then is arbitrary.
 */
export const ARM_LIMIT = 200;

/**
 * The lowest score the duplicate scan stores as a pair (what `GET /…/duplicates` can list): 50,
 * the weight of an exact name alone. Weaker single signals (a shared phone, 40; a similar name,
 * 30–49) would fill the pairs table quadratically for shared numbers and are no duplicates on their
 * own; lists asked for a lower `minScore` (or an organization threshold below 50) list from 50.
 * On-demand checks (create, `:findDuplicates`, imports) still score every candidate.
 */
export const PAIR_FLOOR = 50;

/** Pairs the scan stores at most per record, best first. */
export const MAX_PAIRS_PER_RECORD = 200;

/**
 * Where the candidate query runs: a MikroORM entity manager (inside its transaction, when it has
 * one) or a node-postgres client or pool (e.g. an import's own transaction).
 */
export type SqlExecutor = EntityManager | Pick<pg.ClientBase, 'query'>;

/** Runs a statement with `?` placeholders (the statements here have no other `?`) on either kind of executor. */
async function run<T>(db: SqlExecutor, sql: string, params: readonly unknown[]): Promise<T[]> {
  if ('execute' in db) return db.execute<T[]>(sql, [...params]);
  let n = 0;
  const { rows } = await db.query(
    sql.replace(/\?/g, () => `$${++n}`),
    [...params],
  );
  return rows as T[];
}

/** Candidates with evidence, per probe record (stored probes) or for the draft (probe ''). */
interface EvidenceRow {
  probe_id: string | null;
  id: string;
  email: boolean;
  phone: boolean;
  domain: boolean;
  name_similarity: number | string;
}

/**
 * Live records of `object` in `options.organizationId` likely the same as `draft`, scoring at least
 * `options.minScore`, best first (then by id), at most `options.limit`. The one candidate function
 * of the suite: creates (409), imports and the duplicate scan use it. Runs on `em` — an entity
 * manager or a pg client, inside the caller's transaction when it has one; one statement, a few
 * index probes plus the draft's company (or city) block. A draft with nothing to match on has no
 * candidates.
 *
 * ```ts
 * await findDuplicateCandidates(em, 'contact', { email: 'ada@example.com', firstName: 'Ada', lastName: 'Lovelace', companyId }, { organizationId, minScore: 80 });
 * // → [{ recordId: '0193…', score: 100, reasons: [{ rule: 'email', weight: 80 }, { rule: 'name', weight: 50 }] }]
 * ```
 */
export async function findDuplicateCandidates(
  em: SqlExecutor,
  object: 'contact',
  draft: ContactDraft,
  options: CandidateOptions,
): Promise<DuplicateCandidate[]>;
export async function findDuplicateCandidates(
  em: SqlExecutor,
  object: 'company',
  draft: CompanyDraft,
  options: CandidateOptions,
): Promise<DuplicateCandidate[]>;
export async function findDuplicateCandidates(
  em: SqlExecutor,
  object: DuplicateObject,
  draft: ContactDraft | CompanyDraft,
  options: CandidateOptions,
): Promise<DuplicateCandidate[]>;
export async function findDuplicateCandidates(
  em: SqlExecutor,
  object: DuplicateObject,
  draft: ContactDraft | CompanyDraft,
  options: CandidateOptions,
): Promise<DuplicateCandidate[]> {
  const { sql, params } =
    object === 'contact' ? contactDraftProbe(options.organizationId, draft as ContactDraft) : companyDraftProbe(options.organizationId, draft as CompanyDraft);
  const rows = await run<EvidenceRow>(em, candidateStatement(object, sql), params);
  const excluded = new Set((options.excludeIds ?? []).map((id) => id.toLowerCase()));
  return rankCandidates(
    object,
    rows.filter((r) => !excluded.has(r.id)),
    options.minScore,
    options.limit ?? MAX_CANDIDATES,
  );
}

/**
 * For stored records `ids` of `object` (live ones; others have no candidates), every live record
 * of the organization matching at least one rule (at most {@link ARM_LIMIT} hits per rule),
 * scoring at least {@link PAIR_FLOOR}, best {@link MAX_PAIRS_PER_RECORD} — what the duplicate scan
 * stores as pairs. One statement for the whole batch.
 */
export async function candidatesOfRecords(
  em: SqlExecutor,
  organizationId: string,
  object: DuplicateObject,
  ids: readonly string[],
): Promise<Map<string, DuplicateCandidate[]>> {
  const out = new Map<string, DuplicateCandidate[]>();
  const valid = ids.filter(isUuid);
  if (valid.length === 0) return out;
  const probe = object === 'contact' ? storedContactProbe : storedCompanyProbe;
  const rows = await run<EvidenceRow>(em, candidateStatement(object, probe), [organizationId, pgArray(valid)]);
  const byProbe = new Map<string, EvidenceRow[]>();
  for (const row of rows) {
    if (!row.probe_id || row.probe_id === row.id) continue;
    byProbe.set(row.probe_id, [...(byProbe.get(row.probe_id) ?? []), row]);
  }
  for (const [probeId, found] of byProbe) out.set(probeId, rankCandidates(object, found, PAIR_FLOOR, MAX_PAIRS_PER_RECORD));
  return out;
}

function rankCandidates(object: DuplicateObject, rows: readonly EvidenceRow[], minScore: number, limit: number): DuplicateCandidate[] {
  return rows
    .map((r) => ({ recordId: r.id, ...scoreDuplicate(object, evidenceOf(r)) }))
    .filter((c) => c.score >= minScore && c.score > 0)
    .sort((a, b) => b.score - a.score || (a.recordId < b.recordId ? -1 : a.recordId > b.recordId ? 1 : 0))
    .slice(0, limit);
}

function evidenceOf(row: EvidenceRow): DuplicateEvidence {
  return { email: row.email === true, phone: row.phone === true, domain: row.domain === true, nameSimilarity: Number(row.name_similarity) || 0 };
}

/**
 * The statement: `probe` (a CTE body selecting `probe_id, organization_id` and the probe's keys)
 * joined laterally to one arm per rule; hits grouped per (probe, record). Keys of the probe:
 * contacts `email_key, phones, company_id, name_key`; companies `email_key, phones, domain_key,
 * city, name_key`.
 */
function candidateStatement(object: DuplicateObject, probe: string): string {
  const floor = NAME_SIMILARITY_FLOOR;
  const arms =
    object === 'contact'
      ? [
          `select id, true as email, false as phone, false as domain, 0::real as name_similarity from contacts.contact
             where organization_id = probe.organization_id and deleted_at is null and contacts.crm_email_key(email) = probe.email_key`,
          `select id, false, true, false, 0::real from contacts.contact
             where organization_id = probe.organization_id and deleted_at is null and phone = any(probe.phones)`,
          `select id, false, true, false, 0::real from contacts.contact
             where organization_id = probe.organization_id and deleted_at is null and mobile = any(probe.phones)`,
          `select id, false, false, false, s from (
             select id, similarity(contacts.crm_person_name_key(first_name, last_name), probe.name_key) as s from contacts.contact
             where organization_id = probe.organization_id and deleted_at is null and company_id = probe.company_id) n
           where s >= ${floor}`,
        ]
      : [
          `select id, true as email, false as phone, false as domain, 0::real as name_similarity from contacts.company
             where organization_id = probe.organization_id and deleted_at is null and contacts.crm_email_key(email) = probe.email_key`,
          `select id, false, true, false, 0::real from contacts.company
             where organization_id = probe.organization_id and deleted_at is null and phone = any(probe.phones)`,
          `select id, false, false, true, 0::real from contacts.company
             where organization_id = probe.organization_id and deleted_at is null and contacts.crm_company_domain_key(domain, website) = probe.domain_key`,
          `select id, false, false, false, s from (
             select id, similarity(contacts.crm_company_name_key(name), probe.name_key) as s from contacts.company
             where organization_id = probe.organization_id and deleted_at is null and lower(address_city) = probe.city) n
           where s >= ${floor}`,
        ];
  return `with probe as (${probe})
    select probe.probe_id, hit.id, bool_or(hit.email) as email, bool_or(hit.phone) as phone, bool_or(hit.domain) as domain,
           max(hit.name_similarity) as name_similarity
    from probe cross join lateral (${arms.map((arm) => `(${arm} limit ${ARM_LIMIT})`).join('\n union all ')}) hit
    group by probe.probe_id, hit.id`;
}

const storedContactProbe = `select p.id as probe_id, p.organization_id, contacts.crm_email_key(p.email) as email_key,
    array_remove(array[p.phone, p.mobile], null) as phones, p.company_id, contacts.crm_person_name_key(p.first_name, p.last_name) as name_key
  from contacts.contact p where p.organization_id = ? and p.id = any(?::uuid[]) and p.deleted_at is null`;

const storedCompanyProbe = `select p.id as probe_id, p.organization_id, contacts.crm_email_key(p.email) as email_key,
    array_remove(array[p.phone], null) as phones, contacts.crm_company_domain_key(p.domain, p.website) as domain_key,
    lower(p.address_city) as city, contacts.crm_company_name_key(p.name) as name_key
  from contacts.company p where p.organization_id = ? and p.id = any(?::uuid[]) and p.deleted_at is null`;

function contactDraftProbe(organizationId: string, d: ContactDraft): { sql: string; params: unknown[] } {
  return {
    sql: `select null::uuid as probe_id, ?::uuid as organization_id, contacts.crm_email_key(?::text) as email_key, ?::text[] as phones,
      ?::uuid as company_id, contacts.crm_person_name_key(?::text, ?::text) as name_key`,
    params: [
      organizationId,
      text(d.email),
      pgArray(phones(d.phone, d.mobile)),
      d.companyId && isUuid(d.companyId) ? d.companyId : null,
      text(d.firstName) ?? '',
      text(d.lastName) ?? '',
    ],
  };
}

function companyDraftProbe(organizationId: string, d: CompanyDraft): { sql: string; params: unknown[] } {
  return {
    sql: `select null::uuid as probe_id, ?::uuid as organization_id, contacts.crm_email_key(?::text) as email_key, ?::text[] as phones,
      contacts.crm_company_domain_key(?::text, ?::text) as domain_key, lower(?::text) as city, contacts.crm_company_name_key(?::text) as name_key`,
    params: [organizationId, text(d.email), pgArray(phones(d.phone)), text(d.domain), text(d.website), text(d.address?.city), text(d.name)],
  };
}

/** A non-empty trimmed text, else null. */
function text(value: string | null | undefined): string | null {
  return typeof value === 'string' && value.trim() ? value.trim() : null;
}

/** Phones as stored: E.164 as is, other international texts converted, anything else left out. */
function phones(...values: (string | null | undefined)[]): string[] {
  return values.flatMap((v) => {
    const t = text(v);
    if (!t) return [];
    if (/^\+[1-9]\d{1,14}$/.test(t)) return [t];
    try {
      return [e164(t)];
    } catch {
      return [];
    }
  });
}

/**
 * A Postgres array literal of texts (`{"a","b"}`), for `?::text[]`/`?::uuid[]` parameters: the
 * query builder would expand a JS array into a list of parameters.
 */
export function pgArray(values: readonly string[]): string {
  return `{${values.map((v) => `"${v.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`).join(',')}}`;
}
