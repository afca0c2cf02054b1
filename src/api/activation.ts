/**
 * Blue/green model activation.
 *
 * `start(modelId)` creates a job (persisted in <data>/jobs/<id>.json) that re-embeds every stored item with the
 * new model into the new model's namespaces (`<ns>--<newtag>--img|txt`), while search keeps using the active
 * model. Writes that arrive meanwhile go to both models (service.building: dual write). When every item is
 * done the job verifies, per namespace, that the index counts equal what the store holds (items with an
 * image; captions); only then does it switch `state.active` (persisted atomically) and search moves over. The
 * old namespaces are kept: activating the previous model again is the rollback (its namespaces are rebuilt
 * from the stored items, so they also reflect writes made since).
 *
 * Restart: the job's checkpoint (namespace index, item index) is written after every chunk. A server that
 * starts and finds a `running` job resumes it from the checkpoint when the model is still available, else
 * rolls it back (drops the partial namespaces, status `rolled-back`). The switch happens only after the
 * verification, so a half-built namespace is never served.
 *
 * A model whose embedding dimension the index cannot hold (a Pinecone index has one dimension, fixed at creation;
 * with index.pinecone.indexes, no index is mapped to the model's dimension or the mapped one has another) is
 * refused when the job is asked for (409 index_dimension_mismatch), before any namespace is dropped or written;
 * so is any activation on an index that takes no writes (the edge's memory snapshot: 409 index_read_only).
 *
 * Counts that lag: Pinecone serverless reports writes in describe_index_stats only after a freshness lag, so one
 * read right after the last upsert would fail a correct job. For an index with a consistency policy (Pinecone:
 * index.pinecone.consistencyTimeoutMs / ...InitialDelayMs / ...MaxDelayMs) the verification polls with bounded
 * exponential backoff until the counts equal the stored items; on timeout the job fails with expected vs last seen
 * counts and the time waited, and nothing is switched. LanceDB and memory are consistent at once: one read, no wait.
 */
import type { Logger } from 'pino';
import type { ModelRegistry } from './registry.js';
import type { ActiveModel, RetrievalService } from './service.js';
import { newId, type Store, type StoredItem } from './store.js';
import { ApiError } from './errors.js';
import { cutByRuntime, cutMessage, inProcessRunner, type BackgroundRunner, type WaitUntilContext } from './background.js';

export interface ActivationJob {
  id: string;
  kind: 'activation';
  model: string;
  from?: string;
  status: 'running' | 'succeeded' | 'failed' | 'rolled-back';
  progress: { done: number; total: number };
  /**
   * where to resume: namespaces in order, and the last item key (file name, sorted order) of namespaces[nsIndex]
   * that is done; keys are compared, not counted, so items added or deleted meanwhile cannot shift the cursor
   */
  checkpoint: { namespaces: string[]; nsIndex: number; lastKey: string | null };
  verification?: VerificationRow[];
  /** how the count verification went: polls of the index and time spent waiting for its counts (0 when consistent at once) */
  verificationWait?: { polls: number; waitedMs: number };
  error?: string;
  createdAt: string;
  updatedAt: string;
}

export interface VerificationRow {
  namespace: string;
  expected: { images: number; texts: number };
  actual: { images: number; texts: number };
}

export interface ActivationHooks {
  /** awaited before each chunk (tests use it to pause a job mid-way) */
  beforeChunk?: (job: ActivationJob) => Promise<void> | void;
  /** the backoff wait between count polls (default: a timer that the job's shutdown cancels); tests count calls */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** clock for the verification timeout (default Date.now); tests advance it from their sleep */
  now?: () => number;
}

const CHUNK = 8;

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const onAbort = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function describeMismatch(rows: readonly VerificationRow[]): string {
  const parts: string[] = [];
  for (const r of rows) {
    for (const k of ['images', 'texts'] as const) {
      if (r.expected[k] !== r.actual[k]) parts.push(`${r.namespace} ${k}: expected ${r.expected[k]}, last seen ${r.actual[k]}`);
    }
  }
  return parts.join('; ');
}

export class ActivationManager {
  private current?: { job: ActivationJob; abort: AbortController; done: Promise<void> };

  constructor(
    private readonly service: RetrievalService,
    private readonly registry: ModelRegistry,
    private readonly store: Store,
    private readonly logger: Logger,
    private readonly hooks: ActivationHooks = {},
    private readonly background: BackgroundRunner = inProcessRunner(),
  ) {}

