import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import { contactsEventsV1, contactsV1, contactV1 } from '@crm/contracts';
import { EVENT_STREAM, newId, runWithContext, type Orm, type PlatformMetrics } from '@crm/platform';
import { waitFor } from '@crm/testing';
import { OverviewService, type Overview } from '../../src/overview/overview.service.ts';

/*
 * Event histories for the analytics consumer's tests: changes of companies and contacts as
 * contacts-svc would publish them (protobuf body, CloudEvents headers, `audit.version`), the state
 * they must project to, and what analytics actually holds.
 */

/** One change of one aggregate; created/updated carry the aggregate version, deleted only the id. */
export type Change =
  | { aggregate: 'company'; kind: 'created' | 'updated'; id: string; version: number; industry: string }
  | { aggregate: 'contact'; kind: 'created' | 'updated'; id: string; version: number }
  | { aggregate: 'company' | 'contact'; kind: 'deleted'; id: string };

const INDUSTRIES = ['', 'energy', 'medical', 'retail', 'software'];

/** Deterministic pseudo-random numbers in [0, 1) (mulberry32), so a failing history can be replayed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The lives of `companies` companies and `contacts` contacts in causal order per aggregate
 * (created v1, updates v2…, maybe deleted), interleaved at random.
 */
export function history(companies: number, contacts: number, random: () => number): Change[] {
  const lives: Change[][] = [];
  for (let i = 0; i < companies; i++) {
    const id = newId();
    const life: Change[] = [{ aggregate: 'company', kind: 'created', id, version: 1, industry: pick(INDUSTRIES, random) }];
    const updates = Math.floor(random() * 4);
    for (let v = 2; v <= updates + 1; v++) life.push({ aggregate: 'company', kind: 'updated', id, version: v, industry: pick(INDUSTRIES, random) });
    if (random() < 0.25) life.push({ aggregate: 'company', kind: 'deleted', id });
    lives.push(life);
  }
  for (let i = 0; i < contacts; i++) {
    const id = newId();
    const life: Change[] = [{ aggregate: 'contact', kind: 'created', id, version: 1 }];
    if (random() < 0.5) life.push({ aggregate: 'contact', kind: 'updated', id, version: 2 });
    if (random() < 0.25) life.push({ aggregate: 'contact', kind: 'deleted', id });
    lives.push(life);
  }
  const out: Change[] = [];
  while (lives.some((l) => l.length > 0)) {
    const open = lives.filter((l) => l.length > 0);
    out.push(pick(open, random).shift()!);
  }
  return out;
}

function pick<T>(items: readonly T[], random: () => number): T {
  return items[Math.floor(random() * items.length)]!;
}

/** Subject and protobuf body of `change`, as contacts-svc's record service encodes it. */
export function encodeChange(change: Change): { subject: string; data: Uint8Array } {
  const subject = `crm.contacts.${change.aggregate}.${change.kind}`;
  if (change.kind === 'deleted') {
    const data =
      change.aggregate === 'company'
        ? contactsEventsV1.CompanyDeleted.encode({ companyId: change.id }).finish()
        : contactsEventsV1.ContactDeleted.encode({ contactId: change.id }).finish();
    return { subject, data };
  }
  const audit = { createTime: undefined, updateTime: undefined, createdBy: 'u', version: String(change.version) };
  if (change.aggregate === 'company') {
    const company = contactsV1.Company.fromPartial({ id: change.id, name: `company ${change.id}`, industry: change.industry, ownerId: 'u', audit });
    const data =
      change.kind === 'created'
        ? contactsEventsV1.CompanyCreated.encode({ company }).finish()
        : contactsEventsV1.CompanyUpdated.encode({ company, changedFields: ['industry'], changes: [] }).finish();
    return { subject, data };
  }
  const contact = contactV1.Contact.fromPartial({ id: change.id, firstName: 'Ada', lastName: change.id, ownerId: 'u', audit });
  const data =
    change.kind === 'created'
      ? contactsEventsV1.ContactCreated.encode({ contact }).finish()
      : contactsEventsV1.ContactUpdated.encode({ contact, changedFields: ['lastName'], changes: [] }).finish();
  return { subject, data };
}

/**
 * Publishes `change` of organization `org` to JetStream as a relay would: CloudEvents headers with
 * `eventId` as `ce-id`, and `msgId` (default: the event id) as `Nats-Msg-Id`. Resolves to the
 * stream sequence and whether the stream dropped it as a duplicate.
 */
