import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { contactsEventsV1, contactsV1 } from '@crm/contracts';
import { waitFor } from '@crm/testing';
import { unique } from './support/conformance.ts';
import { mentions, subscribeEvents, type EventLog } from './support/events.ts';
import { startTestSuite, type TestSuite } from './support/suite.ts';

/**
 * The company and contact rules of contacts-svc through the gateway (issue 7): phone, language,
 * time zone and country formats; one primary contact per company under concurrent writes; status
 * change events; tag rules; tags; custom fields; marketing consent; search with hostile terms.
 */
let suite: TestSuite;
let events: EventLog;

beforeAll(async () => {
  suite = await startTestSuite();
  events = await subscribeEvents(suite, 'crm.contacts.company.>', 'crm.contacts.contact.>');
});

afterAll(async () => {
  await events?.close();
  await suite?.close();
});

type Json = Record<string, unknown>;
type Rec = Json & { id: string; version: number };
interface Problem {
  status: number;
  code?: string;
  errors?: { field: string; message: string }[];
}

const COMPANIES = '/api/v1/companies';
const CONTACTS = '/api/v1/contacts';

async function ok<T = Rec>(res: Response, status: number): Promise<T> {
  expect({ status: res.status, body: res.status === status ? 'ok' : await res.text() }).toEqual({ status, body: 'ok' });
  return (await res.json()) as T;
}

async function problem(res: Response, status: number): Promise<Problem> {
  expect({ status: res.status, type: res.headers.get('content-type') }).toEqual({ status, type: expect.stringMatching(/^application\/problem\+json/) });
  return (await res.json()) as Problem;
}

const fields = (p: Problem): string[] => (p.errors ?? []).map((e) => e.field);
const post = (path: string, json: unknown, as?: string): Promise<Response> => suite.api(path, { method: 'POST', json, as });
const patch = (path: string, id: string, json: unknown, as?: string): Promise<Response> => suite.api(`${path}/${id}`, { method: 'PATCH', json, as });
const create = async (path: string, json: Json, as?: string): Promise<Rec> => ok(await post(path, json, as), 201);
const get = async (path: string, id: string): Promise<Rec> => ok(await suite.api(`${path}/${id}`), 200);
const company = (json: Json = {}, as?: string): Promise<Rec> => create(COMPANIES, { name: unique('Company'), ...json }, as);
const contact = (json: Json = {}, as?: string): Promise<Rec> => create(CONTACTS, { firstName: 'Ada', lastName: unique('Lovelace'), ...json }, as);
const search = (path: string, q: string): Promise<Response> => suite.api(`${path}?limit=200&q=${encodeURIComponent(q)}`);
const found = async (path: string, q: string): Promise<string[]> => (await ok<{ data: Rec[] }>(await search(path, q), 200)).data.map((r) => r.id);

/** Waits until `count()` reaches `n` (events still arriving from the outbox relay). */
const until = (what: string, count: () => number, n: number): Promise<void> => waitFor(what, async () => count() >= n, 10_000, 10);

/**
 * Changes company `id` once more and waits for that change's `updated` event: the relay publishes
 * the events of one aggregate in outbox order, so every earlier event of the company has been
 * received — including one that should not exist.
 */
async function settle(id: string): Promise<void> {
  const marker = unique('settled');
  await ok(await patch(COMPANIES, id, { description: marker }), 200);
  await events.next('crm.contacts.company.updated', mentions(marker));
}

/** Waits until a company created now has its `created` event: a best effort for absences across aggregates (expected events are awaited first). */
async function drainEvents(): Promise<void> {
  const sentinel = await company({ name: unique('Sentinel') });
  await events.next('crm.contacts.company.created', mentions(sentinel.id));
}

