/**
 * Duplicate detection rules of companies and contacts: what counts as evidence that two records
 * are the same customer, how much each piece weighs, and how they add up to a score 0–100.
 *
 * ## Matching keys (SQL functions, migration `Migration20261124000200_duplicates_merge`)
 *
 * The keys are immutable SQL functions so that the blocking indexes and the candidate query use
 * the very same normalisation for stored rows and for a draft:
 *
 * - **e-mail** `crm_email_key(email)`: lower-cased and trimmed (as the suite stores e-mail
 *   anyway); the domain without trailing dot. Gmail (`gmail.com`, `googlemail.com` → `gmail.com`)
 *   ignores dots in the local part and everything from `+`, as Google documents; for providers
 *   that document `+` sub-addressing (Outlook/Hotmail/Live/MSN, iCloud, Fastmail, Proton) the
 *   `+tag` is dropped. Nothing else is rewritten: on other domains `a.b@` and `ab@`, or `a+b@`
 *   and `a@`, may be different mailboxes (a false match merges two people; a missed one only
 *   leaves a duplicate).
 * - **phone**: the stored E.164 numbers (`phone`, and `mobile` for contacts) compared exactly;
 *   a contact's phone may match the other's mobile.
 * - **domain** (companies) `crm_company_domain_key(domain, website)`: the company's domain, else
 *   its website's host — lower-cased, without scheme, user info, port, path, query, fragment,
 *   trailing dot and a leading `www.`. Subdomains stay (`eu.acme.com` ≠ `acme.com`: telling a
 *   registrable domain needs the public suffix list). A contact's e-mail domain is no signal by
 *   itself (colleagues share it).
 * - **name**: pg_trgm `similarity` (shared trigrams / all trigrams) of folded names — contacts:
 *   `crm_person_name_key(first, last)` within the same company (both must have one); companies:
 *   `crm_company_name_key(name)` (punctuation dropped, trailing legal forms such as Inc, GmbH,
 *   S.A., Ltd removed) within the same head-office city (case-insensitive; both must have one).
 *   Below {@link NAME_SIMILARITY_FLOOR} a name is no evidence.
 *
 * ## Weights and how they combine
 *
 * Each rule that fires adds its weight; the score is the sum capped at 100. This is the
 * Fellegi–Sunter record-linkage model (1969) in points: agreements on independent fields add
 * their log-likelihood ratios, so weights add up; evidence beyond certainty adds nothing (cap).
 * Disagreement subtracts nothing: CRM records are sparse and people have several addresses and
 * numbers, so a differing value proves little. The weights are set so that one near-unique
 * identifier alone reaches the default threshold of 80, and a shared phone with a (nearly) equal
 * name does too (40 + 40..50 from similarity 0.8), while one weak signal alone never does:
 *
 * | rule    | contacts | companies | why |
 * | ------- | -------- | --------- | --- |
 * | email   | 80       | 60        | a personal mailbox identifies a person; a company address (info@) can be shared by subsidiaries |
 * | domain  | —        | 80        | a web domain identifies a company; subsidiaries and resellers may share one, hence not 100 |
 * | phone   | 40       | 40        | switchboards and shared lines: alone no proof |
 * | name    | 30–50    | 30–50     | `round(50 × similarity)` from similarity 0.6; namesakes exist even within one company or city |
 *
 * Examples: same e-mail → 80 (likely duplicate); same phone and same name in the same company →
 * 90; same phone and a merely similar name (similarity 0.6–0.79, 30–39 points) → 70–79, listed
 * but below the default threshold; same name alone → 50; same phone alone → 40 (not stored as a
 * pair by the scan: duplicate.candidates.ts `PAIR_FLOOR`).
 */

/** Records the rules compare. */
export type DuplicateObject = 'company' | 'contact';

/** A rule that fired for a pair. */
export type DuplicateRule = 'email' | 'phone' | 'domain' | 'name';

/** One rule that fired and the points it gave (1..100). */
export interface DuplicateReason {
  rule: DuplicateRule;
  weight: number;
}

/** A scored match: 0..100 and the reasons, heaviest first. */
export interface DuplicateScore {
  score: number;
  reasons: DuplicateReason[];
}

/**
 * What the candidate query found about a pair: whether the e-mail keys, phones and domain keys
 * are equal, and the name similarity (0..1; 0 when not in the same company or city).
 */
export interface DuplicateEvidence {
  email: boolean;
  phone: boolean;
  domain: boolean;
  nameSimilarity: number;
}

/** Below this pg_trgm similarity two names are no evidence ("Jon Smith" / "John Smith" is 0.62). */
export const NAME_SIMILARITY_FLOOR = 0.6;

/** The organization's threshold until an admin sets one. */
export const DEFAULT_DUPLICATE_THRESHOLD = 80;

/** The rules' weights by object (see the module comment for the rationale); `name` is its maximum. */
export const DUPLICATE_WEIGHTS: Readonly<Record<DuplicateObject, Readonly<Partial<Record<DuplicateRule, number>>>>> = {
  contact: { email: 80, phone: 40, name: 50 },
  company: { domain: 80, email: 60, phone: 40, name: 50 },
};

/**
 * The score of a pair of `object` records from its evidence: each rule that fired adds its weight
 * ({@link DUPLICATE_WEIGHTS}; a name `round(50 × similarity)` from {@link NAME_SIMILARITY_FLOOR}),
 * capped at 100. Evidence a rule of the object does not have (a domain for contacts) is ignored.
 * Reasons are listed heaviest first (ties in rule order email, domain, phone, name).
 */
export function scoreDuplicate(object: DuplicateObject, evidence: DuplicateEvidence): DuplicateScore {
  const weights = DUPLICATE_WEIGHTS[object];
  const reasons: DuplicateReason[] = [];
  const add = (rule: DuplicateRule, fired: boolean, weight = weights[rule]) => {
    if (fired && weight !== undefined && weight > 0) reasons.push({ rule, weight });
  };
  add('email', evidence.email);
  add('domain', evidence.domain);
  add('phone', evidence.phone);
  const similarity = Number.isFinite(evidence.nameSimilarity) ? Math.min(1, evidence.nameSimilarity) : 0;
  if (similarity >= NAME_SIMILARITY_FLOOR && weights.name !== undefined) add('name', true, Math.round(weights.name * similarity));
  reasons.sort((a, b) => b.weight - a.weight);
  return {
    score: Math.min(
      100,
      reasons.reduce((sum, r) => sum + r.weight, 0),
    ),
    reasons,
  };
}

/** A threshold as set by an admin: a whole number 1..100, or undefined when `value` is none. */
export function validThreshold(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 100 ? value : undefined;
}