  get running(): ActivationJob | undefined {
    return this.current?.job;
  }

  async get(id: string): Promise<ActivationJob | undefined> {
    if (this.current?.job.id === id) return this.current.job;
    const job = /^[A-Za-z0-9_-]{1,80}$/.test(id) ? await this.store.getDoc<ActivationJob>('jobs', id) : undefined;
    return job && this.reapCut(job);
  }

  /** a job that ran under ctx.waitUntil past its horizon was cut: rolled back, so it no longer blocks activations */
  private async reapCut(job: ActivationJob): Promise<ActivationJob> {
    if (job.status === 'running' && this.current?.job.id !== job.id && cutByRuntime(this.background, 'activation', job.createdAt)) await this.rollback(job, cutMessage(this.background));
    return job;
  }

  /** Resumes (or rolls back) a job left `running` by a previous process. */
  async recover(): Promise<void> {
    // distributed (Worker, Lambda): the queue redelivers an unfinished job, which resumes from its checkpoint then
    if (this.background.distributed) return;
    const jobs = (await this.store.listDocs<ActivationJob>('jobs')).filter((j) => j.status === 'running');
    for (const job of jobs) {
      if (!this.current && this.registry.has(job.model) && job.model !== this.service.active.id) {
        this.logger.info({ job: job.id, model: job.model, checkpoint: job.checkpoint }, 'resuming activation job after restart');
        try {
          await this.checkTarget(job.model);
        } catch (e) {
          await this.rollback(job, (e as Error).message);
          continue;
        }
        await this.launch(job, false);
      } else {
        await this.rollback(job, this.registry.has(job.model) ? 'superseded at restart' : `model ${job.model} is no longer available`);
      }
    }
  }

  /** `ctx`: the request's ExecutionContext (Workers), which keeps an in-process job alive after the response */
  async start(modelId: string, ctx?: WaitUntilContext): Promise<ActivationJob> {
    if (!this.registry.has(modelId)) throw new ApiError(404, 'not_found', `unknown model ${modelId}`, 'id');
    if (this.current) throw new ApiError(409, 'activation_running', `activation job ${this.current.job.id} (model ${this.current.job.model}) is still running`);
    if (this.background.distributed) {
      const jobs = await Promise.all((await this.store.listDocs<ActivationJob>('jobs')).map((j) => this.reapCut(j)));
      const other = jobs.find((j) => j.status === 'running');
      if (other) throw new ApiError(409, 'activation_running', `activation job ${other.id} (model ${other.model}) is still running`);
    }
    if (modelId === this.service.active.id) throw new ApiError(409, 'already_active', `model ${modelId} is already active`, 'id');
    await this.checkTarget(modelId);
    const namespaces = await this.store.namespaces();
    let total = 0;
    for (const ns of namespaces) total += (await this.store.itemKeys(ns)).length;
    const now = new Date().toISOString();
    const job: ActivationJob = {
      id: newId('act'),
      kind: 'activation',
      model: modelId,
      from: this.service.active.id,
      status: 'running',
      progress: { done: 0, total },
      checkpoint: { namespaces, nsIndex: 0, lastKey: null },
      createdAt: now,
      updatedAt: now,
    };
    await this.store.putDoc('jobs', job.id, job);
    if (this.background.placement('activation') === 'queue') {
      try {
        await this.background.enqueue({ kind: 'activation', id: job.id });
      } catch (e) {
        await this.rollback(job, `the job queue refused it: ${(e as Error).message}`);
        throw new ApiError(503, 'queue_unavailable', `the job queue refused the activation (${(e as Error).message}); retry later`);
      }
      return job;
    }
    await this.launch(job, true);
    this.background.keepAlive(this.whenDone(), ctx);
    return job;
  }

