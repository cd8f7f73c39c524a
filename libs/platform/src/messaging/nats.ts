import { connect, nanos, type NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, DeliverPolicy, jetstreamManager, RetentionPolicy, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import type { Logger } from '../logger.ts';
import { EVENT_STREAM } from './event.ts';

/** NATS user credentials (nats-server `authorization.users`). */
export interface NatsCredentials {
  user: string;
  pass: string;
}

/**
 * The inbox prefix of `user`: `_INBOX.<user>`. Replies (JetStream acks, pulled messages) go to
 * inboxes under it, so the server can let each user subscribe to its own inboxes only
 * (`_INBOX.<user>.>`) and no service reads another's deliveries.
 */
export function inboxPrefixOf(user: string): string {
  return `_INBOX.${user}`;
}

/**
 * Connects to NATS (comma-separated `servers`) as `credentials.user` (replies under
 * {@link inboxPrefixOf} that user), reconnecting forever so a NATS outage delays events instead of
 * losing them (the outbox keeps them). Waits for the first connection; rejects when the server
 * refuses the credentials (`Authorization Violation`) or, without credentials, requires them.
 */
export async function connectNats(servers: string, name: string, logger: Logger, credentials?: NatsCredentials): Promise<NatsConnection> {
  const nc = await connect({
    servers: servers.split(','),
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    waitOnFirstConnect: true,
    pingInterval: 5000,
    ...(credentials ? { user: credentials.user, pass: credentials.pass, inboxPrefix: inboxPrefixOf(credentials.user) } : {}),
  });
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect' || s.type === 'reconnect') logger.warn({ nats: s.type }, 'NATS connection status');
    }
  })();
  return nc;
}

/**
 * Creates (or updates the subjects of) the event stream `CRM_EVENTS` on `crm.>`: file storage,
 * limits retention with no age limit (analytics rebuilds by replaying it), 2-minute duplicate
 * window for `Nats-Msg-Id` dedup, `replicas` copies (1 locally, 3 in a cluster).
 */
export async function ensureEventStream(jsm: JetStreamManager, replicas = 1): Promise<void> {
  const config = {
    name: EVENT_STREAM,
    subjects: ['crm.>'],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    duplicate_window: nanos(120_000),
    num_replicas: replicas,
  };
  try {
    await jsm.streams.info(EVENT_STREAM);
    await jsm.streams.update(EVENT_STREAM, { subjects: config.subjects, duplicate_window: config.duplicate_window });
  } catch (error) {
    if (!isNotFound(error)) throw error;
    await jsm.streams.add(config);
  }
}

/**
 * Creates the durable pull consumer `durable` on the event stream if absent: explicit acks,
 * deliver all (a new consumer starts from the first event), `maxDeliver` attempts.
 */
export async function ensureDurableConsumer(jsm: JetStreamManager, durable: string, filterSubject: string, maxDeliver: number): Promise<void> {
  try {
    await jsm.consumers.info(EVENT_STREAM, durable);
  } catch (error) {
    if (!isNotFound(error)) throw error;
    await jsm.consumers.add(EVENT_STREAM, {
      durable_name: durable,
      filter_subject: filterSubject,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(30_000),
      max_deliver: maxDeliver,
      max_ack_pending: 1000,
    });
  }
}

function isNotFound(error: unknown): boolean {
  return error instanceof Error && /not found/i.test(error.message);
}

export { jetstreamManager };
export type { NatsConnection, JetStreamManager };
