/**
 * The nightly retrain-and-deploy job (`manyfold nightly`, scripts/nightly.ts). Steps, each recorded in the run's
 * state file (<stateDir>/<runId>/state.json) as soon as it is done, so a rerun after a crash at any point
 * continues where the last run stopped and never repeats a finished step:
 *
 *   train     training/run.ts runTraining with resume (its own checkpoints make the step itself resumable);
 *             or a given candidate artifact (--candidate DIR: promote a model trained elsewhere)
 *             (nightly.initFrom 'active': a fine-tune of the production model, e.g. the MAT + N:N recipe of
 *             training/recipes/nightly.json)
 *   eval      the one robust-recall runner (src/eval/robust) over the candidate AND the active model in memory, on
 *             the same fixed held-out split (first evalLimit images of evalSplit), attack suite and seed, keeping
 *             every query's rank
 *   gate      nightly/gate.ts: the paired bootstrap interval of (candidate - production) robust R@1 must lie above
 *             -robustR1Tolerance and be at most that wide, and the clean change above -cleanR1MaxDrop; a failed
 *             gate ends the run `rejected` (exit 10) and production is never touched
 *   publish   copy the artifact into publishDir/<id>/ atomically (temp dir + rename) and verify every sha256;
 *             with publishTo, also upload it to S3 / R2 and list it in the bucket catalogue (src/publish), which
 *             the Lambda / Worker API re-reads when the reindex step asks it to activate the model
 *   reindex   POST /v1/models/{id}/activate on the running server: its blue/green job re-embeds every item
 *             into the new model's namespace, verifies the counts and only then switches (atomic); the job id
 *             is saved before waiting, so a rerun resumes waiting on the same job
 *   activate  GET /v1/models confirms the new model is the active one
 *   smoke     /ready, then an attack probe through the API (POST /v1/probes, smokeSample items of the production
 *             gallery, smokeAttacks) answered by the new model; its report lands in the state
 * A failure in reindex leaves the old model active (the server never switched): `rolled-back` (exit 11).
 * A failure in activate or smoke re-activates the previous model (blue/green again) and waits: `rolled-back`
 * (exit 11), or `rollback-failed` (exit 12) if that fails too. Dry run: train, eval and gate only.
 * See docs/operations.md for the exit codes and the summary format.
 */
import { cp, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ManyfoldConfig } from '../config.js';
import { initBackend } from '../engine/backend.js';
import { loadSplit } from '../data/split.js';
import { MemoryRankSource, probeFromSplit, runRobustProbe, type RobustProbeReport } from '../eval/robust/index.js';
import { loadArtifact, readManifest, verifyArtifact } from '../model/artifact.js';
import { Encoder } from '../model/encoder.js';
import { writeDirAtomic, writeJsonAtomic } from '../util/atomic.js';
import { ApiClient } from './client.js';
import { decideGate, gateMetrics } from './gate.js';
import { readState, STEPS, writeState, type Outcome, type RunState, type StepName } from './state.js';

export const EXIT = { ok: 0, failed: 1, usage: 2, rejected: 10, rolledBack: 11, rollbackFailed: 12, crashInjected: 70 } as const;

export class CrashInjected extends Error {
  constructor(readonly step: string) {
    super(`crash injected after step ${step}`);
    this.name = 'CrashInjected';
  }
}

export class NightlyUsageError extends Error {
  override name = 'NightlyUsageError';
}

