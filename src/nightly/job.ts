/**
 * The nightly retrain-and-deploy job (`manyfold nightly`, scripts/nightly.ts). Steps, each recorded in the run's
 * state file (<stateDir>/<runId>/state.json) as soon as it is done, so a rerun after a crash at any point
 * continues where the last run stopped and never repeats a finished step:
 *
 *   train     training/run.ts runTraining with resume (its own checkpoints make the step itself resumable);
 *             or a given candidate artifact (--candidate DIR: promote a model trained elsewhere)
 *   eval      robust eval (src/eval/robust.ts) of the candidate AND the active model on the same fixed
 *             held-out split (first evalLimit images of evalSplit) with the same fixed attack suite and seed
 *   gate      pass iff robust R@1 (worst case over the suite, mean of TR/IR) >= active - robustR1Tolerance
 *             and clean R@1 (mean of TR/IR) >= active - cleanR1MaxDrop; a failed gate ends the run
 *             `rejected` (exit 10) and production is never touched
 *   publish   copy the artifact into publishDir/<id>/ atomically (temp dir + rename) and verify every sha256
 *   reindex   POST /v1/models/{id}/activate on the running server: its blue/green job re-embeds every item
 *             into the new model's namespace, verifies the counts and only then switches (atomic); the job id
 *             is saved before waiting, so a rerun resumes waiting on the same job
 *   activate  GET /v1/models confirms the new model is the active one
 *   smoke     /ready, and a text search answered by the new model with results
 * A failure in reindex leaves the old model active (the server never switched): `rolled-back` (exit 11).
 * A failure in activate or smoke re-activates the previous model (blue/green again) and waits: `rolled-back`
 * (exit 11), or `rollback-failed` (exit 12) if that fails too. Dry run: train, eval and gate only.
 * See docs/operations.md for the exit codes and the summary format.
 */
import { cp, mkdir, readdir, rename, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ManyfoldConfig } from '../config.js';
import { initBackend } from '../engine/backend.js';
import { evaluateRobust, type RobustReport } from '../eval/robust.js';
import { loadArtifact, readManifest, verifyArtifact } from '../model/artifact.js';
import { Encoder } from '../model/encoder.js';
import { ApiClient } from './client.js';
import { readState, STEPS, writeState, type GateMetrics, type Outcome, type RunState, type StepName } from './state.js';

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
   * training/run.ts, injected by the caller (src/cli/commands/nightly.ts, scripts/nightly.ts): src/ never
   * imports training/ (DESIGN.md rules of the house)
   */
  training: Pick<typeof import('../../training/run.js'), 'runTraining' | 'loadSplit'>;
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

/** gate metrics of a robust report: clean R@1 and the worst-case robust R@1, each the mean of TR and IR */
export function gateMetrics(r: RobustReport): GateMetrics {
  const clean = (r.clean.tr.r1 + r.clean.ir.r1) / 2;
  let robust = Infinity;
  let over = '';
  const entries: [string, { tr: { r1: number }; ir: { r1: number } }][] = Object.keys(r.worst).length ? Object.entries(r.worst) : Object.entries(r.attacks);
  for (const [k, e] of entries) {
    const v = (e.tr.r1 + e.ir.r1) / 2;
    if (v < robust) {
      robust = v;
      over = k;
    }
  }
  return { cleanR1: round(clean), robustR1: round(robust === Infinity ? clean : robust), robustOver: over || 'clean' };
}

const round = (x: number) => Math.round(x * 100) / 100;

