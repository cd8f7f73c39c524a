import { Metadata } from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import type { RequestContext } from '../context.ts';
import type { CallerIdentity } from './internal-token.ts';

/**
 * Metadata keys of a call (architecture: "Tenancy and identity"). The caller's identity travels
 * only inside the signed internal token (`authorization: Bearer <jwt>`, grpc/internal-token.ts);
 * services never read identity from plain keys, so whoever reaches a port cannot set a tenant.
 * `x-organization-id`, `x-user-id` and `x-roles` are no longer sent; their names stay reserved.
 */
export const MD = {
  authorization: 'authorization',
  organizationId: 'x-organization-id',
  userId: 'x-user-id',
  roles: 'x-roles',
  /** The request id (a correlation id for logs and traces, not a credential; not in the token, so tokens are reused across requests). */
  requestId: 'x-request-id',
  idempotencyKey: 'idempotency-key',
} as const;

/**
 * Client side: the call metadata of a request: `token` (the internal token signed for this
 * context and the called service) as `authorization: Bearer …`, plus the request's plain
 * attributes that are not identity: the request id (for logs) and the client's idempotency key.
 */
export function contextToMetadata(ctx: RequestContext, token: string, metadata: Metadata = new Metadata()): Metadata {
  metadata.set(MD.authorization, `Bearer ${token}`);
  metadata.set(MD.requestId, ctx.requestId);
  if (ctx.idempotencyKey) metadata.set(MD.idempotencyKey, ctx.idempotencyKey);
  return metadata;
}

function first(metadata: Metadata, key: string): string | undefined {
  const value = metadata.get(key)[0];
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

/** The bearer token of a call's `authorization` metadata, or undefined when there is none. */
export function bearerToken(metadata: Metadata): string | undefined {
  return /^Bearer\s+(\S+)$/i.exec(first(metadata, MD.authorization) ?? '')?.[1];
}

/** A request id a caller may set: 1–100 of `[A-Za-z0-9_.-]` (the gateway's rule for `X-Request-Id`). */
const REQUEST_ID = /^[\w.-]{1,100}$/;

/**
 * Server side: the request context of a call whose token was verified. Identity (organization,
 * user, roles) comes from `identity` — the verified token — only; request attributes that are not
 * identity are read from `metadata` and never override it: the request id (a fresh UUID when
 * missing or not 1–100 of `[A-Za-z0-9_.-]`) and the idempotency key (scoped by the verified
 * organization and user where it is recorded).
 */
export function contextFromMetadata(metadata: Metadata, identity: CallerIdentity): RequestContext {
  const requestId = first(metadata, MD.requestId);
  return {
    organizationId: identity.organizationId,
    userId: identity.userId,
    roles: identity.roles,
    requestId: requestId && REQUEST_ID.test(requestId) ? requestId : randomUUID(),
    idempotencyKey: first(metadata, MD.idempotencyKey),
  };
}
