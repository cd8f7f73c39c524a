import pg from 'pg';
import { percentile } from './stats.ts';

/**
 * Issue 8's duplicate-candidate figure at a million contacts (the search data set, loaded before):
 * `POST /api/v1/contacts:findDuplicates` for drafts of a new contact — one that shares an
 * existing contact's e-mail, one that shares a phone, one that matches nothing — beside
 * `GET /api/v1/contacts/{id}` of the same contacts in the same loop (the request path without
 * the candidate statement).
 */

/** Latencies of the candidate checks and of the GET baseline, ms. */
export interface DuplicateFigures {
  samples: number;
  candidatesP50: number;
  candidatesP95: number;
  getP50: number;
  getP95: number;
  /** Drafts sharing an e-mail or a phone that found their contact (must be all of them). */
  found: number;
  /** Drafts that matched nothing and got no candidate (must be all of them). */
  clean: number;
}

/**
 * Empties the duplicate scan queue the bulk load filled (one entry per 500 loaded rows): the scan
 * of a million set-loaded contacts is not what this figure measures, and it would run beside it.
 */
export async function skipDuplicateScanOfLoadedData(databaseUrl: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query('truncate contacts.duplicate_scan_queue');
  } finally {
    await client.end();
  }
}

/**
 * Runs `samples` rounds; each picks a random contact of `org` and times a GET of it, a draft with
 * its e-mail (upper-cased), a draft with its phone and another name, and a draft matching nothing
 * (`minScore=40`, so a shared phone alone counts).
 */
export async function measureDuplicateCandidates(
  databaseUrl: string,
  gatewayUrl: string,
  token: string,
  org: string,
  samples: number,
): Promise<DuplicateFigures> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  const picked = await client
    .query<{ id: string; email: string; phone: string }>(
      `select id, email, phone from contacts.contact tablesample system (1)
        where organization_id = $1 and deleted_at is null and email is not null and phone is not null limit $2`,
      [org, samples],
    )
    .finally(() => client.end());
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const timed = async (url: string, init: RequestInit): Promise<{ ms: number; body: unknown }> => {
    const started = performance.now();
    const res = await fetch(url, { ...init, headers });
    const body: unknown = await res.json();
    const ms = performance.now() - started;
    if (!res.ok) throw new Error(`${init.method ?? 'GET'} ${url}: ${res.status} ${JSON.stringify(body)}`);
    return { ms, body };
  };
  const ids = (body: unknown): string[] => ((body as { candidates?: { id: string }[] }).candidates ?? []).map((c) => c.id);
  const candidates: number[] = [];
  const gets: number[] = [];
  let found = 0;
  let clean = 0;
  for (const [i, c] of picked.rows.entries()) {
    gets.push((await timed(`${gatewayUrl}/api/v1/contacts/${c.id}`, {})).ms);
    const find = (draft: object) => timed(`${gatewayUrl}/api/v1/contacts:findDuplicates?minScore=40`, { method: 'POST', body: JSON.stringify(draft) });
    const byEmail = await find({ firstName: 'Bench', lastName: `Probe ${i}`, email: c.email.toUpperCase() });
    const byPhone = await find({ firstName: 'Other', lastName: `Person ${i}`, phone: c.phone });
    const none = await find({ firstName: 'Nobody', lastName: `Zzqx ${i}`, email: `nobody-${i}@nowhere.invalid`, phone: '+35315550199' });
    candidates.push(byEmail.ms, byPhone.ms, none.ms);
    if (ids(byEmail.body).includes(c.id) && ids(byPhone.body).includes(c.id)) found += 1;
    if (ids(none.body).length === 0) clean += 1;
  }
  return {
    samples: picked.rows.length,
    candidatesP50: percentile(candidates, 50),
    candidatesP95: percentile(candidates, 95),
    getP50: percentile(gets, 50),
    getP95: percentile(gets, 95),
    found,
    clean,
  };
}