describe('formats: phone, language, time zone, country', () => {
  it('stores a phone as E.164 beside the number as typed, on companies and contacts', async () => {
    const c = await company({ phone: '+1 (415) 555-0100' });
    expect(c).toMatchObject({ phone: '+14155550100', phoneOriginal: '+1 (415) 555-0100' });
    const p = await contact({ phone: ' +44 20 7946 0958 ', mobile: '+49 (0)30 901820' });
    expect(p).toMatchObject({ phone: '+442079460958', phoneOriginal: '+44 20 7946 0958', mobile: '+4930901820', mobileOriginal: '+49 (0)30 901820' });
    expect(await get(CONTACTS, p.id)).toEqual(p);

    const changed = await ok(await patch(COMPANIES, c.id, { phone: '+1 415.555.0111' }), 200);
    expect(changed).toMatchObject({ phone: '+14155550111', phoneOriginal: '+1 415.555.0111' });
    const cleared = await ok(await patch(COMPANIES, c.id, { phone: null }), 200);
    expect(cleared).toMatchObject({ phone: null, phoneOriginal: null });
  });

  it('refuses a number in national format (or no number at all) with 400 naming the field, and stores nothing', async () => {
    for (const phone of ['(415) 555-0100', '0415 555 0100', '+1 555', 'call me']) {
      const name = unique('National');
      expect(fields(await problem(await post(COMPANIES, { name, phone }), 400))).toEqual(['phone']);
      expect(await found(COMPANIES, name)).toEqual([]);
    }
    expect(fields(await problem(await post(CONTACTS, { firstName: 'Nat', mobile: '030 901820' }), 400))).toEqual(['mobile']);
  });

  it('canonicalises language (en-us → en-US), time zone and country, and refuses bad ones with 400 naming the field', async () => {
    const p = await contact({ preferredLanguage: 'en-us', timezone: 'europe/berlin', nationality: 'de' });
    expect(p).toMatchObject({ preferredLanguage: 'en-US', timezone: 'Europe/Berlin', nationality: 'DE' });
    expect(await ok(await patch(CONTACTS, p.id, { preferredLanguage: 'ZH-hant-tw' }), 200)).toMatchObject({ preferredLanguage: 'zh-Hant-TW' });

    const bad: [string, string][] = [
      ['preferredLanguage', 'english please'],
      ['preferredLanguage', 'en_US'],
      ['timezone', 'Mars/Olympus_Mons'],
      ['timezone', 'CET+25'],
      ['nationality', 'XX'],
      ['nationality', 'DEU'],
    ];
    for (const [field, value] of bad) {
      expect({ field, value, errors: fields(await problem(await post(CONTACTS, { firstName: 'Bad', [field]: value }), 400)) }).toEqual({
        field,
        value,
        errors: [field],
      });
      expect({ field, value, errors: fields(await problem(await patch(CONTACTS, p.id, { [field]: value }), 400)) }).toEqual({ field, value, errors: [field] });
    }
    expect(await get(CONTACTS, p.id)).toMatchObject({ preferredLanguage: 'zh-Hant-TW', timezone: 'Europe/Berlin', nationality: 'DE', version: 2 });
  });
});

describe('one primary contact per company', () => {
  it('keeps exactly one primary when five contacts are made primary at once, with a primary_changed event per change', async () => {
    const employer = await company();
    const people = await Promise.all(Array.from({ length: 5 }, () => contact({ companyId: employer.id })));
    /** PATCH isPrimary=true, retrying a 503 (WRITE_CONFLICT is retriable by contract). */
    const makePrimary = async (id: string): Promise<Rec> => {
      for (let attempt = 1; ; attempt++) {
        const res = await patch(CONTACTS, id, { isPrimary: true });
        if (res.status !== 503 || attempt === 5) return ok(res, 200);
      }
    };
    const answers = await Promise.all(people.map((p) => makePrimary(p.id)));
    for (const a of answers) expect(a).toMatchObject({ isPrimary: true, companyId: employer.id });

    const list = await ok<{ data: Rec[] }>(await suite.api(`${CONTACTS}?companyId=${employer.id}&limit=200`), 200);
    expect(list.data.map((r) => r.id).sort()).toEqual(people.map((p) => p.id).sort());
    const primaries = list.data.filter((r) => r['isPrimary'] === true);
    expect(primaries).toHaveLength(1);
    expect(list.data.filter((r) => r['isPrimary'] === false)).toHaveLength(4);

    // each PATCH made its contact primary and unset the one before: a chain of five changes
    await until('five primary_changed events', () => events.all('crm.contacts.contact.primary_changed', mentions(employer.id)).length, 5);
    await drainEvents();
    const changes = events.all('crm.contacts.contact.primary_changed', mentions(employer.id)).map((m) => contactsEventsV1.ContactPrimaryChanged.decode(m.data));
    expect(changes).toHaveLength(5);
    expect(changes.map((c) => c.contactId).sort()).toEqual(people.map((p) => p.id).sort());
    expect(changes.filter((c) => c.previousContactId === '')).toHaveLength(1);
    const demoted = new Set(changes.map((c) => c.previousContactId).filter(Boolean));
    expect(demoted.size).toBe(4);
    expect(people.map((p) => p.id).filter((id) => !demoted.has(id))).toEqual([primaries[0]!.id]);
  });

  it('refuses isPrimary without a company with 422 naming isPrimary, on create and update', async () => {
    const name = unique('Freelancer');
    const refused = await problem(await post(CONTACTS, { firstName: 'Free', lastName: name, isPrimary: true }), 422);
    expect(refused).toMatchObject({ code: 'PRIMARY_CONTACT_NEEDS_COMPANY' });
    expect(fields(refused)).toEqual(['isPrimary']);
    expect(await found(CONTACTS, name)).toEqual([]);

    const loner = await contact();
    expect(fields(await problem(await patch(CONTACTS, loner.id, { isPrimary: true }), 422))).toEqual(['isPrimary']);
    const primary = await contact({ companyId: (await company()).id, isPrimary: true });
    expect(fields(await problem(await patch(CONTACTS, primary.id, { companyId: null }), 422))).toEqual(['isPrimary']);
    expect(await get(CONTACTS, loner.id)).toEqual(loner);
  });
});

