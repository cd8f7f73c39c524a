import { z } from 'zod';

/** Money: decimal string + ISO 4217 code (architecture "Data rules"). */
export const moneySchema = z
  .strictObject({
    amount: z.string().regex(/^-?\d{1,15}(\.\d{1,4})?$/, 'a decimal string such as "1250.00"'),
    currency: z.string().regex(/^[A-Z]{3}$/, 'an ISO 4217 code such as "USD"'),
  })
  .meta({ id: 'Money', example: { amount: '1250.00', currency: 'EUR' } });

export const addressSchema = z
  .strictObject({
    street: z.string().max(200).nullish(),
    city: z.string().max(100).nullish(),
    region: z.string().max(100).nullish(),
    postalCode: z.string().max(20).nullish(),
    country: z.string().max(100).nullish(),
  })
  .meta({ id: 'PostalAddress' });

/** Audit fields every representation carries. */
export const auditShape = {
  ownerId: z.string(),
  createdBy: z.string(),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
  version: z.int().describe('optimistic-locking version; the ETag is its quoted value'),
};

/** proto Timestamp (Date) → ISO 8601 UTC. */
export function iso(date: Date | undefined): string {
  return (date ?? new Date(0)).toISOString();
}
