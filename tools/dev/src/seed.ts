import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { parse } from 'csv-parse/sync';
import { Decimal } from 'decimal.js';
import { z } from 'zod';

/**
 * Demo data for `npm start`: the companies of the Maven Analytics CRM sample
 * (data/maven-crm/accounts.csv) turned into `POST /api/v1/companies` bodies and created through
 * the gateway, parents before subsidiaries.
 */

/** One row of accounts.csv, keyed by its header (see data/maven-crm/data_dictionary.csv). */
export interface AccountRow {
  account: string;
  sector: string;
  /** Year founded, or null when the cell is empty. Not sent: the Company API has no such field. */
  year_established: number | null;
  /** Annual revenue in USD millions, kept as the CSV's decimal text so no float ever touches it. */
  revenue: string;
  employees: number | null;
  office_location: string;
  /** Name of the parent account, or null for a top-level company. */
  subsidiary_of: string | null;
}

/** Body of `POST /api/v1/companies` (the subset the seed fills; the gateway rejects unknown fields). */
export interface CompanyCreateBody {
  name: string;
  domain?: string;
  industry?: string;
  parentCompanyId?: string;
  employees?: number;
  annualRevenue?: { amount: string; currency: string };
  address?: { street?: string; city?: string; region?: string; postalCode?: string; country?: string };
  ownerId?: string;
}

/** One company to create. `parentName` refers to an earlier entry's `name`; `warning` explains a dropped parent. */
export interface SeedCompany {
  name: string;
  body: CompanyCreateBody;
  parentName?: string;
  warning?: string;
}

const emptyToNull = (v: string) => (v.trim() === '' ? null : v.trim());
/** Empty cell → null, digits → number, anything else is an issue. */
const optionalInt = z
  .string()
  .trim()
  .regex(/^\d*$/, 'must be a non-negative integer or empty')
  .transform((v) => (v === '' ? null : Number(v)));

const accountRowSchema = z.object({
  account: z.string().trim().min(1, 'account name is empty'),
  sector: z.string().trim(),
  year_established: optionalInt,
  revenue: z
    .string()
    .trim()
    .regex(/^\d+(\.\d+)?$/, 'revenue must be a non-negative decimal number (USD millions)'),
  employees: optionalInt,
  office_location: z.string().trim(),
  subsidiary_of: z.string().transform(emptyToNull),
});

/**
 * Parses the text of accounts.csv (header row required; CRLF or LF) into typed rows.
 * Throws an Error naming the CSV line when a row is malformed (missing name, non-numeric revenue
 * or employees) — the sample is meant to seed cleanly, so bad data should stop the seed loudly.
 */
export function readAccounts(csvText: string): AccountRow[] {
  const records = parse<Record<string, string>>(csvText, { columns: true, skip_empty_lines: true, bom: true });
  return records.map((record, i) => {
    const result = accountRowSchema.safeParse(record);
    if (!result.success) {
      // +2: the header is line 1 and records are 0-based
      const issues = result.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ');
      throw new Error(`accounts.csv line ${i + 2}: ${issues}`);
    }
    return result.data;
  });
}

/** Known misspellings in the published sample, fixed here rather than in the data (kept unchanged). */
const SECTOR_FIXES: Record<string, string> = { technolgy: 'technology' };
const COUNTRY_FIXES: Record<string, string> = { Philipines: 'Philippines' };

function industryOf(sector: string): string | undefined {
  const s = sector.trim().toLowerCase();
  return s === '' ? undefined : (SECTOR_FIXES[s] ?? s);
}

function countryOf(location: string): string | undefined {
  const c = location.trim();
  return c === '' ? undefined : (COUNTRY_FIXES[c] ?? c);
}

/**
 * Pure: account rows → company create bodies, ordered so every parent precedes its subsidiaries
 * (depth-first, otherwise keeping CSV order). `industry` is the normalised sector, `annualRevenue`
 * is revenue × 1,000,000 as a USD decimal string with 2 decimals (exact, via decimal.js),
 * `address.country` the corrected office location. A `subsidiary_of` naming an unknown account
 * (or closing a cycle) is dropped and explained in that entry's `warning`; the company is then
 * created without a parent. Throws on duplicate account names, since names are how parents are
 * found and how the seed's idempotency keys are made.
 */
export function toCompanyBodies(rows: readonly AccountRow[]): SeedCompany[] {
  const byName = new Map<string, AccountRow>();
  for (const row of rows) {
    if (byName.has(row.account)) throw new Error(`duplicate account name in accounts.csv: ${JSON.stringify(row.account)}`);
    byName.set(row.account, row);
  }

  const ordered: SeedCompany[] = [];
  const placed = new Set<string>();
  const visiting = new Set<string>();

  const place = (row: AccountRow): void => {
    if (placed.has(row.account)) return;
    visiting.add(row.account);
    let parentName: string | undefined;
    let warning: string | undefined;
    if (row.subsidiary_of !== null) {
      const parent = byName.get(row.subsidiary_of);
      if (!parent) warning = `${row.account}: subsidiary_of ${JSON.stringify(row.subsidiary_of)} is not an account in the file; created without a parent`;
      else if (visiting.has(parent.account))
        warning = `${row.account}: subsidiary_of ${JSON.stringify(row.subsidiary_of)} closes a cycle; created without a parent`;
      else {
        place(parent);
        parentName = parent.account;
      }
    }
    visiting.delete(row.account);
    placed.add(row.account);
    ordered.push({
      name: row.account,
      body: toBody(row),
      ...(parentName !== undefined ? { parentName } : {}),
      ...(warning !== undefined ? { warning } : {}),
    });
  };
  for (const row of rows) place(row);
  return ordered;
}

