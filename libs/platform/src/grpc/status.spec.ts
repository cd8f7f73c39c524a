import { describe, expect, it } from '@jest/globals';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { DomainError } from '../errors.ts';
import { fromServiceError, toServiceError } from './status.ts';

function asServiceError(mapped: ReturnType<typeof toServiceError>): ServiceError {
  return Object.assign(new Error(mapped.details), { code: mapped.code, details: mapped.details ?? '', metadata: mapped.metadata ?? new Metadata() });
}

describe('domain error ⇄ gRPC status', () => {
  it('carries kind, code and field violations through trailers', () => {
    const original = new DomainError('rule_violation', 'COMPANY_HIERARCHY_CYCLE', 'cycle', [{ field: 'parentCompanyId', message: 'loop' }]);
    const mapped = toServiceError(original);
    expect(mapped.code).toBe(status.OUT_OF_RANGE);
    const back = fromServiceError(asServiceError(mapped));
    expect(back).toBeInstanceOf(DomainError);
    expect(back).toMatchObject({ kind: 'rule_violation', code: 'COMPANY_HIERARCHY_CYCLE', violations: [{ field: 'parentCompanyId', message: 'loop' }] });
  });

  it('hides unexpected errors behind INTERNAL', () => {
    expect(toServiceError(new Error('password=hunter2'))).toEqual({ code: status.INTERNAL, details: 'internal error' });
  });

  it('turns an unreachable service into `unavailable`', () => {
    const err = Object.assign(new Error('down'), { code: status.UNAVAILABLE, details: 'connect refused', metadata: new Metadata() });
    expect(fromServiceError(err)).toMatchObject({ kind: 'unavailable', code: 'SERVICE_UNAVAILABLE' });
  });
});

describe('toServiceError for a database outage', () => {
  it('answers UNAVAILABLE (retryable, 503 at the gateway) instead of INTERNAL', () => {
    const terminated = Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' });
    expect(toServiceError(terminated)).toMatchObject({ code: status.UNAVAILABLE });
    expect(fromServiceError({ ...toServiceError(terminated), message: '' })).toMatchObject({ kind: 'unavailable', code: 'DATABASE_UNAVAILABLE' });
    expect(toServiceError(new Error('a bug'))).toMatchObject({ code: status.INTERNAL });
  });
});
