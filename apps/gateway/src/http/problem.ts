import type { ErrorRequestHandler, Response } from 'express';
import { DomainError, type DomainErrorKind, type FieldViolation, type Logger } from '@crm/platform';
import { z } from 'zod';

/** RFC 9457 problem details, as sent with `content-type: application/problem+json`. */
export interface Problem {
  /** Stable identifier of the problem type, e.g. `urn:crm:problem:validation-error`. */
  type: string;
  title: string;
  status: number;
  detail?: string;
  instance?: string;
  /** Stable machine code from the service (e.g. `COMPANY_HIERARCHY_CYCLE`). */
  code?: string;
  /** Field-level problems; `field` is a dotted camelCase path into the request. */
  errors?: FieldViolation[];
}

/** The one mapping of domain error kinds to HTTP status and problem type (architecture "REST conventions"). */
const KIND: Record<DomainErrorKind, { status: number; type: string; title: string }> = {
  invalid_argument: { status: 400, type: 'validation-error', title: 'Invalid request' },
  unauthenticated: { status: 401, type: 'unauthenticated', title: 'Authentication required' },
  permission_denied: { status: 403, type: 'forbidden', title: 'Not allowed' },
  not_found: { status: 404, type: 'not-found', title: 'Not found' },
  conflict: { status: 409, type: 'conflict', title: 'Conflict' },
  precondition_failed: { status: 412, type: 'precondition-failed', title: 'Precondition failed' },
  rule_violation: { status: 422, type: 'rule-violation', title: 'Business rule violated' },
  unavailable: { status: 503, type: 'unavailable', title: 'Service unavailable' },
};

/** Builds a problem object; `slug` becomes `urn:crm:problem:<slug>`. */
export function problem(status: number, slug: string, title: string, extra: Partial<Problem> = {}): Problem {
  return { type: `urn:crm:problem:${slug}`, title, status, ...extra };
}

/** Sends a problem as `application/problem+json`. */
export function sendProblem(res: Response, p: Problem, headers: Record<string, string> = {}): void {
  res.status(p.status).set(headers).type('application/problem+json').send(JSON.stringify(p));
}

/** A domain error as a problem. */
export function problemOf(error: DomainError, instance?: string): Problem {
  const k = KIND[error.kind];
  return problem(k.status, k.type, k.title, {
    detail: error.message,
    code: error.code,
    ...(instance ? { instance } : {}),
    ...(error.violations.length ? { errors: [...error.violations] } : {}),
  });
}

/** A zod failure as a 400 problem listing every field (dotted paths; unknown keys named). */
export function validationProblem(error: z.ZodError, where: 'body' | 'query' = 'body'): Problem {
  const errors: FieldViolation[] = [];
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) errors.push({ field: [...issue.path, key].join('.'), message: 'unknown field' });
    } else {
      errors.push({ field: issue.path.join('.') || where, message: issue.message });
    }
  }
  return problem(400, 'validation-error', 'Invalid request', { detail: `the request ${where} is not valid`, code: 'VALIDATION_FAILED', errors });
}

/** Last error handler: domain errors and body-parser errors become problems; anything else 500 (logged). */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (error: unknown, req, res, _next) => {
    if (error instanceof DomainError) return sendProblem(res, problemOf(error, req.originalUrl));
    if (error instanceof z.ZodError) return sendProblem(res, validationProblem(error));
    const status = typeof error === 'object' && error !== null && 'status' in error && typeof error.status === 'number' ? error.status : 500;
    if (status >= 400 && status < 500) {
      return sendProblem(
        res,
        problem(status, status === 413 ? 'payload-too-large' : 'bad-request', 'Bad request', { detail: error instanceof Error ? error.message : undefined }),
      );
    }
    logger.error({ err: error, url: req.originalUrl }, 'unhandled error');
    sendProblem(res, problem(500, 'internal', 'Internal error'));
  };
}
