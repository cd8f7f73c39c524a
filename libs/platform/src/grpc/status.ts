import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { DomainError, type DomainErrorKind, type FieldViolation } from '../errors.ts';
import { isDatabaseUnavailable } from '../messaging/retry.ts';

/** The one mapping of domain error kinds to gRPC status codes (and back). */
const KIND_TO_STATUS: Record<DomainErrorKind, status> = {
  invalid_argument: status.INVALID_ARGUMENT,
  not_found: status.NOT_FOUND,
  conflict: status.ALREADY_EXISTS,
  precondition_failed: status.FAILED_PRECONDITION,
  rule_violation: status.OUT_OF_RANGE,
  permission_denied: status.PERMISSION_DENIED,
  unauthenticated: status.UNAUTHENTICATED,
  unavailable: status.UNAVAILABLE,
};

/** Trailer keys carrying the stable error code, kind and field violations (JSON). */
export const ERROR_CODE_KEY = 'x-error-code';
export const ERROR_KIND_KEY = 'x-error-kind';
export const ERROR_VIOLATIONS_KEY = 'x-error-violations';

/** gRPC status code for a domain error kind. */
export function grpcStatusOf(kind: DomainErrorKind): status {
  return KIND_TO_STATUS[kind];
}

/**
 * Turns any thrown value into the `{ code, details, metadata }` a grpc-js callback takes. Domain
 * errors keep their code and violations in trailers; anything else is INTERNAL with a generic
 * message (the real one is logged by the caller, never sent).
 */
export function toServiceError(error: unknown): Partial<ServiceError> & { code: status } {
  if (error instanceof DomainError) {
    const metadata = new Metadata();
    metadata.set(ERROR_CODE_KEY, error.code);
    metadata.set(ERROR_KIND_KEY, error.kind);
    if (error.violations.length > 0) metadata.set(ERROR_VIOLATIONS_KEY, JSON.stringify(error.violations));
    return { code: KIND_TO_STATUS[error.kind], details: error.message, metadata };
  }
  // the service's own database is down or unreachable: a retry may succeed, so say so (503 at the gateway)
  if (isDatabaseUnavailable(error)) return toServiceError(new DomainError('unavailable', 'DATABASE_UNAVAILABLE', 'the service cannot reach its database'));
  return { code: status.INTERNAL, details: 'internal error' };
}

function isServiceError(error: unknown): error is ServiceError {
  return typeof error === 'object' && error !== null && 'code' in error && 'metadata' in error;
}

/**
 * Client side: rebuilds the {@link DomainError} a service threw from a grpc-js ServiceError, so
 * the gateway maps errors once. Transport failures (UNAVAILABLE, DEADLINE_EXCEEDED) become
 * `unavailable`; anything unrecognised is returned as is.
 */
export function fromServiceError(error: unknown): unknown {
  if (!isServiceError(error)) return error;
  const kindRaw = error.metadata.get(ERROR_KIND_KEY)[0];
  const code = error.metadata.get(ERROR_CODE_KEY)[0];
  const kind = typeof kindRaw === 'string' && Object.hasOwn(KIND_TO_STATUS, kindRaw) ? (kindRaw as DomainErrorKind) : undefined;
  if (kind && typeof code === 'string') {
    const raw = error.metadata.get(ERROR_VIOLATIONS_KEY)[0];
    const violations = typeof raw === 'string' ? (JSON.parse(raw) as FieldViolation[]) : [];
    return new DomainError(kind, code, error.details, violations);
  }
  if (error.code === status.UNAVAILABLE || error.code === status.DEADLINE_EXCEEDED) {
    return new DomainError('unavailable', 'SERVICE_UNAVAILABLE', `upstream service unavailable: ${error.details}`);
  }
  return error;
}
