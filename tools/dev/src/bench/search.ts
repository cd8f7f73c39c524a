import { MikroORM } from '@mikro-orm/postgresql';
import pg from 'pg';
import { companyRecord, contactRecord } from '@crm/contracts';
import { RecordReader, recordEntities, recordEntity, searchPatterns, type ReaderListQuery } from '@crm/platform';
import { percentile } from './stats.ts';

/**
 * Issue 7's search and list figures at a million rows: data for `npm run bench --only=search`
 * and the measurements, each through the gateway and as the bare SQL statement the service runs
 * for it (built by the same RecordReader, run with `pg` on its own), in the same run.
 */

/** Sizes of the data set: one organization with 1,000,000 contacts and 100,000 companies, another with 200,000 contacts. */
export const SEARCH_DATA = { contacts: 1_000_000, companies: 100_000, otherContacts: 200_000 };

/** The rare term: a last name 1 contact in 100,000 carries. */
export const RARE = 'Quixotez';
/** The common term: a substring of many last names (Johnson, Anderson, …): about a fifth of all contacts. */
export const COMMON = 'son';
/** Matches nothing. */
export const NO_MATCH = 'zzqxv';

const FIRST = [
  'Ada',
  'Alan',
  'Grace',
  'Linus',
  'Zoë',
  'José',
  'Émile',
  'Søren',
  'Łukasz',
  'Chloé',
  'Anna',
  'Björn',
  'Marie',
  'Ines',
  'Ola',
  'Yuki',
  'Omar',
  'Lena',
  'Noah',
  'Mia',
];
const LAST = [
  'Johnson',
  'Anderson',
  'Müller',
  'García',
  'Nuñez',
  'Smith',
  'Schmidt',
  'Novák',
  'Kowalski',
  'Rossi',
  'Dubois',
  'Jensen',
  'Tanaka',
  'Okafor',
  'Silva',
  'Ivanova',
  'Wilson',
  'Brown',
  'Lefèvre',
  'Håkansson',
];

/**
 * Loads the data set into a migrated contacts schema with set-based SQL (generate_series; no
 * events: the relay publishes nothing for it) and analyzes the tables. Ids are random UUIDs;
 * `created_at` spreads over the last years, a tenth of the contacts carry `tagId`, sources and
 * preferred contact methods rotate. Returns the seconds it took.
 */
export async function loadSearchData(databaseUrl: string, org: string, otherOrg: string, tagId: string): Promise<number> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  const started = performance.now();
  try {
    await client.query(
      `insert into contacts.company (id, organization_id, name, domain, industry, account_type, status, owner_id, created_at, updated_at, created_by, version, tags)
       select gen_random_uuid(), $1, 'Company ' || n, 'c' || n || '.example.com', (array['software','retail','health','finance'])[1 + n % 4],
              (array['prospect','customer','partner'])[1 + n % 3], (array['active','inactive','prospect'])[1 + n % 3],
              'owner-' || (n % 50), now() - make_interval(secs => n * 300), now() - make_interval(secs => n * 300), 'bench', 1, '{}'
       from generate_series(1, $2::int) n`,
      [org, SEARCH_DATA.companies],
    );
    const contacts = (organization: string, count: number) =>
      client.query(
        `insert into contacts.contact (id, organization_id, first_name, last_name, email, phone, owner_id, source, preferred_contact_method,
                                       last_contacted_at, created_at, updated_at, created_by, version, tags)
         select gen_random_uuid(), $1, f.a[1 + n % 20],
                case when n % 100000 = 7 then $4 else l.a[1 + (n / 20) % 20] end,
                lower(translate(f.a[1 + n % 20], 'ëéøłåöüñáè', 'eeolaounae')) || '.' || n || '@example.com',
                '+1' || (200 + n % 700) || lpad((n % 10000000)::text, 7, '0'),
                'owner-' || (n % 50), (array['website','referral','event','import'])[1 + n % 4], (array['email','phone','sms','whatsapp'])[1 + n % 4],
                case when n % 3 = 0 then null else now() - make_interval(secs => n * 7) end,
                now() - make_interval(secs => n * 60), now() - make_interval(secs => n * 60), 'bench', 1,
                case when n % 10 = 0 then array[$3::uuid] else '{}'::uuid[] end
         from generate_series(1, $2::int) n,
              (select array[${FIRST.map((x) => `'${x}'`).join(',')}] as a) f,
              (select array[${LAST.map((x) => `'${x}'`).join(',')}] as a) l`,
        [organization, count, tagId, RARE],
      );
    await contacts(org, SEARCH_DATA.contacts);
    await contacts(otherOrg, SEARCH_DATA.otherContacts);
    await client.query('analyze contacts.company');
    await client.query('analyze contacts.contact');
  } finally {
    await client.end();
  }
  return (performance.now() - started) / 1000;
}

/** One list scenario: the REST query and the reader query the service builds for it. */
export interface ListScenario {
  name: string;
  /** Query string of `GET /api/v1/contacts` (without `?`). */
  rest: string;
  reader: Omit<ReaderListQuery, 'searched' | 'limit'> & { limit?: number };
}

/** Latency figures of one scenario, ms. */
export interface ScenarioFigures {
  name: string;
  apiP50: number;
  apiP95: number;
  sqlP50: number;
  sqlP95: number;
  rows: number;
}

