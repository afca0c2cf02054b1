/**
 * Attack probes: a security team's question "how robust is the deployed system right now?", answered as an
 * async job against the LIVE encoder and index, by the one robust-recall runner (src/eval/robust) over this
 * server's live index (probe-source.ts).
 *
 * A probe = a query set + an attack suite (the catalogue of src/eval/robust/catalog.ts) + budgets.
 * - Query set: `sample` items drawn (seeded) from the namespace's stored items that have an image and
 *   captions (their pairs are known) and searched in the production index itself, read-only (nothing is written
 *   to the namespace; `halfWidth` picks the sample size for a wanted interval), or supplied `pairs`, indexed for
 *   the probe into a scratch namespace (`probe<id>`) that is dropped afterwards.
 * - White-box attacks get the served weights; black-box attacks see only the live search results; transfer
 *   attacks need a surrogate, which the API does not take (`manyfold probe --target` does).
 * Jobs persist in <data>/probes/<id>.json: queued and running probes are re-queued after a restart (from the
 * start: attacks are seeded, so the report is the same); finished reports survive and render as HTML.
 * Where a probe runs is the background runner's choice (background.ts): this process's loop (Node), or a queue
 * whose consumer calls runById() (Worker, Lambda). With a distributed runner the probe may run in another isolate,
 * so cancel is a marker in the store (<id>.cancel) the runner reads before each chunk, and the pending count is
 * read from the store.
 */
import type { Logger } from 'pino';
import type { LimitsConfig } from '../config.js';
import { DEFAULT_WHITE_BOX_SUITE, checkSuite, renderRobustHtml, renderStatusHtml, runRobustProbe, type ProbeAttackSpec, type ProbeQuerySet, type RobustProbeReport } from '../eval/robust/index.js';
import { Rng } from '../util/rng.js';
import { ApiError } from './errors.js';
import { checkImage, decodeBase64Image, imageToPixels } from './images.js';
import { decodeSpecForModel } from '../data/imageCache.js';
import type { ApiMetrics } from './metrics.js';
import { LiveIndexRankSource } from './probe-source.js';
import type { ProbeRequestBody } from './schemas.js';
import type { ActiveModel, RetrievalService } from './service.js';
import { newId, type Store, type StoredItem } from './store.js';
import { cutByRuntime, cutMessage, inProcessRunner, type BackgroundRunner, type WaitUntilContext } from './background.js';

/** a supplied probe image is checked for decodability at a tiny size (the model decodes it for real later) */
const DECODABLE_CHECK = decodeSpecForModel({ image: { size: 8 } });

export type ProbeStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'canceled';

export interface ProbeRequestStored extends Omit<ProbeRequestBody, 'pairs'> {
  namespace: string;
  /** supplied pairs, images kept as content-addressed blobs */
  pairs?: { image: string; captions: string[] }[];
}

export interface ProbeDoc {
  id: string;
  status: ProbeStatus;
  /** etaSeconds: remaining time at the pace so far (after the first unit of work) */
  progress: { done: number; total: number; stage: string; etaSeconds?: number };
  createdAt: string;
  updatedAt: string;
  key: string;
  request: ProbeRequestStored;
  report?: ProbeReport;
  error?: string;
}

/** a probe's report: the runner's, with the job it belongs to */
export type ProbeReport = RobustProbeReport;

export interface ProbeHooks {
  /** awaited before each chunk of work (tests pause probes with it) */
  beforeChunk?: (probe: ProbeDoc) => Promise<void> | void;
}

/** images per chunk of attack work: small, so client searches interleave and cancel is prompt */
const CHUNK = 4;
const EVAL_TOP = 10;

class Canceled extends Error {
  constructor(readonly reason: 'cancel' | 'shutdown') {
    super(`probe ${reason === 'cancel' ? 'canceled' : 'stopped by shutdown'}`);
  }
}

interface QuerySet extends ProbeQuerySet {
  /** the user namespace searched */
  namespace: string;
  scratch: boolean;
}

export class ProbeManager {
  private queue: string[] = [];
  private running = new Map<string, AbortController>();
  private runningDone = new Map<string, Promise<void>>();
  private stopping = false;

