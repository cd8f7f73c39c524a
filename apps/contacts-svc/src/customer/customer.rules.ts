import { DomainError, type FieldViolation } from '@crm/platform';

/**
 * Rules shared by companies and contacts (the customer master), pure: the services call them from
 * their write hooks.
 */

/** The consent channels of `marketingPreferences`. */
export const MARKETING_CHANNELS = ['newsletter', 'promotions', 'reminders', 'birthdayMessages'] as const;
export type MarketingChannel = (typeof MARKETING_CHANNELS)[number];

/** What is stored per channel: whether consent is given, and when it was last given or withdrawn (ISO 8601). */
export interface Consent {
  granted: boolean;
  changedAt: string;
}

const invalid = (violations: FieldViolation[], what: string): DomainError => new DomainError('invalid_argument', 'VALIDATION_FAILED', what, violations);

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * The marketing preferences to store for `input` over `stored` at time `now`. `input` maps channels
 * to a boolean or to `{ granted: boolean, … }` (what a read returned), or is null (no preferences
 * recorded). A channel's `changedAt` is `now` when its consent changes (or is first recorded), and
 * the stored time otherwise — so the time consent was given or withdrawn is kept, and clients
 * cannot backdate it. Channels not in `input` keep their stored consent. Throws INVALID_ARGUMENT
 * naming `marketingPreferences.<channel>` for an unknown channel or a value that is not a boolean.
 */
export function marketingPreferences(input: Record<string, unknown> | null, stored: Record<string, unknown> | null, now: Date): Record<string, Consent> | null {
  if (input === null) return null;
  const violations: FieldViolation[] = [];
  const out: Record<string, Consent> = {};
  for (const channel of MARKETING_CHANNELS) {
    const previous = stored?.[channel];
    if (isObject(previous) && typeof previous['granted'] === 'boolean' && typeof previous['changedAt'] === 'string') {
      out[channel] = { granted: previous['granted'], changedAt: previous['changedAt'] };
    }
  }
  for (const [key, value] of Object.entries(input)) {
    if (!(MARKETING_CHANNELS as readonly string[]).includes(key)) {
      violations.push({ field: `marketingPreferences.${key}`, message: `unknown channel; one of ${MARKETING_CHANNELS.join(', ')}` });
      continue;
    }
    const granted = typeof value === 'boolean' ? value : isObject(value) && typeof value['granted'] === 'boolean' ? value['granted'] : undefined;
    if (granted === undefined) {
      violations.push({ field: `marketingPreferences.${key}`, message: 'must be true or false (or { "granted": true|false })' });
      continue;
    }
    const before = out[key];
    out[key] = before && before.granted === granted ? before : { granted, changedAt: now.toISOString() };
  }
  if (violations.length) throw invalid(violations, 'invalid marketing preferences');
  return Object.keys(out).length ? out : null;
}

/** Network names of `socialProfiles`: lower-case identifiers (`linkedin`, `x`, `github`, …). */
const NETWORK = /^[a-z][a-z0-9_]{0,31}$/;
/** Most networks a contact lists. */
const MAX_PROFILES = 20;

/**
 * Checks `socialProfiles`: at most 20 entries, network names `^[a-z][a-z0-9_]{0,31}$`, each value a
 * URL or handle of 1–500 characters (trimmed; a value starting with `http` must be an absolute
 * http(s) URL). Returns the trimmed object (null stays null); throws INVALID_ARGUMENT naming
 * `socialProfiles.<network>`.
 */
export function socialProfiles(input: Record<string, unknown> | null): Record<string, string> | null {
  if (input === null) return null;
  const violations: FieldViolation[] = [];
  const entries = Object.entries(input);
  if (entries.length > MAX_PROFILES) violations.push({ field: 'socialProfiles', message: `at most ${MAX_PROFILES} networks` });
  const out: Record<string, string> = {};
  for (const [network, value] of entries) {
    const field = `socialProfiles.${network}`;
    if (!NETWORK.test(network)) violations.push({ field, message: 'network names are lower-case letters, digits and _ (e.g. linkedin)' });
    else if (typeof value !== 'string' || !value.trim() || value.trim().length > 500 || value.includes('\u0000') || !value.isWellFormed())
      violations.push({ field, message: 'a URL or handle of 1 to 500 characters (no NUL)' });
    else if (/^https?:/i.test(value.trim()) && !URL.canParse(value.trim())) violations.push({ field, message: 'not a valid URL' });
    else out[network] = value.trim();
  }
  if (violations.length) throw invalid(violations, 'invalid social profiles');
  return entries.length ? out : null;
}

/** A date of birth (`YYYY-MM-DD`, already a valid date) must lie between 1900-01-01 and `today`. Throws INVALID_ARGUMENT on `dateOfBirth`. */
export function assertPlausibleBirthDate(date: string | null, today: Date): void {
  if (date === null) return;
  if (date < '1900-01-01' || date > today.toISOString().slice(0, 10)) {
    throw invalid([{ field: 'dateOfBirth', message: 'must lie between 1900-01-01 and today' }], 'invalid contact');
  }
}

/** Tag ids without repeats, in first-seen order (assigning a tag twice is assigning it once). */
export function distinctTags(tags: readonly string[]): string[] {
  return [...new Set(tags.map((t) => t.toLowerCase()))];
}
