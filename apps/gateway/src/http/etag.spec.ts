import { describe, expect, it } from '@jest/globals';
import { etagOf, expectedVersion } from './etag.ts';

describe('ETag / If-Match', () => {
  it('round-trips a version', () => {
    expect(expectedVersion(etagOf(7))).toBe(7);
  });
  it('treats absent and * as no precondition', () => {
    expect(expectedVersion(undefined)).toBeUndefined();
    expect(expectedVersion('*')).toBeUndefined();
  });
  it('never matches weak or malformed tags', () => {
    expect(expectedVersion('W/"7"')).toBeNull();
    expect(expectedVersion('7')).toBeNull();
  });
});
