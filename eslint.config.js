import js from '@eslint/js';
import nx from '@nx/eslint-plugin';
import tseslint from 'typescript-eslint';

/**
 * Lint: typescript-eslint recommended + no `any`, and Nx module boundaries — apps import libs,
 * libs never import apps, services never import each other; tools (dev, testing) may import apps.
 */
export default tseslint.config(
  { ignores: ['**/node_modules/**', 'libs/contracts/src/gen/**', 'tmp/**', 'dist/**', 'coverage/**', '.nx/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    plugins: { '@nx': nx },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      // a closure may read a variable assigned once later (e.g. routes filled in after listen())
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@nx/enforce-module-boundaries': [
        'error',
        {
          allow: [],
          // main.ts loads telemetry first, then the app (and the platform) dynamically
          checkDynamicDependenciesExceptions: ['platform'],
          depConstraints: [
            { sourceTag: 'type:app', onlyDependOnLibsWithTags: ['type:platform', 'type:contracts'] },
            { sourceTag: 'type:platform', onlyDependOnLibsWithTags: ['type:platform', 'type:contracts'] },
            { sourceTag: 'type:contracts', onlyDependOnLibsWithTags: ['type:contracts'] },
            { sourceTag: 'type:tool', onlyDependOnLibsWithTags: ['type:tool', 'type:app', 'type:platform', 'type:contracts'] },
            { sourceTag: 'scope:contacts', onlyDependOnLibsWithTags: ['scope:contacts', 'type:platform', 'type:contracts', 'type:tool'] },
            { sourceTag: 'scope:analytics', onlyDependOnLibsWithTags: ['scope:analytics', 'type:platform', 'type:contracts', 'type:tool'] },
            { sourceTag: 'scope:gateway', onlyDependOnLibsWithTags: ['scope:gateway', 'type:platform', 'type:contracts', 'type:tool'] },
            { sourceTag: 'scope:pipeline', onlyDependOnLibsWithTags: ['scope:pipeline', 'type:platform', 'type:contracts'] },
            { sourceTag: 'scope:quotes', onlyDependOnLibsWithTags: ['scope:quotes', 'type:platform', 'type:contracts'] },
            { sourceTag: 'scope:activities', onlyDependOnLibsWithTags: ['scope:activities', 'type:platform', 'type:contracts'] },
          ],
        },
      ],
    },
  },
  {
    // integration specs boot neighbouring services through the testing tool
    files: ['apps/*/test/**/*.ts'],
    rules: { '@nx/enforce-module-boundaries': 'off' },
  },
);
