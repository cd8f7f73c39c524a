import { connect, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { waitFor } from '@crm/testing';
import type { TestSuite } from './suite.ts';

/** Longest wait for an event, ms (the outbox relay publishes within a poll or two). */
const EVENT_DEADLINE_MS = 10_000;

/** What a spec's NATS subscription has received so far, and how to wait for more. */
export interface EventLog {
  /** Every message received on the subscribed subjects, in arrival order. */
  readonly received: readonly Msg[];
  /** Messages of `subject` (exact) for which `matches` holds, received so far. */
  all(subject: string, matches?: (m: Msg) => boolean): Msg[];
  /** The first message of `subject` for which `matches` holds, awaited up to 10 s. */
  next(subject: string, matches?: (m: Msg) => boolean): Promise<Msg>;
  close(): Promise<void>;
}

/** True when the message's payload holds `text` (an id, a unique name) as UTF-8 bytes. */
export const mentions =
  (text: string) =>
  (m: Msg): boolean =>
    Buffer.from(m.data).includes(text);

/**
 * Subscribes to `subjects` (NATS wildcards allowed, e.g. `crm.contacts.company.>`) on the suite's
 * NATS, as a plain core subscription; resolves once the server has registered it, so every event
 * of a write made afterwards is received.
 */
export async function subscribeEvents(suite: TestSuite, ...subjects: string[]): Promise<EventLog> {
  const nc: NatsConnection = await connect({ servers: suite.infra.nats.url, name: `events ${subjects.join(' ')}`, ...suite.infra.natsAuth });
  const received: Msg[] = [];
  for (const subject of subjects) {
    const sub = nc.subscribe(subject);
    void (async () => {
      for await (const m of sub) received.push(m);
    })();
  }
  await nc.flush();
  const all = (subject: string, matches: (m: Msg) => boolean = () => true): Msg[] => received.filter((m) => m.subject === subject && matches(m));
  return {
    received,
    all,
    next: async (subject, matches = () => true) => {
      let found: Msg | undefined;
      await waitFor(`a ${subject} event`, async () => (found = all(subject, matches)[0]) !== undefined, EVENT_DEADLINE_MS, 10);
      return found!;
    },
    close: () => nc.close(),
  };
}