  /**
   * Queue consumer entry: runs (or resumes, from its checkpoint) one activation job to completion. A redelivered
   * message of a finished job does nothing. Throws when the job did not end (busy, or stopped): the queue redelivers.
   */
  async runById(id: string): Promise<ActivationJob | undefined> {
    const job = await this.store.getDoc<ActivationJob>('jobs', id);
    if (!job || job.status !== 'running') return job;
    if (this.current) throw new Error(`activation job ${this.current.job.id} is running in this process: ${id} to be redelivered`);
    if (!this.registry.has(job.model)) await this.registry.scan();
    if (!this.registry.has(job.model) || job.model === this.service.active.id) {
      await this.rollback(job, this.registry.has(job.model) ? `model ${job.model} is already active` : `model ${job.model} is no longer available`);
      return job;
    }
    try {
      await this.checkTarget(job.model);
    } catch (e) {
      await this.rollback(job, (e as Error).message);
      return job;
    }
    const cp = job.checkpoint;
    await this.launch(job, cp.nsIndex === 0 && cp.lastKey === null);
    await this.whenDone();
    if (job.status === 'running') throw new Error(`activation job ${id} stopped before finishing: to be redelivered (it resumes from its checkpoint)`);
    return job;
  }

  private whenDone(): Promise<void> {
    return this.current?.done.catch(() => undefined) ?? Promise.resolve();
  }

  /** Dead-letter entry: a job whose deliveries are exhausted is rolled back (unless already final). */
  async failById(id: string, reason: string): Promise<void> {
    const job = await this.store.getDoc<ActivationJob>('jobs', id);
    if (job?.status === 'running') await this.rollback(job, reason);
  }

  /**
   * Loads the target model and checks the index can hold its vectors (throws ApiError 409 if not): it takes writes
   * (not the edge's read-only snapshot) and has room for the model's dimension (Pinecone: the index mapped to it).
   */
  private async checkTarget(modelId: string): Promise<void> {
    this.service.assertWritable();
    const info = this.registry.info(modelId)!;
    const encoder = await this.registry.get(modelId);
    await this.service.checkIndexDimension({ id: modelId, tag: info.tag, encoder });
  }

  private async launch(job: ActivationJob, fresh: boolean): Promise<void> {
    const info = this.registry.info(job.model)!;
    const encoder = await this.registry.get(job.model);
    const target: ActiveModel = { id: job.model, tag: info.tag, encoder };
    if (fresh) {
      // namespaces of this model may hold records from an earlier activation: rebuild them from the items
      for (const ns of job.checkpoint.namespaces) await this.service.dropModelNamespace(ns, target.tag);
    }
    this.service.building = target;
    const abort = new AbortController();
    const done = this.run(job, target, abort.signal).finally(() => {
      if (this.service.building === target) this.service.building = undefined;
      this.current = undefined;
    });
    this.current = { job, abort, done };
  }

  private async run(job: ActivationJob, target: ActiveModel, signal: AbortSignal): Promise<void> {
    try {
      const cp = job.checkpoint;
      for (; cp.nsIndex < cp.namespaces.length; cp.nsIndex++, cp.lastKey = null) {
        const ns = cp.namespaces[cp.nsIndex];
        const all = await this.store.itemKeys(ns);
        const keys = cp.lastKey === null ? all : all.filter((k) => k > cp.lastKey!);
        for (let at = 0; at < keys.length; at += CHUNK) {
          if (signal.aborted) return; // stopped by shutdown: stays `running` on disk, resumed at the next start
          await this.hooks.beforeChunk?.(job);
          if (signal.aborted) return;
          const chunk = keys.slice(at, at + CHUNK);
          const items: StoredItem[] = [];
          for (const key of chunk) {
            const item = await this.store.readItemByKey(ns, key);
            if (item) items.push(item);
          }
          await this.service.reembed(target, items);
          cp.lastKey = chunk[chunk.length - 1];
          job.progress.done += chunk.length;
          job.updatedAt = new Date().toISOString();
          await this.store.putDoc('jobs', job.id, job);
        }
      }
      // verify (waiting for lagging counts where the index has them), then switch
      const v = await this.verifyCounts(target, signal);
      job.verification = v.rows;
      job.verificationWait = { polls: v.polls, waitedMs: v.waitedMs };
      if (signal.aborted) return; // stopped while waiting: stays `running`, verified again after the restart
      if (!v.ok) {
        job.status = 'failed';
        const policy = this.service.countConsistency;
        job.error = policy
          ? `verification failed: index counts did not reach the stored items within index.pinecone.consistencyTimeoutMs = ${policy.timeoutMs} ms ` +
            `(waited ${v.waitedMs} ms, ${v.polls} polls of describe_index_stats): ${describeMismatch(v.rows)}; the active model is unchanged`
          : `verification failed: index counts differ from the stored items: ${describeMismatch(v.rows)}; the active model is unchanged`;
        this.logger.warn({ job: job.id, model: target.id, verification: v.rows, ...job.verificationWait }, 'activation verification failed');
      } else {
        const state = await this.store.getState();
        await this.store.putState({ active: target.id, previous: state.active ?? job.from, switchedAt: new Date().toISOString() });
        const old = this.service.active;
        this.service.active = target;
        job.status = 'succeeded';
        job.progress.total = Math.max(job.progress.total, job.progress.done); // items added meanwhile
        this.logger.info({ job: job.id, model: target.id, from: old.id }, 'activation verified: search switched to the new model');
      }
    } catch (e) {
      job.status = 'failed';
      job.error = (e as Error).message;
      this.logger.error({ job: job.id, err: (e as Error).message }, 'activation job failed');
    }
    job.updatedAt = new Date().toISOString();
    await this.store.putDoc('jobs', job.id, job).catch(() => undefined);
  }