describe('company status changes', () => {
  it('emits status_changed with from/to besides updated, and none for a PATCH that leaves the status alone', async () => {
    const c = await company({ status: 'active' });
    await ok(await patch(COMPANIES, c.id, { status: 'churned' }), 200);
    await ok(await patch(COMPANIES, c.id, { industry: 'retail' }), 200);
    await ok(await patch(COMPANIES, c.id, { status: 'churned', employees: 3 }), 200);
    await settle(c.id);

    const statuses = events.all('crm.contacts.company.status_changed', mentions(c.id)).map((m) => contactsEventsV1.CompanyStatusChanged.decode(m.data));
    const S = contactsV1.CompanyStatus;
    expect(statuses).toEqual([
      { companyId: c.id, from: S.COMPANY_STATUS_UNSPECIFIED, to: S.COMPANY_STATUS_ACTIVE },
      { companyId: c.id, from: S.COMPANY_STATUS_ACTIVE, to: S.COMPANY_STATUS_CHURNED },
    ]);
    const updated = events.all('crm.contacts.company.updated', mentions(c.id)).map((m) => contactsEventsV1.CompanyUpdated.decode(m.data).changedFields);
    expect(updated).toEqual([['status'], ['industry'], ['employees'], ['description']]);
  });
});

describe('tag rules', () => {
  it('tags a company on create and when its status changes to a watched value; the updated event lists tags', async () => {
    const customerTag = await create('/api/v1/tags', { name: unique('Customer') });
    const prospectTag = await create('/api/v1/tags', { name: unique('Prospect') });
    await create('/api/v1/tag-rules', { object: 'company', field: 'account_type', value: 'customer', tagId: customerTag.id });
    await create('/api/v1/tag-rules', { object: 'company', field: 'status', value: 'prospect', tagId: prospectTag.id });

    const c = await company({ accountType: 'customer', status: 'active' });
    expect(c['tags']).toEqual([customerTag.id]);
    const partner = await company({ accountType: 'partner' });
    expect(partner['tags']).toEqual([]);

    const moved = await ok(await patch(COMPANIES, c.id, { status: 'prospect' }), 200);
    expect([...(moved['tags'] as string[])].sort()).toEqual([customerTag.id, prospectTag.id].sort());
    expect(await get(COMPANIES, c.id)).toEqual(moved);

    const event = contactsEventsV1.CompanyUpdated.decode((await events.next('crm.contacts.company.updated', mentions(c.id))).data);
    expect([...event.changedFields].sort()).toEqual(['status', 'tags']);
    expect(event.changes.find((ch) => ch.field === 'tags')).toMatchObject({ oldValue: [customerTag.id], newValue: expect.arrayContaining([prospectTag.id]) });
  });
});

describe('tags of a record', () => {
  it("refuses another organization's tag with 422 naming tags, and stores nothing", async () => {
    const theirs = await create('/api/v1/tags', { name: unique('Theirs') }, 'admin@globex.test');
    const name = unique('Borrower');
    const refused = await problem(await post(COMPANIES, { name, tags: [theirs.id] }), 422);
    expect(refused).toMatchObject({ code: 'TAG_NOT_FOUND' });
    expect(fields(refused)).toEqual(['tags']);
    expect(await found(COMPANIES, name)).toEqual([]);
    const p = await contact();
    expect(fields(await problem(await patch(CONTACTS, p.id, { tags: [theirs.id] }), 422))).toEqual(['tags']);
    expect(await get(CONTACTS, p.id)).toEqual(p);
  });

  it('collapses repeated tag ids into one', async () => {
    const tag = await create('/api/v1/tags', { name: unique('Twice') });
    const other = await create('/api/v1/tags', { name: unique('Once') });
    const c = await company({ tags: [tag.id, tag.id, other.id, tag.id] });
    expect(c['tags']).toEqual([tag.id, other.id]);
    const p = await contact();
    expect((await ok(await patch(CONTACTS, p.id, { tags: [other.id, other.id] }), 200))['tags']).toEqual([other.id]);
  });
});

