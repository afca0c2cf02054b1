/**
 * Attack probes: a security team's question "how robust is the deployed system right now?", answered as an
 * async job against the LIVE encoder and index.
 *
 * A probe = a query set + an attack suite + budgets.
 * - Query set: `sample` items drawn (seeded) from the namespace's stored items that have an image and
 *   captions (their pairs are known) and searched in the production index itself, read-only (nothing is written
 *   to the namespace; `halfWidth` picks the sample size for a wanted interval), or supplied `pairs`, indexed for
 *   the probe into a scratch namespace (`probe<id>`) that is dropped afterwards. Image queries are each item's image (gold: its own captions);
 *   text queries are every caption (gold: its item's image).
 * - Attacks (src/attacks): white-box ones (pgd, text, charedit, coattack, sga) get the served DualEncoder and
 *   tokenizer and run in chunks of a few items on the encoder queue's background lane (searches go first);
 *   black-box ones (blackbox-image, blackbox-text) get a ScoreOracle that goes through the live search path
 *   (encoder queue -> index query, topK 10), so they see exactly what a client sees.
 * - Measurement, the same for every attack: each (clean or adversarial) query is quantised to 8 bits (images:
 *   what a client can send), embedded by the served model and searched in the live index (top 10); a query is a hit at K when its gold is among the first K results.
 *   Robust R@1/5/10 per attack and direction with percentile-bootstrap 95% CIs; ASR = share of the queries
 *   that were a hit at k when clean and are not under attack; worst case per direction = a query counts only if
 *   it survives every attack that covers that direction; query counts (attack forward passes or oracle
 *   queries + evaluation searches) and wall time; the protocol text says all of this next to the numbers.
 * Jobs persist in <data>/probes/<id>.json: queued and running probes are re-queued after a restart (from the
 * start: attacks are seeded, so the report is the same); finished reports survive and render as HTML.
 */
import type { Logger } from 'pino';
import type { LimitsConfig } from '../config.js';
import { attackByName } from '../attacks/registry.js';
import { splitTargets } from '../attacks/goals/retrieval.js';
import type { OracleHit, ScoreOracle } from '../attacks/blackbox/oracle.js';
import type { Attack, AttackBatch, AttackName, AttackResult } from '../attacks/types.js';
import { bootstrapMeanCI, type ConfidenceInterval } from '../eval/bootstrap.js';
import { Rng } from '../util/rng.js';
import { ApiError } from './errors.js';
import { checkImage, decodeBase64Image, imageToPixels } from './images.js';
import { decodeSpecForModel } from '../data/imageCache.js';
import type { ApiMetrics } from './metrics.js';
import { renderProbeHtml } from './probeReport.js';
import type { AttackSpecBody, ProbeRequestBody } from './schemas.js';
import { physicalNamespace, type ActiveModel, type RetrievalService, type SearchHit } from './service.js';
import { newId, type Store, type StoredItem } from './store.js';
import { quantize } from '../util/quantize.js';

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

export interface RecallAtK {
  R1: number;
  R5: number;
  R10: number;
  ci95: { R1: [number, number]; R5: [number, number]; R10: [number, number] };
  n: number;
}

export interface DirectionResult extends RecallAtK {
  /** share (%) of queries that were a hit at k clean and are not under attack, among the clean hits */
  asr: number;
  cleanHitsAtK: number;
}

export interface AttackReport {
  name: AttackName;
  threatModel: 'white-box' | 'black-box';
  goal: string;
  config: Record<string, unknown>;
  seed: number;
  i2t?: DirectionResult;
  t2i?: DirectionResult;
  /** attack cost: white-box forward passes / candidates scored, or black-box oracle queries */
  attackQueries: number;
  /** searches run to measure the attacked queries */
  evalQueries: number;
  wallMs: number;
}

