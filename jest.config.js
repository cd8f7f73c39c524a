import { basePreset } from './jest.preset.js';

/** Two projects: fast unit specs beside the code, and integration specs against real Postgres/NATS/gRPC. */
export default {
  // integration specs boot real services against Postgres and NATS; fault tests wait for recovery
  testTimeout: 60_000,
  projects: [
    { ...basePreset, displayName: 'unit', testMatch: ['<rootDir>/{apps,libs,tools}/*/src/**/*.spec.ts'] },
    {
      ...basePreset,
      displayName: 'integration',
      testMatch: ['<rootDir>/{apps,libs,tools}/*/test/**/*.int.spec.ts'],
    },
  ],
};
