/**
 * Scale-out re-index: a queue-driven pipeline that re-embeds every stored item with a model into that model's
 * namespaces (`<ns>--<tag>--img|txt`, the same layout as blue/green activation, src/api/service.ts).
 *
 *   producer  planReindex(): reads the items, writes the plan (expected counts per namespace) to the progress
 *             store, enqueues one message per batch of item ids: {runId, model, ns, batch, ids}
 *   consumer  processMessage(): loads the model, embeds the batch, upserts its records (record ids are
 *             deterministic, so a redelivered or retried batch rewrites the same records: idempotent), then
 *             writes a done marker reindex/<runId>/done/<ns>/<batch>.json. Any error throws: the queue retries
 *             (Cloudflare Queues max_retries, SQS maxReceiveCount) and finally moves the message to the dead-letter
 *             queue, whose consumer calls recordDead() (reindex/<runId>/dead/...).
 *   progress  reindexStatus(): batches done / dead / total, items done, and when every batch is done the
 *             verification: the index counts per namespace equal the plan's expected counts. `complete` means
 *             all batches done AND verified; only then may the namespace be activated (activateReindexed()).
 * The progress store is a BucketLike (R2 on Workers, S3 on AWS, memory/dir locally): one object per batch,
 * so concurrent consumers never contend on a shared counter.
 */
import type { ModelRegistry } from '../api/registry.js';
import { physicalNamespace, type ActiveModel, type RetrievalService } from '../api/service.js';
import type { Store } from '../api/store.js';
import type { VectorIndex } from '../index/types.js';
import { getJson, listAll, putJson, type BucketLike } from '../edge/bucket.js';

export interface ReindexMessage {
  runId: string;
  model: string;
  ns: string;
  batch: number;
  ids: string[];
}

export interface ReindexPlan {
  runId: string;
  model: string;
  tag: string;
  batchSize: number;
  totalBatches: number;
  totalItems: number;
  namespaces: { ns: string; batches: number; items: number; expected: { images: number; texts: number } }[];
  createdAt: string;
}

export interface ReindexStatus {
  runId: string;
  model: string;
  state: 'running' | 'complete' | 'failed' | 'unverified';
  batches: { total: number; done: number; dead: number };
  items: { total: number; done: number; missing: number };
  verification?: { ns: string; expected: { images: number; texts: number }; actual: { images: number; texts: number }; ok: boolean }[];
  elapsedSeconds: number;
  itemsPerSecond: number;
}

export interface ReindexDeps {
  service: RetrievalService;
  registry: ModelRegistry;
  store: Store;
  index: VectorIndex;
  progress: BucketLike;
  /** sends messages to the queue (Cloudflare Queues sendBatch, SQS SendMessageBatch) */
  enqueue?: (messages: ReindexMessage[]) => Promise<void>;
}

/**
 * The re-index's dependencies from a built app (what createEdgeApi returns): its service, registry and index; where
 * run progress is kept; how batches are queued (the runtime's queue; none: processed in the request).
 */
export function reindexDepsOf(built: { api: { service: RetrievalService }; registry: ModelRegistry; index: VectorIndex }, progress: BucketLike, enqueue?: ReindexDeps['enqueue']): ReindexDeps {
  return { service: built.api.service, registry: built.registry, store: built.api.service.store, index: built.index, progress, ...(enqueue ? { enqueue } : {}) };
}

const P = (runId: string) => `reindex/${runId}`;

export function newRunId(): string {
  const rnd = Array.from(crypto.getRandomValues(new Uint8Array(5)), (b) => b.toString(16).padStart(2, '0')).join('');
  return `ri_${Date.now().toString(36)}${rnd}`;
}

/** Producer: plan + enqueue. `send` batches messages in groups of up to 100 (the Queues/SQS batch limits). */
export async function planReindex(deps: ReindexDeps, model: string, opts: { batchSize?: number; runId?: string } = {}): Promise<ReindexPlan> {
  const info = deps.registry.info(model);
  if (!info) throw new Error(`unknown model ${model}`);
  if (!deps.enqueue) throw new Error('no queue producer is configured');
  if (model === deps.service.active.id) throw new Error(`model ${model} is the active model: re-index a different model into its own namespace`);
  const batchSize = Math.max(1, Math.min(256, opts.batchSize ?? 16));
  const runId = opts.runId ?? newRunId();
  const plan: ReindexPlan = { runId, model, tag: info.tag, batchSize, totalBatches: 0, totalItems: 0, namespaces: [], createdAt: new Date().toISOString() };
  const messages: ReindexMessage[] = [];
  for (const ns of await deps.store.namespaces()) {
    const items = await deps.store.listItems(ns);
    const expected = { images: items.filter((i) => i.image).length, texts: items.reduce((a, i) => a + i.captions.length, 0) };
    const ids = items.map((i) => i.id);
    let batches = 0;
    for (let at = 0; at < ids.length; at += batchSize) messages.push({ runId, model, ns, batch: batches++, ids: ids.slice(at, at + batchSize) });
    plan.namespaces.push({ ns, batches, items: ids.length, expected });
    plan.totalBatches += batches;
    plan.totalItems += ids.length;
    // a fresh target: drop whatever an earlier run left in this model's namespaces
    await deps.index.dropNamespace(physicalNamespace(ns, info.tag, 'images'));
    await deps.index.dropNamespace(physicalNamespace(ns, info.tag, 'texts'));
  }
  await putJson(deps.progress, `${P(runId)}/plan.json`, plan);
  for (let at = 0; at < messages.length; at += 100) await deps.enqueue(messages.slice(at, at + 100));
  return plan;
}

