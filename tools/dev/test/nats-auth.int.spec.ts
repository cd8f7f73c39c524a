import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { jetstream } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { connectNats, createLogger, ensureDurableConsumer, ensureEventStream, EVENT_STREAM, jetstreamManager } from '@crm/platform';
import { randomNatsPassword, serviceNatsUsers, startNatsServer, type NatsServerProcess } from '../src/infra.ts';

/**
 * NATS requires credentials, and each service may publish and subscribe only on its own subjects:
 * the configuration `npm start` and the tests run nats-server with (nats-auth.ts), checked against
 * a real nats-server.
 */

const logger = createLogger('nats-auth-test', 'silent');
let nats: NatsServerProcess;
let contacts: NatsConnection;
let analytics: NatsConnection;

beforeAll(async () => {
  nats = await startNatsServer({ users: serviceNatsUsers(() => randomNatsPassword()) });
  contacts = await connectNats(nats.url, 'contacts-test', logger, nats.credentials('contacts-svc'));
  analytics = await connectNats(nats.url, 'analytics-test', logger, nats.credentials('analytics-svc'));
  await ensureEventStream(await jetstreamManager(contacts));
});

afterAll(async () => {
  await contacts?.close();
  await analytics?.close();
  await nats?.dispose();
});

/** The message of the error `promise` rejects with. */
async function rejection(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
  throw new Error('expected a refusal');
}

describe('NATS credentials and permissions', () => {
  it('refuses a client without credentials or with a wrong password', async () => {
    expect(await rejection(connect({ servers: nats.url, maxReconnectAttempts: 0 }))).toMatch(/Authorization Violation/);
    expect(await rejection(connect({ servers: nats.url, maxReconnectAttempts: 0, user: 'contacts-svc', pass: 'guess' }))).toMatch(/Authorization Violation/);
    expect(await rejection(connect({ servers: nats.url, maxReconnectAttempts: 0, user: 'crm-test', pass: 'guess' }))).toMatch(/Authorization Violation/);
  });

  it('lets a service publish its own events but not another service’s', async () => {
    const js = jetstream(contacts);
    expect((await js.publish('crm.contacts.company.created', 'ok')).stream).toBe(EVENT_STREAM);
    expect(await rejection(js.publish('crm.pipeline.opportunity.won', 'forged'))).toMatch(
      /Permissions Violation for Publish to "crm.pipeline.opportunity.won"/,
    );
    expect(await rejection(jetstream(analytics).publish('crm.contacts.company.created', 'forged'))).toMatch(/Permissions Violation for Publish/);
    const stream = await (await jetstreamManager(contacts)).streams.info(EVENT_STREAM);
    expect(stream.state.messages).toBe(1);
    expect(stream.state.num_subjects).toBe(1);
  });

  it('lets a service read through its own durable consumer only, and not manage the stream', async () => {
    const jsm = await jetstreamManager(analytics);
    await ensureDurableConsumer(jsm, 'analytics-svc', 'crm.>', 5);
    const messages = await jetstream(analytics)
      .consumers.get(EVENT_STREAM, 'analytics-svc')
      .then((c) => c.fetch({ max_messages: 1, expires: 5000 }));
    const subjects: string[] = [];
    for await (const m of messages) {
      subjects.push(m.subject);
      m.ack();
    }
    expect(subjects).toEqual(['crm.contacts.company.created']);

    expect(await rejection(ensureDurableConsumer(jsm, 'contacts-svc', 'crm.>', 5))).toMatch(/Permissions Violation/);
    expect(await rejection(jsm.streams.delete(EVENT_STREAM))).toMatch(/Permissions Violation for Publish to "\$JS.API.STREAM.DELETE.CRM_EVENTS"/);
    expect(await rejection((await jetstreamManager(contacts)).consumers.info(EVENT_STREAM, 'analytics-svc'))).toMatch(/Permissions Violation/);
  });

  it('keeps a service from subscribing to others’ subjects and inboxes', async () => {
    for (const subject of ['crm.>', '_INBOX.analytics-svc.>', '_INBOX.>']) {
      const sub = contacts.subscribe(subject);
      expect(
        await rejection(
          (async () => {
            for await (const m of sub) return m.subject;
          })(),
        ),
      ).toContain(`Permissions Violation for Subscription to "${subject}"`);
    }
  });
});