describe('marketing preferences', () => {
  it('takes booleans, serves { granted, changedAt }, and keeps changedAt when a consent is re-sent unchanged', async () => {
    const p = await contact({ marketingPreferences: { newsletter: true, promotions: false } });
    const first = p['marketingPreferences'] as Record<string, { granted: boolean; changedAt: string }>;
    expect(first).toEqual({
      newsletter: { granted: true, changedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) },
      promotions: { granted: false, changedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) },
    });

    const same = await ok(await patch(CONTACTS, p.id, { marketingPreferences: { newsletter: true, promotions: false } }), 200);
    expect(same['marketingPreferences']).toEqual(first);

    const withdrawn = await ok(await patch(CONTACTS, p.id, { marketingPreferences: { newsletter: false, reminders: true } }), 200);
    const now = withdrawn['marketingPreferences'] as Record<string, { granted: boolean; changedAt: string }>;
    expect(now['promotions']).toEqual(first['promotions']);
    expect(now['newsletter']!.granted).toBe(false);
    expect(Date.parse(now['newsletter']!.changedAt)).toBeGreaterThanOrEqual(Date.parse(first['newsletter']!.changedAt));
    expect(now['reminders']).toMatchObject({ granted: true });
    expect(await get(CONTACTS, p.id)).toEqual(withdrawn);

    const unknown = await problem(await patch(CONTACTS, p.id, { marketingPreferences: { fax: true } }), 400);
    expect(fields(unknown)).toEqual(['marketingPreferences.fax']);
    expect(fields(await problem(await patch(CONTACTS, p.id, { marketingPreferences: { newsletter: 'yes' } }), 400))).toEqual([
      'marketingPreferences.newsletter',
    ]);
  });
});

describe('search (q) with hostile terms', () => {
  const hostile = ['%', '_', '\\', "'", '"', "'; drop table contacts; --", "O'Brien", '%%', '\\%', '🦄', 'a'.repeat(200), '%_\\\'"'];

  it('never answers 5xx on /contacts and /companies, and still serves afterwards', async () => {
    const before = await contact();
    for (const path of [CONTACTS, COMPANIES]) {
      for (const q of hostile) {
        const res = await search(path, q);
        expect({ path, q, status: res.status }).toEqual({ path, q, status: 200 });
      }
      // a lone surrogate or other bytes that are no UTF-8 text, and NUL (Postgres text cannot hold it), are refused
      for (const raw of ['%ED%A0%80', '%FF', '%E2%82', '%00', 'a%00b']) {
        const res = await suite.api(`${path}?q=${raw}`);
        expect({ path, raw, status: res.status }).toEqual({ path, raw, status: 400 });
        expect(fields((await res.json()) as Problem)).toEqual(['q']);
      }
      expect((await search(path, 'x'.repeat(201))).status).toBe(400);
    }
    expect(await get(CONTACTS, before.id)).toEqual(before);
  });

  it('matches %, _ and \\ literally', async () => {
    const tok = `t${randomBytes(4).toString('hex')}`;
    const names = { pct: `${tok}%x`, pctLike: `${tok}aax`, und: `${tok}_y`, undLike: `${tok}by`, bs: `${tok}\\z`, bsLike: `${tok}z` };
    const ids = Object.fromEntries(await Promise.all(Object.entries(names).map(async ([k, lastName]) => [k, (await contact({ lastName })).id] as const)));
    expect(await found(CONTACTS, `${tok}%x`)).toEqual([ids['pct']]);
    expect(await found(CONTACTS, `${tok}_y`)).toEqual([ids['und']]);
    expect(await found(CONTACTS, `${tok}\\z`)).toEqual([ids['bs']]);
    expect(await found(CONTACTS, `${tok}%`)).toEqual([ids['pct']]);
    expect((await found(CONTACTS, tok)).sort()).toEqual(Object.values(ids).sort());
    const emoji = await contact({ lastName: `${tok}🦄` });
    expect(await found(CONTACTS, `${tok}🦄`)).toEqual([emoji.id]);
    const quoted = await company({ name: `${tok} O'Brien "Ltd"` });
    expect(await found(COMPANIES, `${tok} O'Brien "Ltd"`)).toEqual([quoted.id]);
  });

  it('is accent- and case-insensitive, across first and last name, and finds phones by their digits', async () => {
    const tok = `t${randomBytes(4).toString('hex')}`;
    const zoe = await contact({ firstName: 'Zoë', lastName: `Müller ${tok}`, phone: '+1 (415) 555-0199' });
    const other = await contact({ firstName: 'Zora', lastName: `Miller ${tok}` });
    expect(await found(CONTACTS, `zoe mul`)).toContain(zoe.id);
    expect(await found(CONTACTS, `MÜLLER ${tok}`)).toEqual([zoe.id]);
    expect(await found(CONTACTS, `muller ${tok}`)).toEqual([zoe.id]);
    expect(await found(CONTACTS, `zoe mul`)).not.toContain(other.id);
    expect(await found(CONTACTS, '415 555 0199')).toContain(zoe.id);
    expect(await found(CONTACTS, '415 555')).toContain(zoe.id);
    expect(await found(CONTACTS, '(415) 555-0199')).toContain(zoe.id);
    const acme = await company({ name: `Société Générale ${tok}`, phone: '+1 415 555 0177' });
    expect(await found(COMPANIES, `societe generale ${tok}`)).toEqual([acme.id]);
    expect(await found(COMPANIES, '415 555 0177')).toContain(acme.id);
  });
});

