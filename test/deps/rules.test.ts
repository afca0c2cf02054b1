/**
 * The dependency rules (.dependency-cruiser.cjs, run by `npm run deps` as the first step of `npm test`) catch
 * forbidden imports: dependency-cruiser's own CLI, with the project's config, over a small fixture tree laid out
 * like the repository, must report exactly the planted violations, let the allowed imports through, and exit
 * non-zero (which is what fails `npm test`).
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const require = createRequire(import.meta.url);

const REPO = resolve(import.meta.dirname, '../..');
const DEPCRUISE = join(REPO, 'node_modules/dependency-cruiser/bin/dependency-cruise.mjs');

/** file -> source; every import is relative, as in the repository */
const FIXTURE: Record<string, string> = {
  'package.json': '{ "type": "module" }\n',
  'tsconfig.json': JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true } }),
  'training/run.ts': 'export const runTraining = (): number => 1;\nexport type RunResult = number;\n',
  'test/helper.ts': 'export const helper = 1;\n',
  'src/api/app.ts': 'export const app = 1;\n',
  'src/model/m.ts': 'export const m = 1;\n',
  'src/probe/p.ts': 'export const p = 1;\n',
  // violations
  'src/engine/bad.ts': "import { runTraining } from '../../training/run.js';\nexport const x = runTraining();\n",
  // a type-only import beside a runtime one from the same module must not hide the runtime one
  'src/probe/mixed.ts': "import type { RunResult } from '../../training/run.js';\nimport { runTraining } from '../../training/run.js';\nexport const r: RunResult = runTraining();\n",
  'src/util/leaf.ts': "import { m } from '../model/m.js';\nexport const u = m;\n",
  'src/model/up.ts': "import { app } from '../api/app.js';\nexport const up = app;\n",
  'src/index/i.ts': "import { app } from '../api/app.js';\nexport const i = app;\n",
  'src/eval/e.ts': "import { p } from '../probe/p.js';\nexport const e = p;\n",
  'src/data/up.ts': "import { p } from '../probe/p.js';\nexport const up = p;\n",
  'src/attacks/at.ts': "import { p } from '../probe/p.js';\nexport const at = p;\n",
  'src/api/calls-up.ts': "import { c } from '../cli/cmd.js';\nexport const up = c;\n",
  'src/data/d.ts': "import { helper } from '../../test/helper.js';\nexport const d = helper;\n",
  'functions/entry.ts': "import { runTraining } from '../training/run.js';\nimport { app } from '../src/api/app.js';\nexport const f = runTraining() + app;\n",
  'src/augment/a.ts': "import { b } from './b.js';\nexport const a = (): number => b();\n",
  'src/augment/b.ts': "import { a } from './a.js';\nexport const b = (): number => a();\n",
  'src/publish/u.ts': "import { gone } from './missing.js';\nexport const u = gone;\n",
  // the Worker reaches Node's index factory (LanceDB) through a module it imports and that module's dynamic import
  'functions/worker.ts': "import { cf } from '../src/cloudflare/worker.js';\nexport const w = cf;\n",
  'src/cloudflare/worker.ts': "import { e } from '../edge/e.js';\nexport const cf = e;\n",
  'src/edge/e.ts': "export const e = async (): Promise<unknown> => import('../node/indexes.js');\n",
  'src/node/indexes.ts': 'export const idx = 1;\n',
  // the core reaches a runtime adapter; one runtime reaches another; an entry composes on its own
  'src/node/fs.ts': 'export const fs = 1;\n',
  'src/node/dir-bucket.ts': 'export const dirBucket = 1;\n',
  'src/aws/s3.ts': 'export const s3 = 1;\n',
  'src/edge/store.ts': "import { fs } from '../node/fs.js';\nexport const s = fs;\n",
  'src/cloudflare/r2.ts': "import { s3 } from '../aws/s3.js';\nexport const r2 = s3;\n",
  'src/node/uses-s3.ts': "import { s3 } from '../aws/s3.js';\nexport const u = s3;\n",
  'functions/node.ts': "import { fs } from '../src/node/fs.js';\nimport { app } from '../src/api/app.js';\nexport const n = fs + app;\n",
  // allowed: the CLI and `manyfold publish` use runtime adapters; Lambda (Node) the filesystem bucket; imports inside a runtime folder
  'src/cli/serve.ts': "import { fs } from '../node/fs.js';\nexport const serve = fs;\n",
  'src/publish/p.ts': "import { s3 } from '../aws/s3.js';\nexport const pub = s3;\n",
  'src/aws/lambda.ts': "import { dirBucket } from '../node/dir-bucket.js';\nimport { s3 } from './s3.js';\nexport const l = dirBucket + s3;\n",
  'src/node/server.ts': "import { fs } from './fs.js';\nimport { idx } from './indexes.js';\nexport const srv = fs + idx;\n",
  // allowed: type-only imports of training/, the CLI loading the trainer, a cycle through type-only imports
  'src/nightly/typed.ts': "export type Training = Pick<typeof import('../../training/run.js'), 'runTraining'>;\n",
  'src/eval/typed-only.ts': "import type { RunResult } from '../../training/run.js';\nexport const r: RunResult = 1;\n",
  'src/cli/cmd.ts': "import { runTraining } from '../../training/run.js';\nexport const c = runTraining();\n",
  'src/reindex/c.ts': "import type { D } from './d.js';\nexport type C = { d?: D };\nexport const c = 1;\n",
  'src/reindex/d.ts': "import type { C } from './c.js';\nexport type D = { c?: C };\nexport const d = 1;\n",
};

