import { describe, expect, it } from '@jest/globals';
import { schemaDrift } from '@crm/testing';
import { analyticsSchema } from '../src/app.ts';

describe('analytics schema', () => {
  it('is exactly what the entities describe once the committed migrations ran', async () => {
    expect(await schemaDrift(analyticsSchema)).toBe('');
  });
});