  constructor(
    private readonly service: RetrievalService,
    private readonly store: Store,
    private readonly logger: Logger,
    private readonly limits: LimitsConfig,
    private readonly metrics: ApiMetrics,
    private readonly hooks: ProbeHooks = {},
    private readonly background: BackgroundRunner = inProcessRunner(),
  ) {}

  public(p: ProbeDoc): Omit<ProbeDoc, 'key'> {
    const { key: _k, ...rest } = p;
    return rest;
  }

  summary(p: ProbeDoc): Record<string, unknown> {
    const { report, key: _k, ...rest } = p;
    const r1 = (d: { recall: Record<string, { mean: number }> } | undefined) => d?.recall.r1?.mean;
    return { ...rest, ...(report ? { summary: { model: report.source.name, clean: { trR1: r1(report.clean.tr), irR1: r1(report.clean.ir) }, robust: { trR1: r1(report.robust.tr), irR1: r1(report.robust.ir) } } } : {}) };
  }

  async get(id: string): Promise<ProbeDoc | undefined> {
    if (!/^[A-Za-z0-9_-]{1,80}$/.test(id)) return undefined;
    const d = await this.store.getDoc<ProbeDoc>('probes', id);
    return d && this.reapCut(d);
  }

  async list(): Promise<ProbeDoc[]> {
    const docs = await Promise.all((await this.store.listDocs<ProbeDoc>('probes')).map((d) => this.reapCut(d)));
    return docs.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  }

  /** an unfinished probe that ran under ctx.waitUntil past its horizon was cut: failed, so it stops counting as pending */
  private async reapCut(d: ProbeDoc): Promise<ProbeDoc> {
    const unfinished = d.status === 'queued' || d.status === 'running';
    if (unfinished && !this.running.has(d.id) && !this.queue.includes(d.id) && cutByRuntime(this.background, 'probe', d.createdAt)) {
      await this.finish(d, 'failed', `probe failed: ${cutMessage(this.background)}`);
    }
    return d;
  }

  async html(p: ProbeDoc): Promise<string> {
    if (p.report) return renderRobustHtml(p.report, `Attack probe ${p.id}`);
    return renderStatusHtml(`Probe ${p.id}`, [`Status: ${p.status} (${p.progress.stage}, ${p.progress.done}/${p.progress.total})`, ...(p.error ? [p.error] : [])]);
  }

  private pending(): number {
    return this.queue.length + this.running.size;
  }

  private updateGauge(): void {
    this.metrics.probes.set({ status: 'queued' }, this.queue.length);
    this.metrics.probes.set({ status: 'running' }, this.running.size);
  }

  /**
   * items a 95% percentile-bootstrap interval of +-halfWidth points on a recall needs at worst (p = 0.5, normal
   * approximation): 1.96^2 * p (1 - p) / h^2; refused when it exceeds limits.maxProbeSample
   */
  private sampleForHalfWidth(halfWidth: number): number {
    const n = Math.ceil((1.96 ** 2 * 0.25) / (halfWidth / 100) ** 2);
    if (n > this.limits.maxProbeSample) {
      throw new ApiError(422, 'validation_error', `halfWidth ${halfWidth} needs ${n} items, above limits.maxProbeSample ${this.limits.maxProbeSample}`, 'halfWidth');
    }
    return n;
  }

  /** queued + running probes: this process's when it runs them all, else the store's (other isolates run them) */
  private async pendingCount(): Promise<number> {
    if (!this.background.distributed) return this.pending();
    return (await this.list()).filter((d) => d.status === 'queued' || d.status === 'running').length;
  }

