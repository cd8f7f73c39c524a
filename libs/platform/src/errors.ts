/**
 * Domain errors: thrown inside services with a stable code, mapped once to gRPC status at the gRPC
 * edge ({@link ./grpc/status.ts}) and once to problem+json at the gateway.
 */

/**
 * What kind of failure a {@link DomainError} is. Each kind has exactly one gRPC status and one
 * HTTP status (see the mapping tables in grpc/status.ts and the gateway's problem module).
 */
export type DomainErrorKind =
  | 'invalid_argument' // 400: malformed input
  | 'not_found' // 404: absent, or owned by another organization
  | 'conflict' // 409: duplicate / unique constraint
  | 'precondition_failed' // 412: stale version (optimistic lock)
  | 'rule_violation' // 422: a business rule forbids it
  | 'permission_denied' // 403: role or ownership does not allow it
  | 'unauthenticated' // 401
  | 'unavailable'; // 503: dependency down, retry later

/** One field-level problem, `field` in the API's camelCase naming (e.g. `parentCompanyId`). */
export interface FieldViolation {
  field: string;
  message: string;
}

/**
 * An expected failure with a stable machine-readable `code` (SCREAMING_SNAKE_CASE, e.g.
 * `COMPANY_HIERARCHY_CYCLE`) and an optional list of field violations.
 */
export class DomainError extends Error {
  readonly kind: DomainErrorKind;
  readonly code: string;
  readonly violations: readonly FieldViolation[];

  constructor(kind: DomainErrorKind, code: string, message: string, violations: readonly FieldViolation[] = []) {
    super(message);
    this.name = 'DomainError';
    this.kind = kind;
    this.code = code;
    this.violations = violations;
  }
}

/** `NOT_FOUND` for a record that is absent — or belongs to another organization (never 403). */
export function notFound(entity: string, id: string): DomainError {
  return new DomainError('not_found', `${entity.toUpperCase()}_NOT_FOUND`, `${entity} ${id} not found`);
}

/** Stale `expected_version`: the caller must re-read and retry. */
export function versionMismatch(entity: string, expected: bigint | string, actual: bigint | string): DomainError {
  return new DomainError('precondition_failed', 'VERSION_MISMATCH', `${entity} is at version ${actual}, not ${expected}`);
}

/** Narrowing helper for catch blocks. */
export function isDomainError(error: unknown): error is DomainError {
  return error instanceof DomainError;
}
