import { Linter } from 'eslint';
import tseslint from 'typescript-eslint';
import { describe, expect, it } from 'vitest';
// @ts-expect-error -- the lint configuration is plain JavaScript without type declarations
import { LAYERS, layering } from '../../eslint.config.mjs';

const layers = LAYERS as string[][];

/** The layering rule alone, run on a one-line probe file placed in `folder`. */
function refusals(folder: string, importPath: string): string[] {
  const linter = new Linter({ configType: 'flat' });
  const config = [{ files: ['**/*.ts'], languageOptions: { parser: tseslint.parser } }, ...(layering as Linter.Config[])];
  return linter
    .verify(`import { probe } from '${importPath}';\nexport { probe };\n`, config, `src/${folder}/probe.ts`)
    .map((message) => message.message);
}

describe('import layering (eslint no-restricted-imports)', () => {
  it('refuses an import from a higher layer, from any depth inside the folder', () => {
    expect(refusals('common', '../authz/request-authorizer.service')).toHaveLength(1);
    expect(refusals('session', '../authz/admin-scope')).toHaveLength(1);
    expect(refusals('identity', '../session/session.repository')).toHaveLength(1);
    expect(refusals('authn/mfa', '../../admin/users-admin.service')).toHaveLength(1);
    expect(refusals('admin', '../proxy/http-relay')).toHaveLength(1);
  });

  it('refuses imports between sibling feature folders of one layer, and of the app wiring', () => {
    expect(refusals('admin', '../routing/routing.service')).toHaveLength(1);
    expect(refusals('routing', '../admin/admin.module')).toHaveLength(1);
    expect(refusals('session', '../app.module')).toHaveLength(1);
  });

  it('lets a folder import lower layers, its own files and its infrastructure neighbours', () => {
    expect(refusals('admin', '../authn/abuse-limiter.service')).toEqual([]);
    expect(refusals('authn/mfa', '../../session/session.service')).toEqual([]);
    expect(refusals('authz', './assignment.repository')).toEqual([]);
    expect(refusals('common', '../observability/logger')).toEqual([]);
    expect(refusals('observability', '../database/prisma.service')).toEqual([]);
    expect(refusals('proxy', '../generated/prisma/client')).toEqual([]);
  });

  it('places every folder of src/ in exactly one layer', async () => {
    const { readdirSync } = await import('node:fs');
    const folders = readdirSync('src', { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => entry.name)
      .sort();
    expect(layers.flat().sort()).toEqual(folders);
  });
});
