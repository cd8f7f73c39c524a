import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { DUPLICATE_WEIGHTS, NAME_SIMILARITY_FLOOR, scoreDuplicate, validThreshold, type DuplicateEvidence, type DuplicateObject } from './duplicate.rules.ts';

const none: DuplicateEvidence = { email: false, phone: false, domain: false, nameSimilarity: 0 };
const evidence = fc.record({ email: fc.boolean(), phone: fc.boolean(), domain: fc.boolean(), nameSimilarity: fc.double({ min: 0, max: 1, noNaN: true }) });
const object = fc.constantFrom<DuplicateObject>('company', 'contact');

describe('scoreDuplicate', () => {
  it('gives the documented weights: e-mail alone reaches the default threshold, phone or name alone does not', () => {
    expect(scoreDuplicate('contact', { ...none, email: true })).toEqual({ score: 80, reasons: [{ rule: 'email', weight: 80 }] });
    expect(scoreDuplicate('contact', { ...none, phone: true })).toEqual({ score: 40, reasons: [{ rule: 'phone', weight: 40 }] });
    expect(scoreDuplicate('contact', { ...none, nameSimilarity: 1 })).toEqual({ score: 50, reasons: [{ rule: 'name', weight: 50 }] });
    expect(scoreDuplicate('company', { ...none, domain: true })).toEqual({ score: 80, reasons: [{ rule: 'domain', weight: 80 }] });
    expect(scoreDuplicate('company', { ...none, email: true })).toEqual({ score: 60, reasons: [{ rule: 'email', weight: 60 }] });
  });

  it('adds weights, heaviest first, and caps the sum at 100', () => {
    expect(scoreDuplicate('contact', { ...none, phone: true, nameSimilarity: 1 })).toEqual({
      score: 90,
      reasons: [
        { rule: 'name', weight: 50 },
        { rule: 'phone', weight: 40 },
      ],
    });
    expect(scoreDuplicate('contact', { email: true, phone: true, domain: false, nameSimilarity: 0.8 })).toEqual({
      score: 100,
      reasons: [
        { rule: 'email', weight: 80 },
        { rule: 'phone', weight: 40 },
        { rule: 'name', weight: 40 },
      ],
    });
  });

  it('scales a name by its similarity from the floor, and ignores it below', () => {
    expect(scoreDuplicate('contact', { ...none, nameSimilarity: 0.62 }).reasons).toEqual([{ rule: 'name', weight: 31 }]);
    expect(scoreDuplicate('contact', { ...none, nameSimilarity: NAME_SIMILARITY_FLOOR })).toMatchObject({ score: 30 });
    expect(scoreDuplicate('contact', { ...none, nameSimilarity: 0.59 })).toEqual({ score: 0, reasons: [] });
  });

  it('ignores a domain for contacts (their e-mail domain is no signal)', () => {
    expect(scoreDuplicate('contact', { ...none, domain: true })).toEqual({ score: 0, reasons: [] });
  });

  it('always scores 0..100 as the capped sum of its reasons, each reason a rule of the object with a weight 1..its maximum', () => {
    fc.assert(
      fc.property(object, evidence, (o, e) => {
        const { score, reasons } = scoreDuplicate(o, e);
        expect(score).toBe(
          Math.min(
            100,
            reasons.reduce((s, r) => s + r.weight, 0),
          ),
        );
        expect(score).toBeGreaterThanOrEqual(0);
        expect(score).toBeLessThanOrEqual(100);
        for (const r of reasons) {
          expect(r.weight).toBeGreaterThanOrEqual(1);
          expect(r.weight).toBeLessThanOrEqual(DUPLICATE_WEIGHTS[o][r.rule] ?? 0);
        }
        expect(new Set(reasons.map((r) => r.rule)).size).toBe(reasons.length);
        expect(reasons.map((r) => r.weight)).toEqual([...reasons.map((r) => r.weight)].sort((a, b) => b - a));
      }),
    );
  });

  it('never lowers the score when more evidence agrees (monotone)', () => {
    fc.assert(
      fc.property(object, evidence, evidence, (o, a, b) => {
        const more = {
          email: a.email || b.email,
          phone: a.phone || b.phone,
          domain: a.domain || b.domain,
          nameSimilarity: Math.max(a.nameSimilarity, b.nameSimilarity),
        };
        expect(scoreDuplicate(o, more).score).toBeGreaterThanOrEqual(scoreDuplicate(o, a).score);
      }),
    );
  });

  it('treats a non-finite similarity as none', () => {
    expect(scoreDuplicate('contact', { ...none, nameSimilarity: Number.NaN })).toEqual({ score: 0, reasons: [] });
  });
});

describe('validThreshold', () => {
  it('accepts whole numbers 1..100 only', () => {
    expect([1, 80, 100].map(validThreshold)).toEqual([1, 80, 100]);
    expect([0, 101, 79.5, '80', null, undefined, Number.NaN].map(validThreshold)).toEqual([
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
    ]);
  });
});
