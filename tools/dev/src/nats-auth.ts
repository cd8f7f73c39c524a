import { randomBytes } from 'node:crypto';
import { EVENT_STREAM, inboxPrefixOf, type NatsCredentials } from '@crm/platform';

/**
 * NATS users and permissions (architecture: "NATS requires credentials; each service may publish
 * and subscribe only on its own subjects"), rendered into the nats-server configuration of
 * `npm start` and of the tests' private servers. deploy/k8s's nats.conf grants the same.
 */

/** What one service does on NATS. */
export interface NatsAccess {
  /** NATS user = the service's name (its NATS_USER default). */
  user: string;
  /** Subjects it publishes events on: its own domain only, e.g. `crm.contacts.>`. */
  publishes: readonly string[];
  /** Durable consumers it owns on the event stream (pull: fetch, ack, create, info). */
  durables: readonly string[];
  /** Plain read-only subscriptions, e.g. `crm.>` for analytics. */
  subscribes: readonly string[];
}

/** Every service's NATS access. A service with no entry here cannot connect. */
export const SERVICE_NATS_ACCESS: readonly NatsAccess[] = [
  { user: 'contacts-svc', publishes: ['crm.contacts.>'], durables: [], subscribes: [] },
  { user: 'pipeline-svc', publishes: ['crm.pipeline.>'], durables: [], subscribes: [] },
  { user: 'quotes-svc', publishes: ['crm.quotes.>'], durables: [], subscribes: [] },
  { user: 'activities-svc', publishes: ['crm.activities.>'], durables: [], subscribes: [] },
  // reads every event (its projections), publishes none
  { user: 'analytics-svc', publishes: [], durables: ['analytics-svc'], subscribes: ['crm.>'] },
];

/** nats-server `permissions` of one user. */
export interface NatsPermissions {
  publish: { allow: string[] };
  subscribe: { allow: string[] };
}

/**
 * The nats-server permissions that `access` needs, nothing more:
 * - publish: its event subjects; the JetStream API for `$JS.API.INFO`, the event stream's
 *   INFO/CREATE/UPDATE (every service ensures the stream at boot; no DELETE/PURGE) and, per
 *   durable, CONSUMER INFO/CREATE/DURABLE.CREATE/MSG.NEXT and its acks (`$JS.ACK.<stream>.<durable>.>`,
 *   also in the 2.10+ form with domain and account hash);
 * - subscribe: its own inboxes (`_INBOX.<user>.>`, where JetStream replies and pulled messages
 *   arrive) and its read-only subjects.
 */
export function natsPermissions(access: NatsAccess): NatsPermissions {
  const api = '$JS.API';
  const stream = EVENT_STREAM;
  return {
    publish: {
      allow: [
        ...access.publishes,
        `${api}.INFO`,
        `${api}.STREAM.INFO.${stream}`,
        `${api}.STREAM.CREATE.${stream}`,
        `${api}.STREAM.UPDATE.${stream}`,
        ...access.durables.flatMap((d) => [
          `${api}.CONSUMER.INFO.${stream}.${d}`,
          `${api}.CONSUMER.CREATE.${stream}.${d}`,
          `${api}.CONSUMER.CREATE.${stream}.${d}.>`,
          `${api}.CONSUMER.DURABLE.CREATE.${stream}.${d}`,
          `${api}.CONSUMER.MSG.NEXT.${stream}.${d}`,
          `$JS.ACK.${stream}.${d}.>`,
          `$JS.ACK.*.*.${stream}.${d}.>`,
        ]),
      ],
    },
    subscribe: { allow: [`${inboxPrefixOf(access.user)}.>`, ...access.subscribes] },
  };
}

/** A NATS user of a server's configuration; without `permissions` it may do anything (tests' observer). */
export interface NatsUser extends NatsCredentials {
  permissions?: NatsPermissions;
}

/** A random password (24 bytes, base64url: no characters the config syntax cares about). */
export function randomNatsPassword(): string {
  return randomBytes(24).toString('base64url');
}

/** The service users of {@link SERVICE_NATS_ACCESS} with their permissions, each with `password(user)`. */
export function serviceNatsUsers(password: (user: string) => string): NatsUser[] {
  return SERVICE_NATS_ACCESS.map((access) => ({ user: access.user, pass: password(access.user), permissions: natsPermissions(access) }));
}

/**
 * The nats-server (2.9+) `authorization` block for `users` (plain-text passwords: for local and
 * test servers, written to a private file; Kubernetes uses bcrypt hashes). Clients without valid
 * credentials are refused. JSON values: quoted strings are never read as `$variables`.
 */
export function natsAuthorizationConfig(users: readonly NatsUser[]): string {
  const entries = users.map((u) => ({ user: u.user, password: u.pass, ...(u.permissions ? { permissions: u.permissions } : {}) }));
  return `authorization: ${JSON.stringify({ users: entries }, null, 2)}\n`;
}
