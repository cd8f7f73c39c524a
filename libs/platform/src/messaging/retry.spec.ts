import { runInNewContext } from 'node:vm';
import { describe, expect, it } from '@jest/globals';
import { isDatabaseUnavailable, resolveBackoff, retryDelayMs, toError } from './retry.ts';

/** An error shaped like node-postgres' DatabaseError (SQLSTATE in `code`). */
function pgError(code: string, message = 'boom'): Error {
  return Object.assign(new Error(message), { code });
}

describe('retryDelayMs', () => {
  it('doubles from the initial delay and stops at the cap', () => {
    const backoff = { initialDelayMs: 100, maxDelayMs: 1000 };
    expect([1, 2, 3, 4, 5, 6].map((n) => retryDelayMs(n, backoff))).toEqual([100, 200, 400, 800, 1000, 1000]);
  });

  it('stays finite for absurd attempt counts and defaults to 100 ms … 10 s', () => {
    expect(retryDelayMs(1)).toBe(100);
    expect(retryDelayMs(10_000)).toBe(10_000);
    expect(retryDelayMs(0)).toBe(100);
  });

  it('takes the default for a field left undefined', () => {
    expect(resolveBackoff({ initialDelayMs: undefined, maxDelayMs: 50 })).toEqual({ initialDelayMs: 100, maxDelayMs: 50 });
  });
});

describe('isDatabaseUnavailable', () => {
  it.each([
    ['57P01 admin shutdown (pg_terminate_backend)', pgError('57P01', 'terminating connection due to administrator command')],
    ['57P03 cannot connect now', pgError('57P03')],
    ['08006 connection failure', pgError('08006')],
    ['53300 too many connections', pgError('53300')],
    ['ECONNREFUSED', pgError('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:5432')],
    ['a dropped connection', new Error('Connection terminated unexpectedly')],
    ['a dead client', new Error('Client has encountered a connection error and is not queryable')],
    ['a pool that cannot connect in time', new Error('timeout exceeded when trying to connect')],
    ['a wrapped cause', new Error('transaction failed', { cause: pgError('ECONNRESET') })],
  ])('is true for %s', (_name, err) => {
    expect(isDatabaseUnavailable(err)).toBe(true);
  });

  it.each([
    ['a unique violation', pgError('23505', 'duplicate key value violates unique constraint')],
    ['a deadlock (the event is retried by nak instead)', pgError('40P01', 'deadlock detected')],
    ['an invalid uuid', pgError('22P02', 'invalid input syntax for type uuid')],
    ['a handler bug', new TypeError("Cannot read properties of undefined (reading 'id')")],
    ['no error at all', undefined],
  ])('is false for %s', (_name, err) => {
    expect(isDatabaseUnavailable(err)).toBe(false);
  });

  it('reads errors of another realm by their shape', () => {
    const foreign: unknown = runInNewContext('Object.assign(new Error("connect ECONNRESET"), { code: "ECONNRESET" })');
    expect(foreign instanceof Error).toBe(false);
    expect(isDatabaseUnavailable(foreign)).toBe(true);
  });
});

describe('toError', () => {
  it('keeps an Error of this realm as it is', () => {
    const err = new Error('x');
    expect(toError(err)).toBe(err);
  });

  it('turns an error of another realm into a local one with its message, code and cause', () => {
    const foreign: unknown = runInNewContext('Object.assign(new Error("connect ECONNRESET"), { code: "ECONNRESET" })');
    const local = toError(foreign);
    expect(local).toBeInstanceOf(Error);
    expect(local.message).toBe('connect ECONNRESET');
    expect((local as Error & { code?: string }).code).toBe('ECONNRESET');
    expect(local.cause).toBe(foreign);
  });

  it('wraps a thrown non-error', () => {
    expect(toError('plain').message).toBe('plain');
  });
});