export interface ProbeReport {
  format: 'manyfold-probe/1';
  model: string;
  namespace: string;
  index: string;
  queries: { images: number; texts: number; source: 'sample' | 'pairs' };
  k: number;
  clean: { i2t: RecallAtK; t2i: RecallAtK };
  attacks: AttackReport[];
  worstCase: { i2t?: RecallAtK; t2i?: RecallAtK };
  protocol: string;
  seed: number;
  startedAt: string;
  finishedAt: string;
  wallMs: number;
}

export interface ProbeHooks {
  /** awaited before each chunk of work (tests pause probes with it) */
  beforeChunk?: (probe: ProbeDoc) => Promise<void> | void;
}

/** the default suite (issue 22): the two multimodal attacks, PGD at 10 steps, a 1-word text attack, a black-box one */
const DEFAULT_ATTACKS: AttackSpecBody[] = [
  { name: 'coattack', eps: 2, steps: 10 },
  { name: 'sga', eps: 2, steps: 10 },
  { name: 'pgd', eps: 2, steps: 10 },
  { name: 'text', maxWordsChanged: 1 },
  { name: 'blackbox-text', maxQueries: 30 },
];
const CHUNK = 4;
const EVAL_TOP = 10;
const IMAGE_ATTACKS = new Set<AttackName>(['pgd', 'coattack', 'sga', 'blackbox-image']);
const TEXT_ATTACKS = new Set<AttackName>(['text', 'charedit', 'coattack', 'sga', 'blackbox-text']);

class Canceled extends Error {
  constructor(readonly reason: 'cancel' | 'shutdown') {
    super(`probe ${reason === 'cancel' ? 'canceled' : 'stopped by shutdown'}`);
  }
}

/** options for attackByName from the API's /255 budgets */
export function attackOptions(spec: AttackSpecBody, seed: number): Record<string, unknown> {
  const o: Record<string, unknown> = { seed };
  if (spec.eps !== undefined) o.eps = spec.eps / 255;
  if (spec.stepSize !== undefined) o.stepSize = spec.stepSize / 255;
  else if (spec.eps !== undefined) o.stepSize = Math.max(spec.eps / 4, 0.25) / 255;
  if (spec.steps !== undefined) o.steps = spec.steps;
  if (spec.maxWordsChanged !== undefined) o.maxWordsChanged = spec.maxWordsChanged;
  if (spec.maxQueries !== undefined) o.maxQueries = spec.maxQueries;
  return o;
}