  /** `ctx`: the request's ExecutionContext (Workers), which keeps an in-process probe alive after the response */
  async create(body: ProbeRequestBody & { namespace: string }, keyId: string, ctx?: WaitUntilContext): Promise<ProbeDoc> {
    const pending = await this.pendingCount();
    if (pending >= this.limits.maxProbesPending) {
      throw new ApiError(429, 'too_many_probes', `${pending} probes are queued or running (limit ${this.limits.maxProbesPending})`, undefined, { 'Retry-After': '30' });
    }
    const attacks = body.attacks ?? [...DEFAULT_WHITE_BOX_SUITE];
    try {
      // the live source serves white-box and black-box attacks; transfer needs a surrogate the API does not take
      checkSuite(attacks, { source: 'live-index', whiteBox: true, surrogate: false, jpeg: false });
    } catch (e) {
      const m = /^attacks\[(\d+)\]/.exec((e as Error).message);
      throw new ApiError(422, 'validation_error', (e as Error).message, m ? `attacks[${m[1]}]` : 'attacks');
    }
    let pairs: ProbeRequestStored['pairs'];
    if (body.pairs) {
      this.service.assertWritable(); // pairs are indexed into a scratch namespace: 409 on the edge's snapshot
      pairs = [];
      for (let i = 0; i < body.pairs.length; i++) {
        const field = `pairs[${i}].image`;
        const img = await checkImage(decodeBase64Image(body.pairs[i].image, field, this.service.limits), field, this.service.limits);
        await imageToPixels(img.bytes, DECODABLE_CHECK, field, this.service.limits);
        await this.store.putBlob(img.sha256, img.bytes);
        pairs.push({ image: img.sha256, captions: body.pairs[i].captions });
      }
    }
    const now = new Date().toISOString();
    const { pairs: _p, ...rest } = body;
    const doc: ProbeDoc = {
      id: newId('probe'),
      status: 'queued',
      progress: { done: 0, total: 0, stage: 'queued' },
      createdAt: now,
      updatedAt: now,
      key: keyId,
      request: { ...rest, attacks, ...(pairs ? { pairs } : { sample: body.halfWidth !== undefined ? this.sampleForHalfWidth(body.halfWidth) : (body.sample ?? 8) }) },
    };
    await this.store.putDoc('probes', doc.id, doc);
    if (this.background.placement('probe') === 'queue') {
      try {
        await this.background.enqueue({ kind: 'probe', id: doc.id });
      } catch (e) {
        await this.finish(doc, 'failed', `the job queue refused the probe: ${(e as Error).message}`);
        throw new ApiError(503, 'queue_unavailable', `the job queue refused the probe (${(e as Error).message}); retry later`);
      }
      return doc;
    }
    this.queue.push(doc.id);
    this.updateGauge();
    this.pump();
    this.background.keepAlive(this.settled(doc.id), ctx);
    return doc;
  }

  /** resolves when the probe has left this process's queue and finished running here */
  private async settled(id: string): Promise<void> {
    while (this.queue.includes(id) || this.running.has(id)) await (this.runningDone.get(id)?.catch(() => undefined) ?? new Promise((r) => setTimeout(r, 50)));
  }

  private async finish(doc: ProbeDoc, status: 'failed' | 'canceled', error?: string): Promise<void> {
    doc.status = status;
    doc.progress.stage = status;
    if (error) doc.error = error;
    doc.updatedAt = new Date().toISOString();
    await this.store.putDoc('probes', doc.id, doc);
  }

  private async cancelRequested(id: string): Promise<boolean> {
    return (await this.store.getText('probes', id, 'cancel')) !== undefined;
  }

  /**
   * Queue consumer entry: runs one probe to completion from the store. A redelivered message of a finished probe
   * does nothing; a probe left `running` by a consumer that died is run again from the start (seeded: the same
   * report). Throws when the probe did not reach a final state (stopped by shutdown): the queue redelivers it.
   */
  async runById(id: string): Promise<ProbeDoc | undefined> {
    const doc = await this.get(id);
    if (!doc) return undefined; // deleted meanwhile: nothing to run
    if (doc.status !== 'queued' && doc.status !== 'running') return doc;
    if (await this.cancelRequested(id)) {
      await this.finish(doc, 'canceled');
      return doc;
    }
    if (this.running.has(id)) throw new Error(`probe ${id} is already running in this process`);
    const ctl = new AbortController();
    this.running.set(id, ctl);
    this.updateGauge();
    const done = this.execute(id, ctl.signal);
    this.runningDone.set(id, done);
    try {
      await done;
    } finally {
      this.running.delete(id);
      this.runningDone.delete(id);
      this.updateGauge();
    }
    const after = await this.get(id);
    if (after && (after.status === 'queued' || after.status === 'running')) throw new Error(`probe ${id} stopped before finishing (${after.progress.stage}): to be redelivered`);
    return after;
  }

