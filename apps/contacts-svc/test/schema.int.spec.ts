import { describe, expect, it } from '@jest/globals';
import { schemaDrift } from '@crm/testing';
import { contactsSchema } from '../src/app.ts';

describe('contacts schema', () => {
  it('is exactly what the entities describe once the committed migrations ran', async () => {
    expect(await schemaDrift(contactsSchema)).toBe('');
  });
});
