import type { RequestHandler } from 'express';
import { isRole, runWithContext, type RequestContext, type Role } from '@crm/platform';
import { problem, sendProblem } from '../http/problem.ts';
import type { AccessTokenClaims } from './keycloak.auth.ts';

/** Organizations in a token's `organization` claim: id → alias. Entries without an id are skipped. */
export function organizationsOf(claims: AccessTokenClaims): Map<string, string> {
  const out = new Map<string, string>();
  const claim = claims.organization;
  if (claim && !Array.isArray(claim)) {
    for (const [alias, value] of Object.entries(claim)) if (value?.id) out.set(value.id, alias);
  }
  return out;
}

/**
 * Picks the tenant for a request (architecture "Tenancy and identity"): the token's only
 * organization, or — for a member of several — the one named by `X-Organization-Id`, which must
 * be among the token's. Returns a problem when none can be chosen.
 */
export function resolveOrganization(claims: AccessTokenClaims, header: string | undefined): { id: string } | { problem: ReturnType<typeof problem> } {
  const orgs = organizationsOf(claims);
  if (header) {
    return orgs.has(header)
      ? { id: header }
      : {
          problem: problem(403, 'organization-not-allowed', 'Not a member of this organization', {
            detail: 'X-Organization-Id names an organization the token does not carry',
          }),
        };
  }
  if (orgs.size === 1) return { id: [...orgs.keys()][0]! };
  if (orgs.size === 0) return { problem: problem(403, 'no-organization', 'No organization', { detail: 'the token carries no organization membership' }) };
  return {
    problem: problem(400, 'organization-required', 'Organization required', {
      detail: 'member of several organizations: send X-Organization-Id',
      errors: [{ field: 'X-Organization-Id', message: 'required for members of several organizations' }],
    }),
  };
}

/**
 * Middleware after authentication: builds the {@link RequestContext} (tenant, user, realm roles,
 * request id) and runs the rest of the request inside it, so gRPC calls carry it as metadata.
 */
export function tenantContext(): RequestHandler {
  return (req, res, next) => {
    const claims = res.locals['claims'] as AccessTokenClaims;
    const org = resolveOrganization(claims, req.get('x-organization-id') ?? undefined);
    if ('problem' in org) return sendProblem(res, org.problem);
    const roles = (claims.realm_access?.roles ?? []).filter(isRole);
    const ctx: RequestContext = { organizationId: org.id, userId: claims.sub, roles, requestId: String(res.locals['requestId']) };
    res.locals['ctx'] = ctx;
    runWithContext(ctx, () => next());
  };
}

/** Realm roles allowed to read, and to write (records; ownership is checked by the services). */
export const READ_ROLES: Role[] = ['crm-admin', 'crm-manager', 'crm-rep', 'crm-viewer'];
export const WRITE_ROLES: Role[] = ['crm-admin', 'crm-manager', 'crm-rep'];

/** 403 unless the caller holds one of `roles`. */
export function requireRole(...roles: Role[]): RequestHandler {
  return (_req, res, next) => {
    const ctx = res.locals['ctx'] as RequestContext;
    if (ctx.roles.some((r) => roles.includes(r))) return next();
    sendProblem(res, problem(403, 'forbidden', 'Not allowed', { detail: `requires one of the roles ${roles.join(', ')}` }));
  };
}
