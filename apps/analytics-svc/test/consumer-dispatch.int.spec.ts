import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import { type analyticsV1, contactsEventsV1, contactsV1 } from '@crm/contracts';
import { callUnary, EVENT_STREAM, EventHandlerRegistrationError, newId, onEvent, OutboxMessage, startService, type ServiceHandle } from '@crm/platform';
import { asAdminOf, organizationId, serviceEnv, waitFor, type TestInfra } from '@crm/testing';
import { ANALYTICS_CONSUMER, configSchema } from '../src/app.ts';
import { startAnalyticsUnderTest, stopAnalyticsUnderTest } from './support/analytics-under-test.ts';
import { companyCreated } from '../src/consumers/company-created.handler.ts';
import { companyUpdated } from '../src/consumers/company-updated.handler.ts';
import { migrations } from '../src/migrations/index.ts';
import { CompanyProjection, ContactProjection } from '../src/overview/overview.entity.ts';

let infra: TestInfra;
let analytics: ServiceHandle;
let nc: NatsConnection;
let client: analyticsV1.AnalyticsServiceClient;

beforeAll(async () => {
  ({ infra, analytics, nc, client } = await startAnalyticsUnderTest('dispatch-test'));
});

afterAll(() => stopAnalyticsUnderTest({ infra, analytics, nc, client }));

/** Publishes `data` as a relay would (CloudEvents headers, ce-type = subject); resolves to its stream sequence. */
async function publishEvent(subject: string, eventId: string, data: Uint8Array): Promise<number> {
  const h = headers();
  h.set('ce-specversion', '1.0');
  h.set('ce-id', eventId);
  h.set('ce-type', subject);
  h.set('ce-source', '/crm/test');
  h.set('ce-time', new Date().toISOString());
  h.set('organization-id', organizationId('acme'));
  return (await jetstream(nc).publish(subject, data, { msgID: eventId, headers: h })).seq;
}

/** Audit fields of a record at aggregate `n` (the consumers order events by it). */
function version(n: number): { createTime: undefined; updateTime: undefined; createdBy: string; version: string } {
  return { createTime: undefined, updateTime: undefined, createdBy: 'u', version: String(n) };
}

/** Waits until the analytics consumer has acknowledged stream sequence `seq` and has nothing outstanding. */
async function acked(seq: number): Promise<void> {
  const jsm = await jetstreamManager(nc);
  await waitFor(`analytics consumer to ack stream sequence ${seq}`, async () => {
    const info = await jsm.consumers.info(EVENT_STREAM, ANALYTICS_CONSUMER);
    return info.ack_floor.stream_seq >= seq && info.num_pending === 0 && info.num_ack_pending === 0;
  });
}

/** Sum of a counter's values whose labels include `labels`. */
async function counter(name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = await analytics.metrics.registry.getSingleMetric(name)?.get();
  return (metric?.values ?? []).filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want)).reduce((sum, v) => sum + v.value, 0);
}

describe('analytics consumer dispatch', () => {
  it('acks and counts an event type nobody handles, and still applies the next handled event', async () => {
    const type = 'crm.pipeline.opportunity.won'; // on crm.>, but analytics has no handler for it (yet)
    const unhandledId = newId();
    const unhandledSeq = await publishEvent(type, unhandledId, new Uint8Array([0xff, 0xff])); // body never read
    await acked(unhandledSeq);

    const info = await (await jetstreamManager(nc)).consumers.info(EVENT_STREAM, ANALYTICS_CONSUMER);
    expect(info.num_redelivered).toBe(0);
    expect(info.ack_floor.consumer_seq).toBe(info.delivered.consumer_seq); // every delivery acked, none waiting for redelivery
    expect(await counter('consumer_unhandled_events_total', { consumer: ANALYTICS_CONSUMER, type })).toBe(1);
    expect(await counter('consumer_messages_total', { outcome: 'unhandled' })).toBe(1);
    expect(await counter('consumer_poison_messages_total')).toBe(0);
    const [inbox] = await analytics.orm.em.fork().execute<{ n: string }[]>('select count(*) as n from analytics.inbox where event_id = ?', [unhandledId]);
    expect(Number(inbox?.n)).toBe(0);

    const companyId = newId();
    const company = contactsV1.Company.fromPartial({
      id: companyId,
      name: 'Initech',
      domain: '',
      industry: 'software',
      parentCompanyId: '',
      ownerId: 'u',
      audit: version(1),
    });
    const handledSeq = await publishEvent('crm.contacts.company.created', newId(), contactsEventsV1.CompanyCreated.encode({ company }).finish());
    await acked(handledSeq);
    const overview = await asAdminOf('acme', () => callUnary(client, client.getOverview, {}));
    expect(overview.companiesByIndustry).toEqual([{ industry: 'software', companyCount: '1' }]);
    expect(await counter('consumer_messages_total', { outcome: 'applied' })).toBe(1);
  });

  it('applies an updated event carrying field changes', async () => {
    const companyId = newId();
    const company = contactsV1.Company.fromPartial({
      id: companyId,
      name: 'Globex',
      domain: '',
      industry: 'retail',
      parentCompanyId: '',
      ownerId: 'u',
      audit: version(1),
    });
    await publishEvent('crm.contacts.company.created', newId(), contactsEventsV1.CompanyCreated.encode({ company }).finish());
    const updated = contactsEventsV1.CompanyUpdated.encode({
      company: { ...company, industry: 'medical', audit: version(2) },
      changedFields: ['industry'],
      changes: [{ field: 'industry', oldValue: 'retail', newValue: 'medical' }],
    }).finish();
    await acked(await publishEvent('crm.contacts.company.updated', newId(), updated));
    const overview = await asAdminOf('acme', () => callUnary(client, client.getOverview, {}));
    expect(overview.companiesByIndustry).toContainEqual({ industry: 'medical', companyCount: '1' });
    expect(overview.companiesByIndustry.find((row) => row.industry === 'retail')).toBeUndefined();
  });

  it('fails the boot when two handlers claim one event type, leaving no consumer behind', async () => {
    const durable = 'analytics-duplicate-handlers';
    const boot = startService(
      {
        name: 'analytics-svc',
        schema: 'analytics',
        entities: [CompanyProjection, ContactProjection, OutboxMessage],
        migrations,
        relay: false,
        grpc: () => [],
        consumers: () => [
          {
            durable,
            filterSubject: 'crm.>',
            handlers: [companyCreated, companyUpdated, onEvent('crm.contacts.company.created', contactsEventsV1.CompanyCreated, async () => undefined)],
          },
        ],
      },
      configSchema.parse(serviceEnv(infra)),
    );
    await expect(boot).rejects.toThrow(EventHandlerRegistrationError);
    await expect(boot).rejects.toThrow(`consumer ${durable} registers two handlers for crm.contacts.company.created`);
    await expect((await jetstreamManager(nc)).consumers.info(EVENT_STREAM, durable)).rejects.toThrow(/not found/i);
  });
});
