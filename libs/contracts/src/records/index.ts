/** The records kit's declaration side: field kinds, rules, `defineRecord`. */
export * from './fields.ts';
export * from './schemas.ts';
export * from './record.ts';
export * from './custom-fields.ts';