/** The search and filter scenarios of issue 7 (page size 50, the default). */
export function listScenarios(tagId: string): ListScenario[] {
  const search = (term: string) => ({ filters: {}, patterns: searchPatterns(term) });
  return [
    { name: `search rare "${RARE}"`, rest: `q=${RARE}`, reader: search(RARE) },
    { name: `search common "${COMMON}"`, rest: `q=${COMMON}`, reader: search(COMMON) },
    { name: `search no match "${NO_MATCH}"`, rest: `q=${NO_MATCH}`, reader: search(NO_MATCH) },
    { name: 'filter tag (any)', rest: `tags=${tagId}`, reader: { filters: {}, tags: { ids: [tagId], all: false } } },
    {
      name: 'filter source + method',
      rest: 'source=event&preferredContactMethod=sms',
      reader: { filters: { source: 'event', preferredContactMethod: 'sms' } },
    },
    { name: 'sorted by name', rest: 'sort=name', reader: { filters: {}, sort: { keys: ['lastName', 'firstName'], desc: false } } },
    {
      name: 'sorted by last contact, desc',
      rest: 'sort=-lastContactedAt',
      reader: { filters: {}, sort: { keys: ['lastContactedAt'], desc: true } },
    },
  ];
}

/**
 * Measures each scenario `rounds` times (after 5 warm-up calls) through the gateway (sequential
 * requests with `token`) and as the bare statement (RecordReader.listStatement over the contacts
 * entity, run with pg), interleaved so both see the same cache state.
 */
export async function measureListScenarios(
  databaseUrl: string,
  gatewayUrl: string,
  token: string,
  org: string,
  scenarios: readonly ListScenario[],
  rounds: number,
): Promise<ScenarioFigures[]> {
  // the kit's entities of the two declarations, as contacts-svc derives them (the reader needs no more)
  // the company first: a contact's reference to it is resolved when the contact entity is built
  const company = recordEntity(companyRecord);
  const contact = recordEntity(contactRecord);
  const orm = await MikroORM.init({
    clientUrl: databaseUrl,
    schema: 'contacts',
    entities: recordEntities(company, contact),
    pool: { min: 0, max: 1 },
    debug: false,
  });
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const reader = RecordReader.of(orm, contact, true);
    if (!reader) throw new Error('the contacts entity has no lean reader');
    const searched = Object.entries(contactRecord.fields as Record<string, { search?: boolean }>)
      .filter(([, spec]) => spec.search)
      .map(([key]) => key);
    const out: ScenarioFigures[] = [];
    for (const scenario of scenarios) {
      const statement = reader.listStatement(org, { ...scenario.reader, searched, limit: (scenario.reader.limit ?? 50) + 1 });
      const api = async (): Promise<number> => {
        const started = performance.now();
        const res = await fetch(`${gatewayUrl}/api/v1/contacts?${scenario.rest}`, { headers: { authorization: `Bearer ${token}` } });
        const body = (await res.json()) as { data?: unknown[] };
        if (res.status !== 200) throw new Error(`${scenario.name}: the API answered ${res.status} ${JSON.stringify(body)}`);
        return performance.now() - started;
      };
      let rows = 0;
      const sql = async (): Promise<number> => {
        const started = performance.now();
        const result = await client.query(statement.text, statement.values);
        rows = result.rowCount ?? 0;
        return performance.now() - started;
      };
      for (let i = 0; i < 5; i++) {
        await api();
        await sql();
      }
      const apiMs: number[] = [];
      const sqlMs: number[] = [];
      for (let i = 0; i < rounds; i++) {
        apiMs.push(await api());
        sqlMs.push(await sql());
      }
      out.push({
        name: scenario.name,
        apiP50: percentile(apiMs, 50),
        apiP95: percentile(apiMs, 95),
        sqlP50: percentile(sqlMs, 50),
        sqlP95: percentile(sqlMs, 95),
        rows,
      });
    }
    return out;
  } finally {
    await client.end();
    await orm.close(true);
  }
}

/**
 * A page deep in the list against page 1: follows `depth` cursors of `GET /api/v1/contacts?sort=…`
 * (page size 200) and then times page 1 and the page at that depth `rounds` times each; the
 * keyset makes both one index range scan. Returns their p50 in ms.
 */
export async function measureDeepPage(
  gatewayUrl: string,
  token: string,
  sort: string,
  depth: number,
  rounds: number,
): Promise<{ firstP50: number; deepP50: number; depthRows: number }> {
  const get = async (cursor?: string): Promise<{ ms: number; next: string | null }> => {
    const started = performance.now();
    const res = await fetch(`${gatewayUrl}/api/v1/contacts?sort=${sort}&limit=200${cursor ? `&cursor=${cursor}` : ''}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const body = (await res.json()) as { nextCursor?: string | null };
    if (res.status !== 200) throw new Error(`deep page: the API answered ${res.status} ${JSON.stringify(body)}`);
    return { ms: performance.now() - started, next: body.nextCursor ?? null };
  };
  let cursor: string | undefined;
  for (let i = 0; i < depth; i++) cursor = (await get(cursor)).next ?? undefined;
  if (!cursor) throw new Error(`the list ended before page ${depth}`);
  const first: number[] = [];
  const deep: number[] = [];
  for (let i = 0; i < rounds; i++) {
    first.push((await get()).ms);
    deep.push((await get(cursor)).ms);
  }
  return { firstP50: percentile(first, 50), deepP50: percentile(deep, 50), depthRows: depth * 200 };
}