interface Violation {
  rule: { name: string };
  from: string;
  to: string;
}

let dir: string;
let violations: Violation[];
let npmRunDeps: { status: number | null; output: string };

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'manyfold-deps-'));
  for (const [file, text] of Object.entries(FIXTURE)) {
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    writeFileSync(join(dir, file), text);
  }
  copyFileSync(join(REPO, '.dependency-cruiser.cjs'), join(dir, '.dependency-cruiser.cjs'));
  // package.json's "deps" script as written, run from the fixture's root with the project's depcruise on PATH
  const script = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.deps;
  const env = { ...process.env, PATH: `${join(REPO, 'node_modules/.bin')}${delimiter}${process.env.PATH ?? ''}` };
  const r = spawnSync(script, { cwd: dir, env, shell: true, encoding: 'utf8' });
  npmRunDeps = { status: r.status, output: `${r.stdout}${r.stderr}` };
  // the same cruise with a machine-readable report (whose exit code is always 0)
  const j = spawnSync(process.execPath, [DEPCRUISE, 'src', 'training', 'functions', '--config', '.dependency-cruiser.cjs', '--output-type', 'json'], { cwd: dir, encoding: 'utf8' });
  if (!j.stdout) throw new Error(`depcruise printed nothing (exit ${j.status}): ${j.stderr}`);
  violations = (JSON.parse(j.stdout) as { summary: { violations: Violation[] } }).summary.violations;
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const found = (): string[] => violations.map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`).sort();

describe('dependency rules (.dependency-cruiser.cjs, dependency-cruiser CLI on a fixture tree)', () => {
  it('reports exactly the planted violations, one or more for every rule', () => {
    expect(found()).toEqual(
      [
        'src-not-to-training: src/engine/bad.ts -> training/run.ts',
        'engine-stays-low: src/engine/bad.ts -> training/run.ts',
        'src-not-to-training: src/probe/mixed.ts -> training/run.ts',
        'util-is-a-leaf: src/util/leaf.ts -> src/model/m.ts',
        'model-not-to-upper-layers: src/model/up.ts -> src/api/app.ts',
        'index-not-to-serving: src/index/i.ts -> src/api/app.ts',
        'eval-not-to-serving: src/eval/e.ts -> src/probe/p.ts',
        'attacks-not-to-upper-layers: src/attacks/at.ts -> src/probe/p.ts',
        'data-not-to-upper-layers: src/data/up.ts -> src/probe/p.ts',
        'api-not-to-its-callers: src/api/calls-up.ts -> src/cli/cmd.ts',
        'product-not-to-tests-or-scripts: src/data/d.ts -> test/helper.ts',
        'functions-are-thin-entries: functions/entry.ts -> training/run.ts',
        'functions-are-thin-entries: functions/entry.ts -> src/api/app.ts',
        'functions-are-thin-entries: functions/node.ts -> src/api/app.ts',
        'no-circular: src/augment/a.ts -> src/augment/b.ts',
        'not-to-unresolvable: src/publish/u.ts -> ./missing.js',
        'edge-bundle-without-lancedb: functions/worker.ts -> src/node/indexes.ts',
        'core-not-to-runtime-adapters: src/edge/e.ts -> src/node/indexes.ts',
        'core-not-to-runtime-adapters: src/edge/store.ts -> src/node/fs.ts',
        'runtime-adapters-apart: src/cloudflare/r2.ts -> src/aws/s3.ts',
        'runtime-adapters-apart: src/node/uses-s3.ts -> src/aws/s3.ts',
      ].sort(),
    );
    const rules = (require('../../.dependency-cruiser.cjs') as { forbidden: { name: string }[] }).forbidden.map((r) => r.name);
    expect(new Set(violations.map((v) => v.rule.name))).toEqual(new Set(rules));
  });

  it('lets type-only imports of training/, the CLI, publish, Lambda\'s filesystem bucket, imports within a runtime folder and type-only cycles through', () => {
    const from = new Set(violations.map((v) => v.from));
    for (const allowed of ['src/nightly/typed.ts', 'src/eval/typed-only.ts', 'src/cli/cmd.ts', 'src/reindex/c.ts', 'src/reindex/d.ts', 'src/api/app.ts', 'src/cli/serve.ts', 'src/publish/p.ts', 'src/aws/lambda.ts', 'src/node/server.ts', 'src/cloudflare/worker.ts']) {
      expect(from.has(allowed), allowed).toBe(false);
    }
  });

  it('`npm run deps` (package.json) exits non-zero on them, which fails `npm test`', () => {
    expect(npmRunDeps.output).toContain(`${found().length} dependency violations (${found().length} errors`);
    expect(npmRunDeps.status).toBe(found().length); // dependency-cruiser's exit code: the number of errors
  });
});