  /** Dead-letter entry: a probe whose deliveries are exhausted is marked failed (unless already final). */
  async failById(id: string, reason: string): Promise<void> {
    const doc = await this.get(id);
    if (doc && (doc.status === 'queued' || doc.status === 'running')) await this.finish(doc, 'failed', `probe failed: ${reason}`);
  }

  /** queued/running -> canceled; finished -> deleted. Returns the outcome, or undefined when unknown. */
  async cancelOrDelete(id: string): Promise<'canceled' | 'deleted' | undefined> {
    const doc = await this.get(id);
    if (!doc) return undefined;
    if (this.queue.includes(id)) {
      this.queue = this.queue.filter((q) => q !== id);
      doc.status = 'canceled';
      doc.progress.stage = 'canceled';
      doc.updatedAt = new Date().toISOString();
      await this.store.putDoc('probes', id, doc);
      this.updateGauge();
      return 'canceled';
    }
    const ctl = this.running.get(id);
    if (ctl) {
      ctl.abort(new Canceled('cancel'));
      await this.runningDone.get(id)?.catch(() => undefined);
      return 'canceled';
    }
    if (this.background.distributed && (doc.status === 'queued' || doc.status === 'running')) {
      // another isolate / container has it (or will): the marker stops it at its next chunk, or before it starts
      await this.store.putText('probes', id, 'cancel', new Date().toISOString());
      if (doc.status === 'queued') await this.finish(doc, 'canceled');
      return 'canceled';
    }
    await this.store.deleteDoc('probes', id);
    return 'deleted';
  }

  async recover(): Promise<void> {
    // distributed: the queue redelivers unfinished probes; re-running them at every isolate boot would duplicate them
    if (this.background.distributed) return;
    for (const d of await this.list()) {
      if (d.status === 'queued' || d.status === 'running') {
        d.status = 'queued';
        d.progress = { done: 0, total: 0, stage: 'queued (re-queued after a restart)' };
        d.updatedAt = new Date().toISOString();
        await this.store.putDoc('probes', d.id, d);
        this.queue.push(d.id);
      }
    }
    this.queue.reverse(); // oldest first
    this.updateGauge();
    this.pump();
  }

  /** Stops running probes without marking them: they are re-queued at the next start. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.queue = [];
    for (const c of this.running.values()) c.abort(new Canceled('shutdown'));
    await Promise.all([...this.runningDone.values()].map((p) => p.catch(() => undefined)));
  }

  /** Test helper: resolves when nothing is queued or running. */
  async idle(): Promise<void> {
    while (this.pending() > 0) await new Promise((r) => setTimeout(r, 20));
  }

  private pump(): void {
    while (!this.stopping && this.running.size < this.limits.probeConcurrency && this.queue.length > 0) {
      const id = this.queue.shift()!;
      const ctl = new AbortController();
      this.running.set(id, ctl);
      const done = this.execute(id, ctl.signal).finally(() => {
        this.running.delete(id);
        this.runningDone.delete(id);
        this.updateGauge();
        this.pump();
      });
      this.runningDone.set(id, done);
    }
    this.updateGauge();
  }

