import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import { type analyticsV1, contactsEventsV1, contactsV1 } from '@crm/contracts';
import { callUnary, EVENT_STREAM, newId, type ServiceHandle } from '@crm/platform';
import { asAdminOf, organizationId, waitFor, type TestInfra } from '@crm/testing';
import { ANALYTICS_CONSUMER } from '../src/app.ts';
import { startAnalyticsUnderTest, stopAnalyticsUnderTest } from './support/analytics-under-test.ts';

let infra: TestInfra;
let analytics: ServiceHandle;
let nc: NatsConnection;
let client: analyticsV1.AnalyticsServiceClient;

beforeAll(async () => {
  ({ infra, analytics, nc, client } = await startAnalyticsUnderTest('inbox-test'));
});

afterAll(() => stopAnalyticsUnderTest({ infra, analytics, nc, client }));

/** Publishes a company.created event as contacts-svc's relay would, with an explicit CloudEvents id. */
async function publishCompanyCreated(eventId: string, companyId: string, industry: string, msgId: string): Promise<void> {
  const h = headers();
  h.set('ce-specversion', '1.0');
  h.set('ce-id', eventId);
  h.set('ce-type', 'crm.contacts.company.created');
  h.set('ce-source', '/crm/contacts-svc');
  h.set('ce-time', new Date().toISOString());
  h.set('organization-id', organizationId('acme'));
  const data = contactsEventsV1.CompanyCreated.encode({
    company: contactsV1.Company.fromPartial({
      id: companyId,
      name: 'x',
      industry,
      ownerId: 'u',
      audit: { createTime: undefined, updateTime: undefined, createdBy: 'u', version: '1' },
    }),
  }).finish();
  await jetstream(nc).publish('crm.contacts.company.created', data, { msgID: msgId, headers: h });
}

/** Waits until the durable consumer has acknowledged everything in the stream. */
async function drained(): Promise<void> {
  const jsm = await jetstreamManager(nc);
  await waitFor('analytics consumer to drain', async () => {
    const info = await jsm.consumers.info(EVENT_STREAM, ANALYTICS_CONSUMER);
    return info.num_pending === 0 && info.num_ack_pending === 0;
  });
}

/** Sum of a counter's values (optionally for one `outcome`). */
async function counter(name: string, outcome?: string): Promise<number> {
  const metric = await analytics.metrics.registry.getSingleMetric(name)?.get();
  return (metric?.values ?? []).filter((v) => outcome === undefined || v.labels['outcome'] === outcome).reduce((sum, v) => sum + v.value, 0);
}

async function overview(): Promise<analyticsV1.GetOverviewResponse> {
  return asAdminOf('acme', () => callUnary(client, client.getOverview, {}));
}

describe('analytics consumer inbox', () => {
  it('counts the same event delivered twice once', async () => {
    const eventId = newId();
    const companyId = newId();
    // two stream messages (distinct Nats-Msg-Id defeats JetStream dedup) carrying the same event
    await publishCompanyCreated(eventId, companyId, 'medical', `${eventId}-a`);
    await publishCompanyCreated(eventId, companyId, 'medical', `${eventId}-b`);
    await drained();
    const o = await overview();
    expect(o.companyCount).toBe('1');
    expect(o.companiesByIndustry).toEqual([{ industry: 'medical', companyCount: '1' }]);
    const [row] = await analytics.orm.em.fork().execute<{ n: string }[]>('select count(*) as n from analytics.inbox where event_id = ?', [eventId]);
    expect(Number(row?.n)).toBe(1);
    expect(await counter('consumer_messages_total', 'duplicate')).toBe(1);
  });

  it('terminates a poison message and keeps consuming after it', async () => {
    await jetstream(nc).publish('crm.contacts.company.created', new Uint8Array([1, 2, 3])); // no CloudEvents headers
    const companyId = newId();
    await publishCompanyCreated(newId(), companyId, 'retail', newId());
    await drained();
    const o = await overview();
    expect(o.companyCount).toBe('2');
    expect(await counter('consumer_poison_messages_total')).toBe(1);
  });
});