export interface NightlyOptions {
  config: ManyfoldConfig;
  /** default: today's date (UTC), so the scheduler's rerun on the same day resumes the same run */
  runId?: string;
  /** promote this artifact instead of training */
  candidateDir?: string;
  /** upload the artifact to this bucket too (s3://bucket/prefix; R2 via its S3 endpoint): src/publish/publish.ts */
  publishTo?: { to: string; endpoint?: string; region?: string };
  /** more directories searched for the active model's artifact (besides publishDir) */
  modelDirs?: string[];
  dryRun?: boolean;
  /** test hook: simulate a process crash right after this step is recorded */
  crashAfter?: StepName | 'reindex-started';
  /** test hook: runs before each step; a throw is a failure of that step */
  beforeStep?: (step: StepName, state: RunState) => Promise<void> | void;
  /** train step: stop after this many steps (tests) */
  stopAfterStep?: number;
  /**
   * training/run.ts, injected by the caller (src/cli/commands/nightly.ts, scripts/nightly.ts): src/ imports
   * training/ for types only (.dependency-cruiser.cjs, rule src-not-to-training)
   */
  training: Pick<typeof import('../../training/run.js'), 'runTraining'>;
  log?: (line: string) => void;
}

export interface NightlySummary {
  runId: string;
  outcome: Outcome | 'failed';
  exitCode: number;
  dryRun: boolean;
  steps: Partial<Record<StepName, string>>;
  candidate?: RunState['candidate'];
  active?: RunState['active'];
  eval?: RunState['eval'];
  gate?: RunState['gate'];
  published?: RunState['published'];
  activation?: RunState['activation'];
  smoke?: RunState['smoke'];
  rollback?: RunState['rollback'];
  backend?: RunState['backend'];
  error?: string;
  stateFile: string;
}

const EXIT_OF: Record<Outcome, number> = { deployed: 0, 'already-active': 0, 'dry-run': 0, rejected: 10, 'rolled-back': 11, 'rollback-failed': 12 };

function summarize(s: RunState, stateDir: string, exitCode: number): NightlySummary {
  return {
    runId: s.runId,
    outcome: s.outcome ?? 'failed',
    exitCode,
    dryRun: s.dryRun,
    steps: s.done,
    ...(s.candidate ? { candidate: s.candidate } : {}),
    ...(s.active ? { active: s.active } : {}),
    ...(s.eval ? { eval: s.eval } : {}),
    ...(s.gate ? { gate: s.gate } : {}),
    ...(s.published ? { published: s.published } : {}),
    ...(s.activation ? { activation: s.activation } : {}),
    ...(s.smoke ? { smoke: s.smoke } : {}),
    ...(s.rollback ? { rollback: s.rollback } : {}),
    ...(s.backend ? { backend: s.backend } : {}),
    ...(s.error ? { error: s.error } : {}),
    stateFile: join(stateDir, s.runId, 'state.json'),
  };
}

export { decideGate, gateMetrics };

async function findArtifact(id: string, dirs: string[]): Promise<string | undefined> {
  for (const d of dirs) {
    if (!existsSync(d)) continue;
    if (existsSync(join(d, 'manifest.json'))) {
      if ((await readManifest(d).catch(() => undefined))?.id === id) return d;
      continue;
    }
    for (const n of await readdir(d)) {
      const sub = join(d, n);
      if (existsSync(join(sub, 'manifest.json')) && (await readManifest(sub).catch(() => undefined))?.id === id) return sub;
    }
  }
  return undefined;
}