interface QuerySet {
  ids: string[];
  /** [n, S, S, 3] float32 in [0, 1] */
  images: Float32Array;
  size: number;
  captions: string[];
  captionToImage: number[];
  imageToCaptions: number[][];
  /** physical user namespace searched */
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
  ) {}

  public(p: ProbeDoc): Omit<ProbeDoc, 'key'> {
    const { key: _k, ...rest } = p;
    return rest;
  }

  summary(p: ProbeDoc): Record<string, unknown> {
    const { report, key: _k, ...rest } = p;
    return { ...rest, ...(report ? { summary: { model: report.model, clean: { i2tR1: report.clean.i2t.R1, t2iR1: report.clean.t2i.R1 }, worstCase: { i2tR1: report.worstCase.i2t?.R1, t2iR1: report.worstCase.t2i?.R1 } } } : {}) };
  }

  async get(id: string): Promise<ProbeDoc | undefined> {
    if (!/^[A-Za-z0-9_-]{1,80}$/.test(id)) return undefined;
    return this.store.getDoc<ProbeDoc>('probes', id);
  }

  async list(): Promise<ProbeDoc[]> {
    return (await this.store.listDocs<ProbeDoc>('probes')).sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  }

  async html(p: ProbeDoc): Promise<string> {
    return renderProbeHtml(p);
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

  async create(body: ProbeRequestBody & { namespace: string }, keyId: string): Promise<ProbeDoc> {
    if (this.pending() >= this.limits.maxProbesPending) {
      throw new ApiError(429, 'too_many_probes', `${this.pending()} probes are queued or running (limit ${this.limits.maxProbesPending})`, undefined, { 'Retry-After': '30' });
    }
    const attacks = body.attacks ?? DEFAULT_ATTACKS;
    attacks.forEach((a, i) => {
      try {
        attackByName(a.name, attackOptions(a, body.seed));
      } catch (e) {
        throw new ApiError(422, 'validation_error', `attacks[${i}]: ${(e as Error).message}`, `attacks[${i}]`);
      }
    });
    let pairs: ProbeRequestStored['pairs'];
    if (body.pairs) {
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
    this.queue.push(doc.id);
    this.updateGauge();
    this.pump();
    return doc;
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
    await this.store.deleteDoc('probes', id);
    return 'deleted';
  }

  async recover(): Promise<void> {
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
    await this.service.index.dropNamespace(physicalNamespace(qs.namespace, model.tag, 'images')).catch(() => undefined);
    await this.service.index.dropNamespace(physicalNamespace(qs.namespace, model.tag, 'texts')).catch(() => undefined);
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
      const writes = [];
      for (const it of items) writes.push({ item: it, pixels: await this.service.pixelsOf(it, model.encoder) });
      await this.service.writeItemsRecords(model, writes);
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
    const images = new Float32Array(items.length * per);
    const captions: string[] = [];
    const captionToImage: number[] = [];
    const imageToCaptions: number[][] = [];
    for (let i = 0; i < items.length; i++) {
      const px = (await this.service.pixelsOf(items[i], model.encoder))!;
      for (let j = 0; j < per; j++) images[i * per + j] = px[j] / 255;
      imageToCaptions.push(items[i].captions.map((c) => {
        captions.push(c);
        captionToImage.push(i);
        return captions.length - 1;
      }));
    }
    return { ids: items.map((i) => i.id), images, size: S, captions, captionToImage, imageToCaptions, namespace, scratch };
  }

  private async runProbe(doc: ProbeDoc, qs: QuerySet, model: ActiveModel, signal: AbortSignal, save: () => Promise<void>): Promise<ProbeReport> {
    const started = Date.now();
    const req = doc.request;
    const k = req.k;
    const attacks = req.attacks ?? DEFAULT_ATTACKS;
    const nI = qs.ids.length;
    const chunks = Math.ceil(nI / CHUNK);
    doc.progress = { done: 0, total: 1 + attacks.length * chunks, stage: 'clean' };
    await save();
    const check = () => {
      if (signal.aborted) throw signal.reason instanceof Canceled ? signal.reason : new Canceled('cancel');
    };
    const per = qs.size * qs.size * 3;
    const enc = model.encoder;

    // live-path measurement: rank of the gold (item id) among the top 10
    const rankOf = (hits: SearchHit[] | OracleHit[], gold: string) => {
      const r = hits.findIndex((h) => h.id === gold);
      return r < 0 ? EVAL_TOP : r;
    };
    // every image query is quantised to 8 bits first: what a client can send (an image file) and the server decode
    const searchImage = async (px: Float32Array) => this.service.queryVector(qs.namespace, await this.service.queue.embedImage(enc, quantize(px)), 'texts', EVAL_TOP, undefined, model);
    const searchText = async (t: string) => this.service.queryVector(qs.namespace, await this.service.queue.embedText(enc, t), 'images', EVAL_TOP, undefined, model);
    const imageRanks = async (data: Float32Array, rows: number[]) =>
      Promise.all(rows.map(async (r, j) => rankOf(await searchImage(data.slice(j * per, (j + 1) * per)), qs.ids[r])));
    const textRanks = async (texts: string[], rows: number[]) => Promise.all(rows.map(async (c, j) => rankOf(await searchText(texts[j]), qs.ids[qs.captionToImage[c]])));

    await this.hooks.beforeChunk?.(doc);
    check();
    const allImg = Array.from({ length: nI }, (_, i) => i);
    const allCap = qs.captions.map((_, i) => i);
    const cleanI2t = await imageRanks(qs.images, allImg);
    const cleanT2i = await textRanks(qs.captions, allCap);
    doc.progress.done++;
    await save();

    // clean embeddings of the query set (white-box targets)
    const { imageEmb, textEmb } = await this.service.queue.run(async () => ({
      imageEmb: await enc.embedImagesMatrixAsync(qs.images, nI),
      textEmb: await enc.embedTextsMatrixAsync(qs.captions),
    }));

    const oracle: ScoreOracle = async (queries) => {
      check();
      return Promise.all(queries.map(async (q) => (q.kind === 'image' ? searchImage(q.pixels) : searchText(q.text)).then((hits) => hits.map((h) => ({ id: h.id, score: h.score })))));
    };

    const reports: AttackReport[] = [];
    const perAttackRanks: { name: AttackName; i2t?: number[]; t2i?: number[] }[] = [];
    for (const spec of attacks) {
      const attack: Attack = attackByName(spec.name, attackOptions(spec, req.seed));
      doc.progress.stage = `attack ${spec.name}`;
      const i2t: number[] = new Array(nI).fill(-1);
      const t2i: number[] = new Array(qs.captions.length).fill(-1);
      let attackQueries = 0;
      let evalQueries = 0;
      let wallMs = 0;
      let goal = '';
      let config: Record<string, unknown> = {};
      for (let c = 0; c < chunks; c++) {
        await this.hooks.beforeChunk?.(doc);
        check();
        const rows = allImg.slice(c * CHUNK, (c + 1) * CHUNK);
        const capRows = rows.flatMap((r) => qs.imageToCaptions[r]);
        const batch: AttackBatch = {
          images: qs.images.slice(rows[0] * per, (rows[rows.length - 1] + 1) * per),
          size: qs.size,
          captions: capRows.map((ci) => qs.captions[ci]),
          captionToImage: capRows.map((ci) => qs.captionToImage[ci] - rows[0]),
        };
        let result: AttackResult;
        if (attack.threatModel === 'white-box') {
          batch.targets = splitTargets({ imageEmb, textEmb, dim: enc.dim, captionToImage: qs.captionToImage, imageToCaptions: qs.imageToCaptions, batchImages: rows, batchCaptions: capRows, k });
          // white-box attacks need gradients: the differentiable model (built on first need when a native engine serves)
          const model = await enc.differentiable();
          result = await this.service.queue.run(() => attack.run(batch, { encoder: model, tokenizer: enc.tokenizer }));
        } else {
          batch.targets = { k, imageGoldIds: rows.map((r) => [qs.ids[r]]), captionGoldIds: capRows.map((ci) => [qs.ids[qs.captionToImage[ci]]]) };
          delete batch.captionToImage; // black-box goals are the gold ids; no pairing objective
          if (spec.name === 'blackbox-image') delete batch.captions;
          if (spec.name === 'blackbox-text') delete batch.images;
          result = await attack.run(batch, { oracle });
        }
        check();
        attackQueries += result.queries;
        wallMs += result.wallMs;
        goal = result.goal;
        config = result.config;
        if (result.images) {
          const r = await imageRanks(result.images.data, rows);
          rows.forEach((row, j) => (i2t[row] = r[j]));
          evalQueries += rows.length;
        }
        if (result.captions) {
          const r = await textRanks(result.captions.texts, capRows);
          capRows.forEach((ci, j) => (t2i[ci] = r[j]));
          evalQueries += capRows.length;
        }
        doc.progress.done++;
        await save();
      }
      const hasI = IMAGE_ATTACKS.has(spec.name) && i2t.every((r) => r >= 0);
      const hasT = TEXT_ATTACKS.has(spec.name) && t2i.every((r) => r >= 0);
      perAttackRanks.push({ name: spec.name, ...(hasI ? { i2t } : {}), ...(hasT ? { t2i } : {}) });
      reports.push({
        name: spec.name,
        threatModel: attack.threatModel,
        goal,
        config,
        seed: req.seed,
        ...(hasI ? { i2t: direction(i2t, cleanI2t, k, req) } : {}),
        ...(hasT ? { t2i: direction(t2i, cleanT2i, k, req) } : {}),
        attackQueries,
        evalQueries,
        wallMs: Math.round(wallMs),
      });
    }
    const worst = (dir: 'i2t' | 't2i', n: number) => {
      const lists = perAttackRanks.map((p) => p[dir]).filter((x): x is number[] => Array.isArray(x));
      if (lists.length === 0) return undefined;
      return recallAtK(Array.from({ length: n }, (_, q) => Math.max(...lists.map((l) => l[q]))), req);
    };
    const i2tW = worst('i2t', nI);
    const t2iW = worst('t2i', qs.captions.length);
    return {
      format: 'manyfold-probe/1',
      model: model.id,
      namespace: req.namespace,
      index: this.service.index.kind,
      queries: { images: nI, texts: qs.captions.length, source: req.pairs ? 'pairs' : 'sample' },
      k,
      clean: { i2t: recallAtK(cleanI2t, req), t2i: recallAtK(cleanT2i, req) },
      attacks: reports,
      worstCase: { ...(i2tW ? { i2t: i2tW } : {}), ...(t2iW ? { t2i: t2iW } : {}) },
      protocol:
        `Live-path robust recall. Queries: ${nI} images (gold: their own captions) and ${qs.captions.length} captions (gold: their image), ` +
        `${req.pairs ? 'supplied pairs indexed into a scratch namespace' : `sampled with seed ${req.seed} from namespace "${req.namespace}"`}. ` +
        `Every clean or adversarial query is embedded by the served model ${model.id} and searched in the live ${this.service.index.kind} index (top ${EVAL_TOP}); ` +
        `R@K = % of queries whose gold is in the first K results (a gold beyond the top ${EVAL_TOP} is a miss). ` +
        `White-box attacks use the served weights; black-box attacks see only the live search results (ids and scores, top ${EVAL_TOP}). ` +
        `Attack goal: the gold leaves the top-${k}. ASR = % of clean hits at ${k} that the attack turns into misses. Worst case: a query counts only if it survives every attack covering its direction. ` +
        `95% CIs: percentile bootstrap over queries, ${req.resamples} resamples, seed ${req.seed}. Budgets: eps and step sizes in /255 pixel units per attack config (pixel units [0,1] in the config). Every image query, clean or adversarial, is quantised to 8 bits before it is embedded: what an image file carries and a server decodes.`,
      seed: req.seed,
      startedAt: new Date(started).toISOString(),
      finishedAt: new Date().toISOString(),
      wallMs: Date.now() - started,
    };
  }
}

function ci(hits: number[], req: { seed: number; resamples: number }): ConfidenceInterval {
  return bootstrapMeanCI(hits, { seed: req.seed, resamples: req.resamples, scale: 100 });
}

function recallAtK(ranks: number[], req: { seed: number; resamples: number }): RecallAtK {
  const out = { n: ranks.length } as RecallAtK;
  const ci95 = {} as RecallAtK['ci95'];
  for (const K of [1, 5, 10] as const) {
    const hits = ranks.map((r) => (r < K ? 1 : 0));
    const c = ci(hits, req);
    out[`R${K}`] = round2(c.mean);
    ci95[`R${K}`] = [round2(c.lo), round2(c.hi)];
  }
  out.ci95 = ci95;
  return out;
}

function direction(adv: number[], clean: number[], k: number, req: { seed: number; resamples: number }): DirectionResult {
  const cleanHits = clean.map((r, i) => [r < k, i] as const).filter(([h]) => h);
  const flipped = cleanHits.filter(([, i]) => adv[i] >= k).length;
  return { ...recallAtK(adv, req), asr: cleanHits.length ? round2((100 * flipped) / cleanHits.length) : 0, cleanHitsAtK: cleanHits.length };
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}