  private async execute(id: string, signal: AbortSignal): Promise<void> {
    const doc = await this.get(id);
    if (!doc) return;
    doc.status = 'running';
    doc.updatedAt = new Date().toISOString();
    await this.store.putDoc('probes', id, doc);
    const startedMs = Date.now();
    const save = async () => {
      doc.updatedAt = new Date().toISOString();
      const { done, total } = doc.progress;
      if (done > 0 && total > done) doc.progress.etaSeconds = Math.round(((Date.now() - startedMs) / 1000 / done) * (total - done));
      else delete doc.progress.etaSeconds;
      await this.store.putDoc('probes', id, doc);
    };
    let qs: QuerySet | undefined;
    const model = this.service.active;
    try {
      qs = await this.buildQuerySet(doc, model);
      doc.report = await this.runProbe(doc, qs, model, signal, save);
      doc.status = 'succeeded';
      doc.progress.stage = 'done';
    } catch (e) {
      const reason = signal.reason instanceof Canceled ? signal.reason.reason : e instanceof Canceled ? e.reason : undefined;
      if (reason === 'shutdown') {
        if (qs?.scratch) await this.dropScratch(qs, model);
        return; // stays running on disk: re-queued at the next start
      }
      if (reason === 'cancel') {
        doc.status = 'canceled';
        doc.progress.stage = 'canceled';
      } else {
        doc.status = 'failed';
        doc.error = e instanceof ApiError ? e.message : `probe failed: ${(e as Error).message}`;
        this.logger.error({ probe: id, err: (e as Error).message }, 'probe failed');
      }
    }
    if (qs?.scratch) await this.dropScratch(qs, model);
    await save();
  }

  private async dropScratch(qs: QuerySet, model: ActiveModel): Promise<void> {
    await this.service.dropModelNamespace(qs.namespace, model.tag, { quiet: true });
  }

  private async buildQuerySet(doc: ProbeDoc, model: ActiveModel): Promise<QuerySet> {
    const S = model.encoder.imageSize;
    const per = S * S * 3;
    const req = doc.request;
    let items: StoredItem[];
    let namespace = req.namespace;
    let scratch = false;
    if (req.pairs) {
      namespace = `probe${doc.id.replace(/[^A-Za-z0-9]/g, '').slice(-20)}`;
      scratch = true;
      items = req.pairs.map((p, i) => ({ id: `q${i}`, namespace, image: { sha256: p.image, format: '', width: 0, height: 0, bytes: 0 }, captions: p.captions, metadata: {}, contentHash: '', updatedAt: '' }));
      await this.service.reembed(model, items);
    } else {
      const all = (await this.service.store.listItems(namespace)).filter((i) => i.image && i.captions.length > 0);
      if (all.length === 0) throw new ApiError(422, 'no_queries', `namespace ${namespace} has no items with both an image and captions to probe`);
      const rng = new Rng(req.seed);
      const idx = all.map((_, i) => i);
      for (let i = idx.length - 1; i > 0; i--) {
        const j = rng.int(i + 1);
        [idx[i], idx[j]] = [idx[j], idx[i]];
      }
      items = idx.slice(0, Math.min(req.sample ?? 8, all.length)).sort((a, b) => a - b).map((i) => all[i]);
    }
    const images = new Uint8Array(items.length * per);
    const captions: string[] = [];
    const captionToImage: number[] = [];
    for (let i = 0; i < items.length; i++) {
      images.set((await this.service.pixelsOf(items[i], model.encoder))!, i * per);
      for (const c of items[i].captions) {
        captions.push(c);
        captionToImage.push(i);
      }
    }
    const origin = req.pairs ? `${items.length} supplied pairs indexed into a scratch namespace` : `${items.length} items sampled with seed ${req.seed} from namespace "${req.namespace}"`;
    return { ids: items.map((i) => i.id), images, size: S, captions, captionToImage, origin, namespace, scratch };
  }

  private async runProbe(doc: ProbeDoc, qs: QuerySet, model: ActiveModel, signal: AbortSignal, save: () => Promise<void>): Promise<ProbeReport> {
    const req = doc.request;
    doc.progress = { done: 0, total: 0, stage: 'clean' };
    await save();
    return runRobustProbe({
      source: new LiveIndexRankSource(this.service, model, qs.namespace),
      queries: qs,
      attacks: req.attacks ?? DEFAULT_WHITE_BOX_SUITE,
      topK: EVAL_TOP,
      goalK: req.k,
      seed: req.seed,
      resamples: req.resamples,
      chunkImages: CHUNK,
      signal,
      onProgress: (p) => Object.assign(doc.progress, p),
      beforeChunk: async () => {
        if (this.background.distributed && (await this.cancelRequested(doc.id))) throw new Canceled('cancel');
        await save();
        await this.hooks.beforeChunk?.(doc);
      },
    });
  }
}
