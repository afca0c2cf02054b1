/**
 * Manyfold's dependency rules (docs/architecture.md, "Layers"), checked by `npm run deps` (part of `npm test`).
 * Each rule states the layering as it holds today; a new import that breaks one fails the build.
 *
 * Type-only imports (`import type`, `typeof import('...')` in a type position) vanish at compile time, so they
 * create no runtime dependency: the rules about training/ let them through; every other rule counts them too.
 */
const TYPE_ONLY = ['type-only', 'type-import'];

/** a path regex for the folders under src/ given by name */
const srcDirs = (...names) => `^src/(${names.join('|')})/`;

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'src-not-to-training',
      comment:
        'training/ sits above src/: only the CLI composition root (src/cli) loads the trainer. Elsewhere in src/ ' +
        'a type-only import is allowed (src/nightly/job.ts receives the trainer injected and names its type).',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/cli/' },
      to: { path: '^training/', dependencyTypesNot: TYPE_ONLY },
    },
    {
      name: 'util-is-a-leaf',
      comment: 'src/util holds helpers every layer may use; it imports nothing else from the project.',
      severity: 'error',
      from: { path: '^src/util/' },
      to: { path: '^(src|training|functions|scripts|test|infra)/', pathNot: '^src/util/' },
    },
    {
      name: 'engine-stays-low',
      comment:
        'src/engine (tfjs backends, kernels, ops, onnx writer) sits under the model: it may use src/util and the ' +
        'config schema (src/config.ts, for the backend names) and nothing above.',
      severity: 'error',
      from: { path: '^src/engine/' },
      to: {
        path: ['^src/', '^training/'],
        pathNot: ['^src/engine/', '^src/util/', '^src/config\\.ts$'],
      },
    },
    {
      name: 'model-not-to-upper-layers',
      comment: 'src/model (towers, tokenizers, artifacts) serves every consumer; it knows none of them.',
      severity: 'error',
      from: { path: '^src/model/' },
      to: { path: srcDirs('api', 'cli', 'eval', 'nightly', 'probe', 'edge', 'publish', 'reindex', 'attacks', 'augment', 'index') },
    },
    {
      name: 'data-not-to-upper-layers',
      comment: 'src/data (readers, image cache, scenes) is used by training, evaluation and serving; it uses none of them.',
      severity: 'error',
      from: { path: '^src/data/' },
      to: { path: srcDirs('api', 'cli', 'eval', 'nightly', 'probe', 'edge', 'publish', 'reindex', 'attacks', 'augment', 'index') },
    },
    {
      name: 'attacks-not-to-upper-layers',
      comment: 'src/attacks (goals, constraints, transformations, searches) run on the model; evaluation, augmentation and serving use them.',
      severity: 'error',
      from: { path: '^src/attacks/' },
      to: { path: srcDirs('api', 'cli', 'eval', 'nightly', 'probe', 'edge', 'publish', 'reindex', 'augment', 'index', 'data') },
    },
    {
      name: 'eval-not-to-serving',
      comment: 'src/eval (metrics, robust-recall engine, reports) is used by the API, the CLI, probes and the nightly gate.',
      severity: 'error',
      from: { path: '^src/eval/' },
      to: { path: srcDirs('api', 'cli', 'nightly', 'probe', 'edge', 'publish', 'reindex') },
    },
    {
      name: 'index-not-to-serving',
      comment: 'src/index (VectorIndex and its adapters) is storage: the API and the edge use it, not the reverse.',
      severity: 'error',
      from: { path: '^src/index/' },
      to: { path: srcDirs('api', 'cli', 'eval', 'nightly', 'probe', 'edge', 'publish', 'reindex') },
    },
    {
      name: 'api-not-to-its-callers',
      comment: 'src/api (the Hono app, service, store) is driven by the CLI, the nightly job and the runtime entries; it calls none of them.',
      severity: 'error',
      from: { path: '^src/api/' },
      to: { path: [srcDirs('cli', 'nightly'), '^training/'] },
    },
    {
      name: 'functions-are-thin-entries',
      comment:
        'functions/ (Node, Worker, Lambda entries) hand their runtime to its adapter folder (src/node, ' +
        'src/cloudflare, src/aws) and nothing else: no composition of their own, no trainer, CLI, tests, scripts or ' +
        'build tooling inside a deployed bundle.',
      severity: 'error',
      from: { path: '^functions/' },
      to: { path: ['^(training|test|scripts|infra)/', '^src/'], pathNot: '^src/(node|cloudflare|aws)/' },
    },
    {
      name: 'product-not-to-tests-or-scripts',
      comment: 'src/ and training/ never import tests, scripts, build tooling or the runtime entries.',
      severity: 'error',
      from: { path: '^(src|training)/' },
      to: { path: '^(test|scripts|infra|functions)/' },
    },
    {
      name: 'core-not-to-runtime-adapters',
      comment:
        'One folder per runtime holds its adapters: src/node (files, LanceDB, the server), src/cloudflare (Worker ' +
        'bindings: assets, R2, Queues), src/aws (S3, SQS, Lambda). The runtime-neutral core (the API, the edge ' +
        'composition, the index contract, evaluation, models) talks to their interfaces (Store, ModelCatalogue, ' +
        'BucketLike, VectorIndex) and never imports them; only the CLI and `manyfold publish` (Node commands) may.',
      severity: 'error',
      from: { path: '^src/', pathNot: ['^src/(node|cloudflare|aws|cli|publish)/'] },
      to: { path: '^src/(node|cloudflare|aws)/' },
    },
    {
      name: 'runtime-adapters-apart',
      comment:
        'A runtime folder never imports another one, so the Worker bundle pulls in neither the AWS SDK nor the ' +
        'filesystem, and the Node server none of the Worker bindings. One exception: the filesystem bucket ' +
        '(src/node/dir-bucket.ts), which AWS Lambda, running on Node, uses for local runs (the Worker cannot reach it: ' +
        'edge-bundle-without-lancedb forbids all of src/node there).',
      severity: 'error',
      from: { path: '^src/(node|cloudflare|aws)/' },
      // $1: the importing file's own runtime folder
      to: { path: '^src/(node|cloudflare|aws)/', pathNot: ['^src/$1/', '^src/node/dir-bucket\\.ts$'] },
    },
    {
      name: 'edge-bundle-without-lancedb',
      comment:
        'The Worker is bundled by wrangler (esbuild): anything it reaches, dynamic imports included, lands in the ' +
        'bundle, and LanceDB is a native module esbuild cannot load (npm run worker:bundle fails). The edge builds ' +
        'its indexes through src/index/pinecone-factory.ts and asks capabilities through src/index/capabilities.ts.',
      severity: 'error',
      from: { path: '^functions/worker\\.ts$' },
      to: { path: ['^src/node/', '^node_modules/@lancedb/'], reachable: true },
    },
    {
      name: 'no-circular',
      comment:
        'No import cycles at run time. Type-only imports are left out (they vanish at compile time); the two ' +
        'cycles that exist only through them today are src/eval/robust.ts <-> src/eval/sanity.ts and ' +
        'src/nightly/gate.ts <-> src/nightly/state.ts. There is no runtime cycle; keep it that way.',
      severity: 'error',
      from: { path: '^(src|training|functions)/' },
      to: { circular: true, viaOnly: { dependencyTypesNot: TYPE_ONLY } },
    },
    {
      name: 'not-to-unresolvable',
      comment: 'Every import resolves to a file or an installed package.',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // type-only imports are seen (and told apart), so the rules above can let them through on purpose
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    // package.json "exports" subpaths such as hono/body-limit resolve as Node (ESM) resolves them
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types', 'typings'],
      extensions: ['.ts', '.js', '.mjs', '.cjs', '.d.ts', '.json'],
    },
    skipAnalysisNotInRules: true,
  },
};
