import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { DomainError } from '@crm/platform';
import { assertPlausibleBirthDate, distinctTags, marketingPreferences, MARKETING_CHANNELS, socialProfiles } from './customer.rules.ts';

const T0 = new Date('2026-11-01T10:00:00.000Z');
const T1 = new Date('2026-11-21T12:00:00.000Z');

function fields(fn: () => unknown): string[] {
  try {
    fn();
  } catch (error) {
    if (error instanceof DomainError) return error.violations.map((d) => d.field);
    throw error;
  }
  throw new Error('expected a DomainError');
}

describe('marketing preferences', () => {
  it('stamps a channel with the time its consent is first recorded, given or withdrawn', () => {
    const first = marketingPreferences({ newsletter: true, promotions: false }, null, T0);
    expect(first).toEqual({ newsletter: { granted: true, changedAt: T0.toISOString() }, promotions: { granted: false, changedAt: T0.toISOString() } });
    const second = marketingPreferences({ newsletter: false, promotions: false, reminders: true }, first, T1);
    expect(second).toEqual({
      newsletter: { granted: false, changedAt: T1.toISOString() },
      promotions: { granted: false, changedAt: T0.toISOString() }, // unchanged: the time it was withdrawn stays
      reminders: { granted: true, changedAt: T1.toISOString() },
    });
  });

  it('keeps channels not written, accepts what a read returned, and never takes a client-sent time', () => {
    const stored = { newsletter: { granted: true, changedAt: T0.toISOString() } };
    expect(marketingPreferences({ birthdayMessages: true }, stored, T1)).toEqual({
      ...stored,
      birthdayMessages: { granted: true, changedAt: T1.toISOString() },
    });
    expect(marketingPreferences({ newsletter: { granted: true, changedAt: '1999-01-01T00:00:00.000Z' } }, stored, T1)).toEqual(stored);
    expect(marketingPreferences({ newsletter: { granted: false, changedAt: '1999-01-01T00:00:00.000Z' } }, stored, T1)).toEqual({
      newsletter: { granted: false, changedAt: T1.toISOString() },
    });
  });

  it('refuses unknown channels and values that are not booleans, naming each', () => {
    expect(fields(() => marketingPreferences({ sms: true, newsletter: 'yes' }, null, T0))).toEqual([
      'marketingPreferences.sms',
      'marketingPreferences.newsletter',
    ]);
  });

  it('never throws anything but a validation error, whatever the input', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue()), (input) => {
        try {
          const out = marketingPreferences(input, null, T0);
          for (const [key, consent] of Object.entries(out ?? {})) {
            expect(MARKETING_CHANNELS).toContain(key);
            expect(typeof consent.granted).toBe('boolean');
          }
        } catch (error) {
          expect(error).toBeInstanceOf(DomainError);
        }
      }),
    );
  });
});

describe('social profiles', () => {
  it('keeps trimmed handles and URLs per network', () => {
    expect(socialProfiles({ linkedin: ' https://www.linkedin.com/in/ada ', x: '@ada' })).toEqual({ linkedin: 'https://www.linkedin.com/in/ada', x: '@ada' });
    expect(socialProfiles({})).toBeNull();
  });

  it('refuses bad network names, empty or long values and broken URLs', () => {
    expect(fields(() => socialProfiles({ LinkedIn: 'a', x: '', github: 'x'.repeat(501), web: 'https://' }))).toEqual([
      'socialProfiles.LinkedIn',
      'socialProfiles.x',
      'socialProfiles.github',
      'socialProfiles.web',
    ]);
  });
});

describe('date of birth', () => {
  it('lies between 1900 and today', () => {
    expect(() => assertPlausibleBirthDate('1990-05-17', T1)).not.toThrow();
    expect(() => assertPlausibleBirthDate(null, T1)).not.toThrow();
    expect(fields(() => assertPlausibleBirthDate('2026-11-22', T1))).toEqual(['dateOfBirth']);
    expect(fields(() => assertPlausibleBirthDate('1899-12-31', T1))).toEqual(['dateOfBirth']);
  });
});

describe('tags', () => {
  it('are assigned once, whatever the case of the id', () => {
    const id = '0193a5b2-7c4e-7d3a-9f1e-2b8c4d6e8f10';
    expect(distinctTags([id, id.toUpperCase(), id])).toEqual([id]);
  });
});