  /** Per user namespace: stored items with an image and stored captions vs the index's counts, read now. */
  private async readCounts(target: ActiveModel): Promise<VerificationRow[]> {
    const expected: { namespace: string; expected: VerificationRow['expected'] }[] = [];
    for (const ns of await this.store.namespaces()) {
      const items = await this.store.listItems(ns);
      expected.push({ namespace: ns, expected: { images: items.filter((i) => i.image).length, texts: items.reduce((a, i) => a + i.captions.length, 0) } });
    }
    const actual = await this.service.recordCounts(target, expected.map((e) => e.namespace));
    return expected.map((e) => ({ namespace: e.namespace, expected: e.expected, actual: actual[e.namespace] }));
  }

  /**
   * Reads the counts; where the index's counts may lag (a consistency policy), reads them again after delays of
   * initialDelayMs, 2x, 4x, ... (capped at maxDelayMs, and at what is left of timeoutMs) until they match or the
   * timeout has passed. The expected side is re-read on every poll too: writes keep arriving during the wait
   * (dual write), so a count frozen at the first poll could never be met. An immediately consistent index is read
   * once and never sleeps.
   */
  private async verifyCounts(target: ActiveModel, signal: AbortSignal): Promise<{ rows: VerificationRow[]; ok: boolean; polls: number; waitedMs: number }> {
    const policy = this.service.countConsistency;
    const sleep = this.hooks.sleep ?? abortableSleep;
    const now = this.hooks.now ?? Date.now;
    const started = now();
    let delay = policy?.initialDelayMs ?? 0;
    for (let polls = 1; ; polls++) {
      const rows = await this.readCounts(target);
      const ok = rows.every((r) => r.expected.images === r.actual.images && r.expected.texts === r.actual.texts);
      const waitedMs = now() - started;
      // no policy (LanceDB, memory): the first read is the answer
      const remaining = policy ? policy.timeoutMs - waitedMs : 0;
      if (ok || !policy || remaining <= 0 || signal.aborted) return { rows, ok, polls, waitedMs };
      const next = Math.min(delay, remaining);
      this.logger.debug({ model: target.id, polls, waitedMs, next, mismatch: describeMismatch(rows) }, 'index counts behind the stored items: waiting');
      await sleep(next, signal);
      delay = Math.min(policy.maxDelayMs, delay * 2);
    }
  }

  private async rollback(job: ActivationJob, why: string): Promise<void> {
    const info = this.registry.info(job.model);
    if (info && job.model !== this.service.active.id) {
      for (const ns of job.checkpoint.namespaces) await this.service.dropModelNamespace(ns, info.tag, { quiet: true });
    }
    job.status = 'rolled-back';
    job.error = `rolled back: ${why}`;
    job.updatedAt = new Date().toISOString();
    await this.store.putDoc('jobs', job.id, job);
    this.logger.warn({ job: job.id, why }, 'activation job rolled back');
  }

  /** Stops the running job where it is (it stays `running` on disk and resumes at the next start). */
  async stop(): Promise<void> {
    if (!this.current) return;
    this.current.abort.abort();
    await this.current.done.catch(() => undefined);
  }

  /** Test helper: wait for the running job to end. */
  async settle(): Promise<void> {
    await this.current?.done.catch(() => undefined);
  }
}
