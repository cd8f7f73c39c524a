import { describe, expect, it } from '@jest/globals';
import { assertHasAName } from './contact.rules.ts';

describe('assertHasAName', () => {
  it('accepts a first or a last name alone', () => {
    expect(() => assertHasAName('Ada', '')).not.toThrow();
    expect(() => assertHasAName('', 'Lovelace')).not.toThrow();
  });
  it('refuses a contact without any name, naming lastName', () => {
    expect(() => assertHasAName('', '')).toThrow(expect.objectContaining({ violations: [expect.objectContaining({ field: 'lastName' })] }));
  });
});
