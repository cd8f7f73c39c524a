import { Metadata } from '@grpc/grpc-js';
import { type RequestContext, isRole } from '../context.ts';
import { DomainError } from '../errors.ts';
import { isUuid } from '../persistence/ids.ts';

/** Metadata keys the gateway sets and services trust (architecture: "Tenancy and identity"). */
export const MD = {
  organizationId: 'x-organization-id',
  userId: 'x-user-id',
  roles: 'x-roles',
  requestId: 'x-request-id',
  idempotencyKey: 'idempotency-key',
} as const;

/** Serialises a request context into call metadata (roles comma-separated). */
export function contextToMetadata(ctx: RequestContext, metadata: Metadata = new Metadata()): Metadata {
  metadata.set(MD.organizationId, ctx.organizationId);
  metadata.set(MD.userId, ctx.userId);
  metadata.set(MD.roles, ctx.roles.join(','));
  metadata.set(MD.requestId, ctx.requestId);
  if (ctx.idempotencyKey) metadata.set(MD.idempotencyKey, ctx.idempotencyKey);
  return metadata;
}

function first(metadata: Metadata, key: string): string | undefined {
  const value = metadata.get(key)[0];
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

/**
 * Reads the request context from call metadata. Throws `UNAUTHENTICATED` (code
 * `MISSING_CALL_CONTEXT`) when the organization or user is missing or the organization id is not a
 * UUID; unknown roles are dropped.
 */
export function contextFromMetadata(metadata: Metadata): RequestContext {
  const organizationId = first(metadata, MD.organizationId);
  const userId = first(metadata, MD.userId);
  if (!organizationId || !isUuid(organizationId) || !userId) {
    throw new DomainError('unauthenticated', 'MISSING_CALL_CONTEXT', 'call metadata lacks x-organization-id / x-user-id');
  }
  const roles = (first(metadata, MD.roles) ?? '')
    .split(',')
    .map((r) => r.trim())
    .filter(isRole);
  return {
    organizationId,
    userId,
    roles,
    requestId: first(metadata, MD.requestId) ?? crypto.randomUUID(),
    idempotencyKey: first(metadata, MD.idempotencyKey),
  };
}
