import { describe, expect, it } from '@jest/globals';
import { decodeCursor, encodeCursor, pageSize } from './cursor.ts';

describe('keyset cursors', () => {
  it('round-trips the sort key', () => {
    expect(decodeCursor(encodeCursor({ id: 'abc' }), ['id'])).toEqual({ id: 'abc' });
  });
  it('rejects garbage and cursors missing a key with INVALID_CURSOR', () => {
    expect(() => decodeCursor('%%%', ['id'])).toThrow(expect.objectContaining({ code: 'INVALID_CURSOR' }));
    expect(() => decodeCursor(encodeCursor({ other: 'x' }), ['id'])).toThrow(expect.objectContaining({ kind: 'invalid_argument' }));
  });
  it('defaults the page size to 50 and caps it at 200', () => {
    expect(pageSize(undefined)).toBe(50);
    expect(pageSize(200)).toBe(200);
    expect(() => pageSize(201)).toThrow(expect.objectContaining({ code: 'INVALID_PAGE_SIZE' }));
  });
});
