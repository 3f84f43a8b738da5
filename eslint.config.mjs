import tseslint from 'typescript-eslint';

/**
 * The layers of src/, lowest first. A folder imports from lower layers only; inside the
 * infrastructure layer (index 1) its folders may also import each other. app.module.ts,
 * bootstrap.ts and main.ts wire everything and sit above every layer. Why this order: a
 * request flows observability → authz guard → controller → service → repository, and each
 * feature builds on the ones it names (sessions are of identities, authorization is of
 * sessions' principals, sign-in flows start sessions, admin administers all of them).
 * docs/decisions.md ("Table ownership and layering") says the same in prose.
 */
export const LAYERS = [
  ['config', 'generated'],
  ['common', 'observability', 'database', 'messaging', 'docs'],
  ['audit'],
  ['identity'],
  ['session'],
  ['authz'],
  ['authn'],
  ['admin', 'routing', 'limits'],
  ['proxy', 'retention'],
  ['rebalancing', 'forward'],
];
const INFRASTRUCTURE = 1;
const TOP = ['app.module', 'bootstrap', 'main'];

/** One no-restricted-imports override per folder: what it may not import. */
export const layering = LAYERS.flatMap((layer, index) =>
  layer.map((folder) => {
    const forbidden = [...LAYERS.slice(index + 1).flat(), ...(index === INFRASTRUCTURE ? [] : layer.filter((other) => other !== folder))];
    const patterns = [
      { regex: `^(\\.\\./)+(${TOP.join('|')})$`, message: 'Only main.ts and bootstrap.ts wire the app; nothing in a layer imports them.' },
    ];
    if (forbidden.length > 0) {
      patterns.push({
        regex: `^(\\.\\./)+(${forbidden.join('|')})(/|$)`,
        message: `src/${folder}/ may not import ${forbidden.join(', ')}: a layer imports only lower layers (LAYERS in eslint.config.mjs).`,
      });
    }
    return { files: [`src/${folder}/**/*.ts`], rules: { 'no-restricted-imports': ['error', { patterns }] } };
  }),
);

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'src/generated/**', 'coverage/**', 'data/**'] },
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.base],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/require-await': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      curly: ['error', 'multi-line'],
      eqeqeq: ['error', 'always', { null: 'ignore' }],
      'no-console': ['error', { allow: ['warn', 'error'] }],
    },
  },
  {
    files: ['test/**/*.ts', 'scripts/**'],
    rules: { 'no-console': 'off' },
  },
  ...layering,
);