// last: a required definition applies to every later company write of the organization
describe('custom fields of companies', () => {
  const tier = `tier_${randomBytes(4).toString('hex')}`;
  const note = `note_${randomBytes(4).toString('hex')}`;
  const definitions: string[] = [];

  beforeAll(async () => {
    definitions.push(
      (await create('/api/v1/custom-fields', { object: 'company', key: tier, label: 'Tier', type: 'select', options: ['gold', 'silver'], required: true })).id,
    );
    definitions.push((await create('/api/v1/custom-fields', { object: 'company', key: note, label: 'Note', type: 'text' })).id);
  });

  afterAll(async () => {
    for (const id of definitions) await suite?.api(`/api/v1/custom-fields/${id}`, { method: 'DELETE' });
  });

  it('refuses a company without a required field, with a value not among its options, or with an unknown key: 400 naming customFields.<key>', async () => {
    const name = unique('Custom');
    expect(fields(await problem(await post(COMPANIES, { name }), 400))).toEqual([`customFields.${tier}`]);
    expect(fields(await problem(await post(COMPANIES, { name, customFields: { [note]: 'x' } }), 400))).toEqual([`customFields.${tier}`]);
    expect(fields(await problem(await post(COMPANIES, { name, customFields: { [tier]: 'bronze' } }), 400))).toEqual([`customFields.${tier}`]);
    expect(fields(await problem(await post(COMPANIES, { name, customFields: { [tier]: 'gold', shoeSize: 42 } }), 400))).toEqual(['customFields.shoeSize']);
    expect(await found(COMPANIES, name)).toEqual([]);
  });

  it('merges the keys a PATCH sends into the stored ones (null removes one)', async () => {
    const c = await company({ customFields: { [tier]: 'gold', [note]: 'met at the fair' } });
    expect(c['customFields']).toEqual({ [tier]: 'gold', [note]: 'met at the fair' });
    const silver = await ok(await patch(COMPANIES, c.id, { customFields: { [tier]: 'silver' } }), 200);
    expect(silver['customFields']).toEqual({ [tier]: 'silver', [note]: 'met at the fair' });
    const removed = await ok(await patch(COMPANIES, c.id, { customFields: { [note]: null } }), 200);
    expect(removed['customFields']).toEqual({ [tier]: 'silver' });
    expect(fields(await problem(await patch(COMPANIES, c.id, { customFields: { [tier]: null } }), 400))).toEqual([`customFields.${tier}`]);
    expect(fields(await problem(await patch(COMPANIES, c.id, { customFields: { [tier]: 'bronze' } }), 400))).toEqual([`customFields.${tier}`]);
    // a PATCH not sending customFields is not held to definitions
    expect(await ok(await patch(COMPANIES, c.id, { industry: 'retail' }), 200)).toMatchObject({ customFields: { [tier]: 'silver' }, industry: 'retail' });
    expect(await get(COMPANIES, c.id)).toMatchObject({ customFields: { [tier]: 'silver' } });
  });

  it("does not apply another organization's definitions", async () => {
    const theirs = await company({}, 'admin@globex.test');
    expect(theirs['customFields']).toBeNull();
    expect(fields(await problem(await post(COMPANIES, { name: unique('Globex'), customFields: { [tier]: 'gold' } }, 'admin@globex.test'), 400))).toEqual([
      `customFields.${tier}`,
    ]);
  });
});
