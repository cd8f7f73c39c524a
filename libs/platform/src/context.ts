import { AsyncLocalStorage } from 'node:async_hooks';
import { DomainError } from './errors.ts';

/** Realm roles of realm `crm` (Keycloak), most to least privileged. */
export const ROLES = ['crm-admin', 'crm-manager', 'crm-rep', 'crm-viewer'] as const;
export type Role = (typeof ROLES)[number];

/**
 * Who is calling, for which tenant. Built by the gateway from the access token and carried to the
 * services as gRPC metadata (`x-organization-id`, `x-user-id`, `x-roles`, `x-request-id`).
 * Services trust only this, and scope every query by `organizationId`.
 */
export interface RequestContext {
  /** Keycloak organization id (UUID) = tenant. */
  organizationId: string;
  /** Keycloak subject of the user. */
  userId: string;
  roles: readonly Role[];
  requestId: string;
  /**
   * The client's `Idempotency-Key` of this request, when it sent one: the owning service records it
   * with the write, in the same transaction, so a retry produces no second effect.
   */
  idempotencyKey?: string | undefined;
}

const storage = new AsyncLocalStorage<RequestContext>();

/** Runs `fn` with `ctx` as the current request context (visible to logs, clients, services). */
export function runWithContext<T>(ctx: RequestContext, fn: () => T): T {
  return storage.run(ctx, fn);
}

/** The current request context, or undefined outside a request (relay, consumers, boot). */
export function currentContext(): RequestContext | undefined {
  return storage.getStore();
}

/**
 * The current request context; throws `UNAUTHENTICATED` when there is none, so a handler can never
 * run a tenant query without a tenant.
 */
export function requireContext(): RequestContext {
  const ctx = storage.getStore();
  if (!ctx) throw new DomainError('unauthenticated', 'NO_REQUEST_CONTEXT', 'request context is missing');
  return ctx;
}

/** True when the caller holds at least one of `roles`. */
export function hasAnyRole(ctx: RequestContext, ...roles: Role[]): boolean {
  return ctx.roles.some((r) => roles.includes(r));
}

/** Narrows a string to a known realm role. */
export function isRole(value: string): value is Role {
  return (ROLES as readonly string[]).includes(value);
}
