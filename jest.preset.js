/**
 * Shared Jest settings: TypeScript through SWC, emitted as native ES modules
 * (run with NODE_OPTIONS=--experimental-vm-modules; MikroORM 7 and jose 6 are ESM-only).
 */
export const swcTransform = {
  '^.+\\.ts$': [
    '@swc/jest',
    {
      jsc: { parser: { syntax: 'typescript' }, target: 'es2024', keepClassNames: true },
      module: { type: 'es6' },
      sourceMaps: 'inline',
    },
  ],
};

export const basePreset = {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  transform: swcTransform,
  moduleFileExtensions: ['ts', 'js', 'mjs', 'cjs', 'json'],
};
