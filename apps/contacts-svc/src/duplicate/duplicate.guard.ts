import { AsyncLocalStorage } from 'node:async_hooks';
import { companyRecord, contactRecord, snakeCase, type FieldSpec } from '@crm/contracts';
import { DomainError, type EntityManager, type FieldViolation } from '@crm/platform';
import { findDuplicateCandidates, type CompanyDraft, type ContactDraft, type DuplicateCandidate } from './duplicate.candidates.ts';
import type { DuplicateObject, DuplicateRule } from './duplicate.rules.ts';
import { duplicateThreshold } from './duplicate.settings.ts';

/**
 * The duplicate check of creates: a company or contact whose best candidate scores at least the
 * organization's threshold is not created (409 `DUPLICATE_CANDIDATES`), unless the create runs
 * inside {@link allowingDuplicates}. The company and contact services call
 * {@link assertNoLikelyDuplicate} from their create hook, inside the write's transaction, so every
 * create path — REST, batch, other gRPC callers — is checked. A draft taking a unique value of a
 * live record (a contact's e-mail, a company's domain) is left to the unique index, which answers
 * with the field's own code (409 `CONTACT_EMAIL_TAKEN` …). (Two concurrent creates of the same
 * customer can both pass: the check is advisory, like every CRM's; the scan lists such pairs.)
 */

const allowed = new AsyncLocalStorage<boolean>();

/** Runs `fn` with the duplicate check of creates off (`allow` true) or on; creates outside any such call are checked. */
export function allowingDuplicates<T>(allow: boolean, fn: () => T): T {
  return allowed.run(allow, fn);
}

/** The request fields each rule compares, for the problem's field list. */
const FIELDS: Record<DuplicateObject, Record<DuplicateRule, string>> = {
  contact: { email: 'email', phone: 'phone', domain: 'email', name: 'lastName' },
  company: { email: 'email', phone: 'phone', domain: 'domain', name: 'name' },
};

/**
 * CONFLICT `DUPLICATE_CANDIDATES` (REST 409) carrying the candidates; over gRPC the violations
 * name, per candidate and rule, the field that matched (`email: matches contact 0193… (score 80)`).
 */
export class DuplicateCandidatesError extends DomainError {
  readonly candidates: readonly DuplicateCandidate[];
  readonly threshold: number;

  constructor(object: DuplicateObject, candidates: readonly DuplicateCandidate[], threshold: number) {
    const violations: FieldViolation[] = candidates.flatMap((c) =>
      c.reasons.map((r) => ({ field: FIELDS[object][r.rule], message: `matches ${object} ${c.recordId} (${r.rule} ${r.weight}, score ${c.score})` })),
    );
    super(
      'conflict',
      'DUPLICATE_CANDIDATES',
      `likely a duplicate of ${candidates.length} existing ${object === 'company' ? 'companies' : 'contacts'} (score ≥ ${threshold}); create anyway with allowDuplicate`,
      violations,
    );
    this.name = 'DuplicateCandidatesError';
    this.candidates = candidates;
    this.threshold = threshold;
  }
}

/**
 * Throws {@link DuplicateCandidatesError} when `draft` has candidates scoring at least the
 * organization's threshold, unless duplicates are allowed ({@link allowingDuplicates}).
 */
export async function assertNoLikelyDuplicate(em: EntityManager, organizationId: string, object: 'contact', draft: ContactDraft): Promise<void>;
export async function assertNoLikelyDuplicate(em: EntityManager, organizationId: string, object: 'company', draft: CompanyDraft): Promise<void>;
export async function assertNoLikelyDuplicate(
  em: EntityManager,
  organizationId: string,
  object: DuplicateObject,
  draft: ContactDraft | CompanyDraft,
): Promise<void> {
  if (allowed.getStore() === true) return;
  // a unique value taken is a hard conflict with its own code (409 CONTACT_EMAIL_TAKEN …): the insert answers it
  if (await takesUniqueValue(em, organizationId, object, draft as Record<string, unknown>)) return;
  const threshold = await duplicateThreshold(em, organizationId);
  const candidates = await findDuplicateCandidates(em, object, draft, { organizationId, minScore: threshold, limit: 10 });
  if (candidates.length > 0) throw new DuplicateCandidatesError(object, candidates, threshold);
}

/**
 * True when `draft` has the value of a `unique` field of its record (e-mail of contacts, domain
 * and external ids …) that a live record of the organization holds — compared as the unique
 * index compares (lower-cased for `caseInsensitive` fields).
 */
async function takesUniqueValue(em: EntityManager, organizationId: string, object: DuplicateObject, draft: Record<string, unknown>): Promise<boolean> {
  const record = object === 'company' ? companyRecord : contactRecord;
  const checks = Object.entries(record.fields as Record<string, FieldSpec>).flatMap(([key, spec]) => {
    const value = draft[key];
    if (!spec.unique || typeof value !== 'string' || value === '') return [];
    return [{ sql: spec.caseInsensitive ? `lower(${snakeCase(key)}) = lower(?)` : `${snakeCase(key)} = ?`, value }];
  });
  if (checks.length === 0) return false;
  const rows = await em.execute<{ id: string }[]>(
    `select id from contacts.${object} where organization_id = ? and deleted_at is null and (${checks.map((c) => c.sql).join(' or ')}) limit 1`,
    [organizationId, ...checks.map((c) => c.value)],
  );
  return rows.length > 0;
}