const targets = new Map<string, Promise<ActiveModel>>();
async function targetModel(deps: ReindexDeps, model: string): Promise<ActiveModel> {
  let p = targets.get(model);
  if (!p) {
    p = (async () => {
      const info = deps.registry.info(model);
      if (!info) throw new Error(`unknown model ${model}`);
      return { id: model, tag: info.tag, encoder: await deps.registry.get(model) };
    })();
    p.catch(() => targets.delete(model));
    targets.set(model, p);
  }
  return p;
}

/** Consumer: embed + upsert one batch, then mark it done. Throws on failure (the queue retries). */
export async function processMessage(deps: ReindexDeps, msg: ReindexMessage): Promise<{ items: number; missing: number }> {
  if (!msg || typeof msg.runId !== 'string' || !Array.isArray(msg.ids) || typeof msg.ns !== 'string') throw new Error('malformed re-index message');
  const target = await targetModel(deps, msg.model);
  let missing = 0;
  const items = [];
  for (const id of msg.ids) {
    const item = await deps.store.getItem(msg.ns, id);
    if (item) items.push(item);
    else missing++; // deleted since the plan: nothing to index
  }
  // decode, then embed all images and captions of the batch in few forward passes (the queue micro-batches) and
  // write them with one upsert per namespace
  await deps.service.reembed(target, items, { concurrent: true });
  await putJson(deps.progress, `${P(msg.runId)}/done/${msg.ns}/${msg.batch}.json`, { items: items.length, missing, at: new Date().toISOString() });
  return { items: items.length, missing };
}

/** Dead-letter consumer: records a batch that exhausted its retries. */
export async function recordDead(progress: BucketLike, msg: ReindexMessage, error: string): Promise<void> {
  await putJson(progress, `${P(msg.runId)}/dead/${msg.ns}/${msg.batch}.json`, { ids: msg.ids, error, at: new Date().toISOString() });
}

export async function reindexStatus(deps: Pick<ReindexDeps, 'progress' | 'index'>, runId: string): Promise<ReindexStatus | undefined> {
  const plan = await getJson<ReindexPlan>(deps.progress, `${P(runId)}/plan.json`);
  if (!plan) return undefined;
  const doneKeys = await listAll(deps.progress, `${P(runId)}/done/`);
  const deadKeys = await listAll(deps.progress, `${P(runId)}/dead/`);
  let itemsDone = 0;
  let missing = 0;
  let last = Date.parse(plan.createdAt);
  for (const k of doneKeys) {
    const d = await getJson<{ items: number; missing: number; at: string }>(deps.progress, k);
    if (!d) continue;
    itemsDone += d.items;
    missing += d.missing;
    last = Math.max(last, Date.parse(d.at));
  }
  const dead = deadKeys.filter((k) => !doneKeys.includes(k.replace('/dead/', '/done/'))).length;
  const elapsed = Math.max(1e-3, ((doneKeys.length === plan.totalBatches ? last : Date.now()) - Date.parse(plan.createdAt)) / 1000);
  const status: ReindexStatus = {
    runId,
    model: plan.model,
    state: dead > 0 ? 'failed' : 'running',
    batches: { total: plan.totalBatches, done: doneKeys.length, dead },
    items: { total: plan.totalItems, done: itemsDone, missing },
    elapsedSeconds: Math.round(elapsed * 1000) / 1000,
    itemsPerSecond: Math.round((itemsDone / elapsed) * 10) / 10,
  };
  if (doneKeys.length >= plan.totalBatches && dead === 0) {
    status.verification = [];
    for (const n of plan.namespaces) {
      const actual = {
        images: (await deps.index.stats(physicalNamespace(n.ns, plan.tag, 'images'))).count,
        texts: (await deps.index.stats(physicalNamespace(n.ns, plan.tag, 'texts'))).count,
      };
      // items deleted after planning are neither expected nor present
      status.verification.push({ ns: n.ns, expected: n.expected, actual, ok: missing > 0 ? actual.images <= n.expected.images && actual.texts <= n.expected.texts : actual.images === n.expected.images && actual.texts === n.expected.texts });
    }
    status.state = status.verification.every((v) => v.ok) ? 'complete' : 'unverified';
  }
  return status;
}

/** Switches search to the re-indexed model once the run is complete and verified (persisted in the store state). */
export async function activateReindexed(deps: ReindexDeps, runId: string): Promise<ReindexStatus> {
  const status = await reindexStatus(deps, runId);
  if (!status) throw new Error(`no re-index run ${runId}`);
  if (status.state !== 'complete') throw new Error(`re-index run ${runId} is ${status.state}, not complete: refusing to activate`);
  const st = await deps.store.getState();
  const target = await targetModel(deps, status.model);
  await deps.store.putState({ active: target.id, previous: st.active ?? deps.service.active.id, switchedAt: new Date().toISOString() });
  deps.service.active = target;
  return status;
}