export function decideGate(cand: GateMetrics, active: GateMetrics, t: { robustR1Tolerance: number; cleanR1MaxDrop: number }): { pass: boolean; reasons: string[] } {
  const reasons: string[] = [];
  const dr = round(active.robustR1 - cand.robustR1);
  const dc = round(active.cleanR1 - cand.cleanR1);
  if (dr > t.robustR1Tolerance) reasons.push(`robust R@1 dropped ${dr} points (${active.robustR1} -> ${cand.robustR1}; tolerance ${t.robustR1Tolerance})`);
  if (dc > t.cleanR1MaxDrop) reasons.push(`clean R@1 dropped ${dc} points (${active.cleanR1} -> ${cand.cleanR1}; allowed ${t.cleanR1MaxDrop})`);
  if (!reasons.length) reasons.push(`robust R@1 ${active.robustR1} -> ${cand.robustR1}, clean R@1 ${active.cleanR1} -> ${cand.cleanR1}: within thresholds`);
  return { pass: reasons.length === 1 && reasons[0].endsWith('within thresholds'), reasons };
}

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
  if (!opts.dryRun && (!nc.serverUrl || !nc.adminKey || !nc.publishDir)) throw new NightlyUsageError('nightly needs nightly.serverUrl, nightly.adminKey and nightly.publishDir (or --dry-run)');
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
    const { writeJsonAtomic } = await import('../api/store.js');
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
      const r = await opts.training.runTraining({ config, out: join(runDir, 'train'), resume: true, evaluate: false, quiet: true, ...(opts.stopAfterStep ? { stopAfterStep: opts.stopAfterStep } : {}) });
      if (!r.finished || !r.manifest) throw new Error('training stopped before the end (rerun to resume from its checkpoint)');
      state.candidate = { id: r.manifest.id, dir: resolve(r.modelDir), source: 'trained' };
    });

    // ------------------------------------------------------------------ eval
    await step('eval', async () => {
      const activeId = client ? await client.activeModel() : undefined;
      const activeDir = activeId ? await findArtifact(activeId, [...(nc.publishDir ? [nc.publishDir] : []), ...(opts.modelDirs ?? [])]) : undefined;
      if (activeId && !activeDir) throw new NightlyUsageError(`the active model ${activeId} has no artifact in ${[nc.publishDir, ...(opts.modelDirs ?? [])].join(', ')}: cannot gate against it`);
      if (activeId && activeDir) state.active = { id: activeId, dir: activeDir };
      const { loadSplit } = opts.training;
      const evalOne = async (dir: string, name: string): Promise<{ m: GateMetrics; protocol: string }> => {
        const a = await loadArtifact(dir);
        try {
          const split = await loadSplit(config, nc.evalSplit, a.manifest.config, true);
          const enc = new Encoder(a.model, a.tokenizer, a.manifest);
          const r = await evaluateRobust(enc, split, { attacks: nc.attacks, eps255: nc.eps255, steps: nc.attackSteps, limit: nc.evalLimit, seed: nc.evalSeed, sanity: false, examples: 0, resamples: 200, modelName: name });
          const { writeJsonAtomic } = await import('../api/store.js');
          await writeJsonAtomic(join(runDir, `eval-${name}.json`), r.report);
          return { m: gateMetrics(r.report), protocol: r.report.robust.protocol };
        } finally {
          a.model.dispose();
        }
      };
      const cand = await evalOne(state.candidate!.dir, 'candidate');
      const act = state.active ? await evalOne(state.active.dir, 'active') : { m: { cleanR1: 0, robustR1: 0, robustOver: 'none (no active model)' }, protocol: '' };
      state.eval = { candidate: cand.m, active: act.m, protocol: `${nc.evalSplit} split, first ${nc.evalLimit} images, attacks ${nc.attacks.join('+')} at eps ${nc.eps255.join('/')}/255, ${nc.attackSteps} steps, seed ${nc.evalSeed}; ${cand.protocol}` };
      log(`  candidate ${state.candidate!.id}: clean R@1 ${cand.m.cleanR1}, robust R@1 ${cand.m.robustR1} (${cand.m.robustOver}); active ${state.active?.id ?? '-'}: clean ${act.m.cleanR1}, robust ${act.m.robustR1}`);
    });

    // ------------------------------------------------------------------ gate
    await step('gate', async () => {
      const t = { robustR1Tolerance: nc.robustR1Tolerance, cleanR1MaxDrop: nc.cleanR1MaxDrop };
      state.gate = { ...decideGate(state.eval!.candidate, state.eval!.active, t), thresholds: t };
      log(`  gate: ${state.gate.pass ? 'PASS' : 'REJECT'}: ${state.gate.reasons.join('; ')}`);
    });
    if (!state.gate!.pass) return await finish('rejected');
    if (opts.dryRun) return await finish('dry-run');
    if (state.active && state.candidate!.id === state.active.id) return await finish('already-active');

    // ------------------------------------------------------------------ publish
    await step('publish', async () => {
      const target = resolve(nc.publishDir!, state.candidate!.id);
      if (existsSync(join(target, 'manifest.json'))) {
        const m = await verifyArtifact(target); // an earlier (crashed) run published it: check, keep
        if (m.id !== state.candidate!.id) throw new Error(`${target} holds model ${m.id}, not ${state.candidate!.id}`);
      } else {
        await mkdir(nc.publishDir!, { recursive: true });
        const tmp = resolve(nc.publishDir!, `.${state.candidate!.id}.${process.pid}.tmp`);
        await rm(tmp, { recursive: true, force: true });
        await cp(state.candidate!.dir, tmp, { recursive: true });
        await verifyArtifact(tmp);
        await rename(tmp, target);
      }
      const m = await verifyArtifact(target);
      state.published = { id: m.id, dir: target, files: m.files.length, bytes: m.files.reduce((a, f) => a + f.bytes, 0) };
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
        let hits = 0;
        for (const target of ['images', 'texts']) {
          const s = await api.call<any>('POST', '/v1/search', { text: nc.smokeQuery, target, topK: 3 });
          if (s.status !== 200) throw new Error(`smoke search (${target}): HTTP ${s.status}`);
          if (s.body.model !== state.candidate!.id) throw new Error(`smoke search answered by ${s.body.model}, expected ${state.candidate!.id}`);
          hits += s.body.results.length;
        }
        if (hits === 0) throw new Error('smoke search returned no results from the new model');
        state.smoke = { ok: true, detail: `${hits} results for ${JSON.stringify(nc.smokeQuery)} from ${state.candidate!.id}` };
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
