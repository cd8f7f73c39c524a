import { describe, expect, it } from '@jest/globals';
import { schemaDrift } from '@crm/testing';
import { gatewaySchema } from '../src/app.ts';

describe('gateway schema', () => {
  it('is exactly what the entities describe once the committed migrations ran', async () => {
    expect(await schemaDrift(gatewaySchema)).toBe('');
  });
});
