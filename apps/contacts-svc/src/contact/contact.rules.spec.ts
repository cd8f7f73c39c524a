import { describe, expect, it } from '@jest/globals';
import { normalizeContactFields } from './contact.rules.ts';

describe('normalizeContactFields', () => {
  it('lower-cases the email and trims names', () => {
    expect(normalizeContactFields({ firstName: ' Ada ', lastName: 'Lovelace', email: 'Ada@Example.COM' })).toMatchObject({
      firstName: 'Ada',
      email: 'ada@example.com',
    });
  });
  it('requires a name and a valid email and phone', () => {
    expect(() => normalizeContactFields({ firstName: '', lastName: ' ', email: 'nope', phone: 'call me' })).toThrow(
      expect.objectContaining({
        violations: [expect.objectContaining({ field: 'lastName' }), expect.objectContaining({ field: 'email' }), expect.objectContaining({ field: 'phone' })],
      }),
    );
  });
});