export async function runNightly(opts: NightlyOptions): Promise<NightlySummary> {
  const config = opts.config;
  const nc = config.nightly;
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const stateDir = resolve(nc.stateDir);
  const runId = opts.runId ?? new Date().toISOString().slice(0, 10);
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(runId)) throw new NightlyUsageError(`bad run id ${runId}`);
  if (!opts.dryRun && (!nc.serverUrl || !nc.adminKey || (!nc.publishDir && !opts.publishTo))) throw new NightlyUsageError('nightly needs nightly.serverUrl, nightly.adminKey and nightly.publishDir or --publish-to (or --dry-run)');
  if (!opts.candidateDir && !config.data.file) throw new NightlyUsageError('nightly needs a data file (--data) to train and evaluate on');
  if (!config.data.file) throw new NightlyUsageError('nightly needs a data file (--data) for the held-out evaluation split');

  const now = new Date().toISOString();
  const state: RunState = readState(stateDir, runId) ?? { runId, startedAt: now, updatedAt: now, dryRun: Boolean(opts.dryRun), done: {} };
  if (state.outcome) {
    log(`nightly ${runId}: already finished (${state.outcome}); nothing to do`);
    return summarize(state, stateDir, EXIT_OF[state.outcome]);
  }
  state.dryRun = Boolean(opts.dryRun);
  delete state.error;
  const save = () => writeState(stateDir, state);
  const client = nc.serverUrl && nc.adminKey ? new ApiClient(nc.serverUrl, nc.adminKey) : undefined;
  const runDir = join(stateDir, runId);
  /** the production model and its artifact (the gate compares against it; the recipe fine-tunes it) */
  const activeArtifact = async (): Promise<{ id: string; dir: string } | undefined> => {
    const activeId = client ? await client.activeModel() : undefined;
    if (!activeId) return undefined;
    const dirs = [...(nc.publishDir ? [nc.publishDir] : []), ...(opts.modelDirs ?? [])];
    const dir = await findArtifact(activeId, dirs);
    if (!dir) throw new NightlyUsageError(`the active model ${activeId} has no artifact in ${dirs.join(', ')}: cannot gate against it`);
    return { id: activeId, dir };
  };

  // GPU path: say which backend runs and why (e.g. tensorflow requested but tfjs-node-gpu absent)
  try {
    const b = await initBackend(config.backend, { threads: config.threads });
    state.backend = { name: b.name, reason: b.reason };
    log(`backend: ${b.name} (${b.reason})`);
  } catch (e) {
    throw new NightlyUsageError(`${(e as Error).message}`);
  }

  const finish = async (outcome: Outcome): Promise<NightlySummary> => {
    state.outcome = outcome;
    await save();
    const s = summarize(state, stateDir, EXIT_OF[outcome]);
    await writeState(stateDir, state);
    await writeJsonAtomic(join(runDir, 'summary.json'), s);
    return s;
  };
  const step = async (name: StepName, fn: () => Promise<void>): Promise<void> => {
    if (state.done[name]) return;
    await opts.beforeStep?.(name, state);
    log(`nightly ${runId}: ${name}`);
    await fn();
    state.done[name] = new Date().toISOString();
    await save();
    if (opts.crashAfter === name) throw new CrashInjected(name);
  };

  try {
    // ------------------------------------------------------------------ train
    await step('train', async () => {
      if (opts.candidateDir) {
        const m = await verifyArtifact(opts.candidateDir);
        state.candidate = { id: m.id, dir: resolve(opts.candidateDir), source: 'given' };
        return;
      }
      // the nightly recipe fine-tunes production: its artifact is the init unless train.init names another
      let trainConfig = config;
      if (nc.initFrom === 'active' && !config.train.init) {
        const act = await activeArtifact();
        if (act) {
          trainConfig = { ...config, train: { ...config.train, init: act.dir } };
          log(`  fine-tuning the active model ${act.id}`);
        }
      }
      const r = await opts.training.runTraining({ config: trainConfig, out: join(runDir, 'train'), resume: true, evaluate: false, quiet: true, ...(opts.stopAfterStep ? { stopAfterStep: opts.stopAfterStep } : {}) });
      if (!r.finished || !r.manifest) throw new Error('training stopped before the end (rerun to resume from its checkpoint)');
      state.candidate = { id: r.manifest.id, dir: resolve(r.modelDir), source: 'trained' };
    });

    // ------------------------------------------------------------------ eval
    await step('eval', async () => {
      const act = await activeArtifact();
      if (act) state.active = act;
      const evalOne = async (dir: string, name: string): Promise<RobustProbeReport> => {
        const a = await loadArtifact(dir);
        try {
          const split = await loadSplit(config, nc.evalSplit, a.manifest.config, true);
          const { queries, gallery } = probeFromSplit(split, nc.evalLimit);
          const source = await MemoryRankSource.create(new Encoder(a.model, a.tokenizer, a.manifest), gallery);
          const report = await runRobustProbe({ source, queries, attacks: nc.attacks, seed: nc.evalSeed, resamples: nc.resamples, keepRanks: true });
          await writeJsonAtomic(join(runDir, `eval-${name}.json`), report);
          return report;
        } finally {
          a.model.dispose();
        }
      };
      const cand = await evalOne(state.candidate!.dir, 'candidate');
      const prod = state.active ? await evalOne(state.active.dir, 'active') : undefined;
      const cm = gateMetrics(cand);
      const pm = prod ? gateMetrics(prod) : { cleanR1: 0, robustR1: 0, robustOver: 'none (no active model)' };
      state.eval = {
        candidate: cm,
        active: pm,
        items: { images: cand.queries.images, captions: cand.queries.captions },
        protocol: `${nc.evalSplit} split, first ${cand.queries.images} images and their ${cand.queries.captions} captions, attacks ${nc.attacks.map((a) => a.name).join('+')}, seed ${nc.evalSeed}. ${cand.protocol}`,
      };
      log(`  candidate ${state.candidate!.id}: clean R@1 ${cm.cleanR1}, robust R@1 ${cm.robustR1}; active ${state.active?.id ?? '-'}: clean ${pm.cleanR1}, robust ${pm.robustR1}`);
    });

    // ------------------------------------------------------------------ gate
    await step('gate', async () => {
      const t = { robustR1Tolerance: nc.robustR1Tolerance, cleanR1MaxDrop: nc.cleanR1MaxDrop };
      const { readFile } = await import('node:fs/promises');
      const read = async (name: string) => JSON.parse(await readFile(join(runDir, `eval-${name}.json`), 'utf8')) as RobustProbeReport;
      state.gate = decideGate(await read('candidate'), state.active ? await read('active') : undefined, t, { seed: nc.evalSeed, resamples: nc.resamples });
      log(`  gate: ${state.gate.pass ? 'PASS' : 'REJECT'}: ${state.gate.reasons.join('; ')}`);
    });
    if (!state.gate!.pass) return await finish('rejected');
    if (opts.dryRun) return await finish('dry-run');
    if (state.active && state.candidate!.id === state.active.id) return await finish('already-active');

    // ------------------------------------------------------------------ publish
    await step('publish', async () => {
      const target = nc.publishDir ? resolve(nc.publishDir, state.candidate!.id) : state.candidate!.dir;
      if (nc.publishDir && existsSync(join(target, 'manifest.json'))) {
        const m = await verifyArtifact(target); // an earlier (crashed) run published it: check, keep
        if (m.id !== state.candidate!.id) throw new Error(`${target} holds model ${m.id}, not ${state.candidate!.id}`);
      } else if (nc.publishDir) {
        await writeDirAtomic(target, async (tmp) => {
          await cp(state.candidate!.dir, tmp, { recursive: true });
          await verifyArtifact(tmp);
        });
      }
      const m = await verifyArtifact(target);
      // uploads are content-addressed and never overwrite: a rerun after a crash verifies what is there and completes
      const remote = opts.publishTo ? await (await import('../publish/publish.js')).publishArtifact(target, opts.publishTo.to, { ...opts.publishTo, log: (l) => log(`  ${l}`) }) : undefined;
      state.published = { id: m.id, dir: target, files: m.files.length, bytes: m.files.reduce((a, f) => a + f.bytes, 0), ...(remote ? { remote: remote.url } : {}) };
    });

    // ------------------------------------------------------------------ reindex (blue/green job on the server)
    const api = client!;
    const previous = state.active?.id;
    try {
      await step('reindex', async () => {
        let jobId = state.activation?.jobId;
        if (jobId) {
          const r = await api.call('GET', `/v1/jobs/${jobId}`);
          if (r.status !== 200 || ['failed', 'rolled-back'].includes(r.body.job.status)) jobId = undefined; // restart
        }
        if (!jobId) {
          const started = await api.startActivation(state.candidate!.id);
          if (started === null) {
            state.activation = { jobId: 'none (already active)', from: previous ?? '', to: state.candidate!.id, status: 'succeeded' };
            return;
          }
          jobId = started;
          state.activation = { jobId, from: previous ?? '', to: state.candidate!.id, status: 'running' };
          await save();
          if (opts.crashAfter === 'reindex-started') throw new CrashInjected('reindex-started');
        }
        const r = await api.waitJob(jobId, nc.pollMs, nc.jobTimeoutMs);
        state.activation!.status = r.status;
        if (r.status !== 'succeeded') throw new Error(`activation job ${jobId} ${r.status}${r.error ? `: ${r.error}` : ''}`);
      });
    } catch (e) {
      if (e instanceof CrashInjected) throw e;
      // the server switches only after a verified build: the previous model is still active
      state.error = (e as Error).message;
      state.rollback = { to: previous ?? '', status: 'not needed: the server never switched', reason: (e as Error).message };
      log(`  re-index failed (${(e as Error).message}); the previous model stays active`);
      return await finish('rolled-back');
    }

    try {
      await step('activate', async () => {
        const a = await api.activeModel();
        if (a !== state.candidate!.id) throw new Error(`the server reports ${a} active, expected ${state.candidate!.id}`);
      });
      await step('smoke', async () => {
        const ready = await api.call('GET', '/ready');
        if (ready.status !== 200) throw new Error(`/ready: HTTP ${ready.status}`);
        const report = await api.probe({ sample: nc.smokeSample, attacks: nc.smokeAttacks, seed: nc.evalSeed }, nc.pollMs, nc.jobTimeoutMs);
        if (report.source.name !== state.candidate!.id) throw new Error(`the smoke probe ran on ${report.source.name}, expected ${state.candidate!.id}`);
        if (report.partial || report.clean.tr.n === 0 || report.clean.ir.n === 0) throw new Error(`the smoke probe measured nothing${report.error ? `: ${report.error}` : ''}`);
        const m = gateMetrics(report);
        state.smoke = { ok: true, detail: `probe of ${report.queries.images} production items on ${state.candidate!.id}: clean R@1 ${m.cleanR1}, robust R@1 ${m.robustR1} (${m.robustOver})`, probe: { clean: m.cleanR1, robust: m.robustR1, images: report.queries.images, captions: report.queries.captions } };
      });
    } catch (e) {
      if (e instanceof CrashInjected) throw e;
      state.error = (e as Error).message;
      state.smoke = { ok: false, detail: (e as Error).message };
      return await rollbackTo(previous, (e as Error).message);
    }
    return await finish('deployed');
  } catch (e) {
    if (e instanceof CrashInjected || e instanceof NightlyUsageError) throw e;
    state.error = (e as Error).message;
    await save();
    log(`nightly ${runId}: failed: ${(e as Error).message} (state saved; rerun to resume)`);
    return summarize(state, stateDir, EXIT.failed);
  }

  async function rollbackTo(previous: string | undefined, reason: string): Promise<NightlySummary> {
    const api = client!;
    if (!previous) {
      state.rollback = { to: '', status: 'failed: no previous model to roll back to', reason };
      return finish('rollback-failed');
    }
    log(`  rolling back to ${previous}: ${reason}`);
    try {
      let jobId = state.rollback?.jobId;
      if (!jobId || state.rollback?.status === 'failed') {
        const started = await api.startActivation(previous);
        jobId = started ?? 'none (already active)';
        state.rollback = { jobId, to: previous, status: started ? 'running' : 'succeeded', reason };
        await save();
      }
      if (jobId.startsWith('none')) return finish('rolled-back');
      const r = await api.waitJob(jobId, nc.pollMs, nc.jobTimeoutMs);
      state.rollback = { jobId, to: previous, status: r.status, reason };
      if (r.status !== 'succeeded' || (await api.activeModel()) !== previous) return finish('rollback-failed');
      return finish('rolled-back');
    } catch (e) {
      state.rollback = { ...(state.rollback ?? { to: previous, reason }), status: `failed: ${(e as Error).message}` };
      return finish('rollback-failed');
    }
  }
}

export { STEPS };
