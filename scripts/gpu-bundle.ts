/**
 * `npm run gpu-bundle [-- --out DIR]`: a self-contained directory (default dist/gpu-bundle) that a GPU machine
 * with nothing but `node` (>= 20) runs as `./gpu-check.sh`: the engine, model, parity check and bench bundled by
 * esbuild with tfjs-core, the cpu and webgpu backends and Dawn's JS, plus the linux-x64 `dawn.node` (the one
 * native file; other platforms' binaries are left out to stay well under ~60 MiB). The wasm backend and
 * tfjs-node(-gpu) are not inside: `auto` there reports them as absent, and the check compares webgpu with cpu.
 */
import { parseArgs } from 'node:util';
import { copyFileSync, mkdirSync, rmSync, readdirSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({ options: { out: { type: 'string', default: join(root, 'dist', 'gpu-bundle') } } });
const out = resolve(args.out!);
const require = createRequire(import.meta.url);

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

await build({
  entryPoints: { 'gpu-check': join(root, 'scripts/gpu-check.ts'), 'bench-engine': join(root, 'scripts/bench-engine.ts') },
  outdir: out,
  outExtension: { '.js': '.mjs' },
  bundle: true,
  splitting: true, // the two entries share one chunk of tfjs + engine + model
  format: 'esm',
  platform: 'node',
  target: 'node20',
  minify: true,
  legalComments: 'none',
  // not in the bundle by design (see the module comment); loaded with a dynamic import that fails cleanly
  external: ['@tensorflow/tfjs-backend-wasm'],
  // CommonJS inside an ESM bundle (tfjs-core's node build) needs a require
  banner: { js: "import { createRequire as __mfCreateRequire } from 'node:module'; const require = __mfCreateRequire(import.meta.url);" },
  // tfjs packages declare "sideEffects" lists that omit their node builds; honouring them would drop the
  // backend registrations (import '@tensorflow/tfjs-backend-cpu' is all side effect)
  ignoreAnnotations: true,
  logLevel: 'warning',
});

// webgpu's index.js loads dist/<platform>-<arch>/dawn.node relative to itself, i.e. to the bundle's chunk
const dawnDir = join(dirname(require.resolve('webgpu/package.json')), 'dist', 'linux-x64');
mkdirSync(join(out, 'dist', 'linux-x64'), { recursive: true });
copyFileSync(join(dawnDir, 'dawn.node'), join(out, 'dist', 'linux-x64', 'dawn.node'));
copyFileSync(join(root, 'scripts/gpu-check.sh'), join(out, 'gpu-check.sh'));
chmodSync(join(out, 'gpu-check.sh'), 0o755);
// the bundle is ESM and must not inherit a parent directory's package.json "type"
writeFileSync(join(out, 'package.json'), JSON.stringify({ name: 'manyfold-gpu-check', private: true, type: 'module' }, null, 2) + '\n');

function sizeOf(p: string): number {
  const st = statSync(p);
  if (!st.isDirectory()) return st.size;
  return readdirSync(p).reduce((a, f) => a + sizeOf(join(p, f)), 0);
}
const bytes = sizeOf(out);
console.log(`wrote ${out}: ${(bytes / 2 ** 20).toFixed(1)} MiB (${readdirSync(out).join(', ')})`);
if (bytes > 60 * 2 ** 20) {
  console.error(`bundle is ${(bytes / 2 ** 20).toFixed(1)} MiB, over the 60 MiB budget`);
  process.exit(1);
}