function toBody(row: AccountRow): CompanyCreateBody {
  const body: CompanyCreateBody = { name: row.account };
  const industry = industryOf(row.sector);
  if (industry !== undefined) body.industry = industry;
  if (row.employees !== null) body.employees = row.employees;
  body.annualRevenue = { amount: new Decimal(row.revenue).times(1_000_000).toFixed(2), currency: 'USD' };
  const country = countryOf(row.office_location);
  if (country !== undefined) body.address = { country };
  return body;
}

/**
 * Idempotency-Key of the seed request for a company: `seed-acme-<slug>` (lower-case ASCII letters
 * and digits joined by `-`). Names without any such character fall back to a hash so the key is
 * never just `seed-acme-`.
 */
export function seedKey(name: string): string {
  const slug = name
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  return `seed-acme-${slug || createHash('sha256').update(name).digest('hex').slice(0, 16)}`;
}

/** A non-2xx answer of the gateway or the issuer; `problem` is the parsed problem+json (or the raw text). */
export class HttpProblemError extends Error {
  readonly status: number;
  readonly problem: unknown;

  constructor(what: string, status: number, problem: unknown) {
    super(`${what} failed with HTTP ${status}: ${typeof problem === 'string' ? problem : JSON.stringify(problem)}`);
    this.name = 'HttpProblemError';
    this.status = status;
    this.problem = problem;
  }
}

/** Per-request deadline: a hung gateway must fail the seed, not hang `npm start`. */
const REQUEST_TIMEOUT_MS = 15_000;

async function bodyOf(res: Response): Promise<unknown> {
  const text = await res.text();
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

const pageSchema = z.object({ data: z.array(z.object({ id: z.string() }).loose()) });
const createdSchema = z.object({ id: z.string().min(1) }).loose();
const tokenSchema = z.object({ access_token: z.string().min(1) }).loose();

/**
 * Seeds the demo companies through the gateway. If `GET /api/v1/companies?limit=1` already returns
 * data, nothing is written (`{ created: 0, skipped: true }`) so re-running `npm start` never
 * duplicates. Otherwise each company of `csvPath` is POSTed in parent-first order with
 * `parentCompanyId` = the id returned for its parent and `Idempotency-Key: seed-acme-<slug>`, so a
 * retried request is answered from the gateway's store instead of creating a twin.
 * `gatewayUrl` is the base URL (e.g. http://127.0.0.1:3000); `token` a bearer access token with a
 * write role. Throws {@link HttpProblemError} (carrying the problem JSON) on any non-2xx answer.
 */
export async function seedDemoData(options: {
  gatewayUrl: string;
  token: string;
  csvPath: string;
  log?: (m: string) => void;
}): Promise<{ created: number; skipped: boolean }> {
  const log = options.log ?? (() => undefined);
  const base = options.gatewayUrl.replace(/\/+$/, '');
  const headers = { authorization: `Bearer ${options.token}`, accept: 'application/json' };

  const probe = await fetch(`${base}/api/v1/companies?limit=1`, { headers, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  if (!probe.ok) throw new HttpProblemError('GET /api/v1/companies', probe.status, await bodyOf(probe));
  if (pageSchema.parse(await probe.json()).data.length > 0) {
    log('companies already present; not seeding');
    return { created: 0, skipped: true };
  }

  const companies = toCompanyBodies(readAccounts(await readFile(options.csvPath, 'utf8')));
  const keys = new Map<string, string>();
  for (const c of companies) {
    const key = seedKey(c.name);
    const other = keys.get(key);
    // the gateway would answer 422 (key reused with another body) halfway through; fail before writing
    if (other !== undefined) throw new Error(`accounts ${JSON.stringify(other)} and ${JSON.stringify(c.name)} give the same Idempotency-Key ${key}`);
    keys.set(key, c.name);
  }

  const ids = new Map<string, string>();
  for (const c of companies) {
    if (c.warning) log(`warning: ${c.warning}`);
    const body: CompanyCreateBody = { ...c.body };
    if (c.parentName !== undefined) {
      const parentId = ids.get(c.parentName);
      // cannot happen with toCompanyBodies' ordering; guards against a future reorder
      if (parentId === undefined) throw new Error(`parent ${c.parentName} of ${c.name} was not created first`);
      body.parentCompanyId = parentId;
    }
    const res = await fetch(`${base}/api/v1/companies`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json', 'idempotency-key': seedKey(c.name) },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    if (!res.ok) throw new HttpProblemError(`POST /api/v1/companies (${c.name})`, res.status, await bodyOf(res));
    ids.set(c.name, createdSchema.parse(await res.json()).id);
  }
  log(`created ${ids.size} companies`);
  return { created: ids.size, skipped: false };
}

/**
 * Gets an access token with the OAuth 2 password grant (public client `crm-cli`).
 * `issuerBaseUrl` is the issuer's base URL (e.g. http://127.0.0.1:8080, realm `crm` assumed) or a
 * realm URL (…/realms/<realm>). Resolves to the `access_token`; throws {@link HttpProblemError}
 * with the OAuth error JSON on a non-2xx answer (e.g. 401 invalid_grant for a wrong password).
 */
export async function fetchToken(issuerBaseUrl: string, username: string, password: string): Promise<string> {
  const base = issuerBaseUrl.replace(/\/+$/, '');
  const realmUrl = /\/realms\/[^/]+$/.test(base) ? base : `${base}/realms/crm`;
  const res = await fetch(`${realmUrl}/protocol/openid-connect/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({ grant_type: 'password', client_id: 'crm-cli', username, password }),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  if (!res.ok) throw new HttpProblemError(`token request for ${username}`, res.status, await bodyOf(res));
  return tokenSchema.parse(await res.json()).access_token;
}