export async function publishChange(
  nc: NatsConnection,
  org: string,
  change: Change,
  ids: { eventId?: string; msgId?: string } = {},
): Promise<{ eventId: string; seq: number; duplicate: boolean }> {
  const eventId = ids.eventId ?? newId();
  const { subject, data } = encodeChange(change);
  const h = headers();
  h.set('ce-specversion', '1.0');
  h.set('ce-id', eventId);
  h.set('ce-type', subject);
  h.set('ce-source', '/crm/contacts-svc');
  h.set('ce-time', new Date().toISOString());
  h.set('organization-id', org);
  const ack = await jetstream(nc).publish(subject, data, { msgID: ids.msgId ?? eventId, headers: h });
  return { eventId, seq: ack.seq, duplicate: ack.duplicate };
}

/** What a history must project to: live companies with their industry, live contacts, and the overview. */
export interface ProjectedState {
  companies: Record<string, string>;
  contacts: string[];
  overview: Overview;
}

/**
 * The state `changes` describe, whatever order they are delivered in: per aggregate the newest
 * version's values, and nothing for a deleted one.
 */
export function expectedState(changes: readonly Change[]): ProjectedState {
  const deleted = new Set(changes.filter((c) => c.kind === 'deleted').map((c) => c.id));
  const companies = new Map<string, { version: number; industry: string }>();
  const contacts = new Set<string>();
  for (const c of changes) {
    if (c.kind === 'deleted' || deleted.has(c.id)) continue;
    if (c.aggregate === 'contact') contacts.add(c.id);
    else if ((companies.get(c.id)?.version ?? 0) < c.version) companies.set(c.id, { version: c.version, industry: c.industry });
  }
  const perIndustry = new Map<string, number>();
  for (const { industry } of companies.values()) perIndustry.set(industry, (perIndustry.get(industry) ?? 0) + 1);
  return {
    companies: Object.fromEntries([...companies].map(([id, c]) => [id, c.industry])),
    contacts: [...contacts].sort(),
    overview: {
      companyCount: companies.size,
      contactCount: contacts.size,
      companiesByIndustry: sortOverview([...perIndustry].map(([industry, companyCount]) => ({ industry, companyCount }))),
    },
  };
}

/** Overview rows in one canonical order (count descending, then industry), to compare two overviews. */
export function sortOverview<T extends { industry: string; companyCount: number }>(rows: T[]): T[] {
  return [...rows].sort((a, b) => b.companyCount - a.companyCount || (a.industry < b.industry ? -1 : a.industry > b.industry ? 1 : 0));
}

/**
 * What analytics holds for `org`: the live rows of its projection tables and the overview it
 * serves (from its counters, through the real service); plus a recount of the live rows per
 * industry, which the counters must equal.
 */
export async function projectedState(orm: Orm, org: string): Promise<ProjectedState & { recount: Overview['companiesByIndustry'] }> {
  const em = orm.em.fork();
  const companyRows = await em.execute<{ company_id: string; industry: string }[]>(
    'select company_id, industry from analytics.company_projection where organization_id = ? and not deleted',
    [org],
  );
  const contactRows = await em.execute<{ contact_id: string }[]>(
    'select contact_id from analytics.contact_projection where organization_id = ? and not deleted',
    [org],
  );
  const recount = await em.execute<{ industry: string; n: string }[]>(
    'select industry, count(*) as n from analytics.company_projection where organization_id = ? and not deleted group by industry',
    [org],
  );
  const overview = await runWithContext({ organizationId: org, userId: 'test', roles: ['crm-admin'], requestId: 'test' }, () => new OverviewService(orm).get());
  return {
    companies: Object.fromEntries(companyRows.map((r) => [r.company_id, r.industry])),
    contacts: contactRows.map((r) => r.contact_id).sort(),
    overview: { ...overview, companiesByIndustry: sortOverview(overview.companiesByIndustry) },
    recount: sortOverview(recount.map((r) => ({ industry: r.industry, companyCount: Number(r.n) }))),
  };
}

/** Waits until durable `durable` has acknowledged everything in the stream (nothing pending, nothing awaiting redelivery). */
export async function drained(nc: NatsConnection, durable: string, timeoutMs = 15_000): Promise<void> {
  const jsm = await jetstreamManager(nc);
  await waitFor(
    `consumer ${durable} to drain`,
    async () => {
      const info = await jsm.consumers.info(EVENT_STREAM, durable);
      return info.num_pending === 0 && info.num_ack_pending === 0;
    },
    timeoutMs,
  );
}

/** Sum of a metric's values whose labels include `labels`. */
export async function metricValue(metrics: PlatformMetrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = await metrics.registry.getSingleMetric(name)?.get();
  return (metric?.values ?? []).filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want)).reduce((sum, v) => sum + v.value, 0);
}
