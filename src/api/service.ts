/**
 * The retrieval service behind the routes, the activation job and the probes: items in, vectors in the index,
 * searches out. Stateless apart from which model is active (and which one is being built).
 *
 * Index layout (documented in docs/api.md): for a user namespace `ns` and a model with tag `t`
 *   `ns--t--img`  one record per item that has an image: id = item id, vector = image embedding,
 *                 metadata = the item's metadata                                   -> search target "images"
 *   `ns--t--txt`  one record per caption: id = `<item id>#<k>`, vector = text embedding, metadata = the item's
 *                 metadata + `_item` (item id), `_caption` (k), `_text` (the caption) -> search target "texts"
 * User metadata keys may not start with `_`; result metadata never shows the `_` keys.
 */
import type { Logger } from 'pino';
import type { ManyfoldConfig } from '../config.js';
import { decodeSpecForModel, specKey, type DecodeSpec } from '../data/imageCache.js';
import { parseFilter } from '../index/filter.js';
import { isIndexError } from '../index/errors.js';
import { assertIndexWritable, checkIndexDimensionRoute } from '../index/capabilities.js';
import type { Metadata, QueryMatch, VectorIndex, VectorRecord } from '../index/types.js';
// type-only: the Pinecone adapter itself is loaded by createPineconeIndex, never by this module (edge bundles)
import type { EventuallyConsistentCounts } from '../index/pinecone.js';
import type { Encoder } from '../model/encoder.js';
import { ApiError } from './errors.js';
import type { EncoderQueue } from './encoderQueue.js';
import { checkImage, imageToPixels, type CheckedImage, type ImageLimits } from './images.js';
import type { ModelRegistry } from './registry.js';
import { itemContentHash, type Store, type StoredItem } from './store.js';

export type Target = 'images' | 'texts';

export interface ItemInput {
  id: string;
  /** checked image bytes */
  image?: CheckedImage;
  captions?: string[];
  metadata?: Metadata;
}

export interface UpsertOutcome {
  id: string;
  status: 'created' | 'updated' | 'unchanged';
  image: boolean;
  captions: number;
}

export interface SearchHit {
  id: string;
  score: number;
  metadata: Metadata;
  /** target "texts": which caption of the item matched, and its text */
  captionIndex?: number;
  caption?: string;
}

export interface ActiveModel {
  id: string;
  tag: string;
  encoder: Encoder;
}

export function physicalNamespace(ns: string, tag: string, target: Target): string {
  return `${ns}--${tag}--${target === 'images' ? 'img' : 'txt'}`;
}

export function captionRecordId(itemId: string, k: number): string {
  return `${itemId}#${k}`;
}

/** How a model's images are decoded (Manyfold's rule or CLIPImageProcessor's): the model's config decides. */
export function decodeSpecOf(encoder: Encoder): DecodeSpec {
  return decodeSpecForModel(encoder.config);
}

function publicMetadata(m: Metadata | undefined): Metadata {
  const out: Metadata = {};
  if (!m) return out;
  for (const [k, v] of Object.entries(m)) if (!k.startsWith('_')) out[k] = v;
  return out;
}

export class RetrievalService {
  active!: ActiveModel;
  /** the model an activation job is building: writes go to it too (dual write) */
  building?: ActiveModel;
  readonly limits: ImageLimits;

  constructor(
    readonly config: ManyfoldConfig,
    readonly registry: ModelRegistry,
    readonly index: VectorIndex,
    readonly store: Store,
    readonly queue: EncoderQueue,
    readonly logger: Logger,
  ) {
    this.limits = { maxImageBytes: config.limits.maxImageBytes, maxImagePixels: config.limits.maxImagePixels };
  }

  async activate(id: string): Promise<ActiveModel> {
    const info = this.registry.info(id);
    if (!info) throw new Error(`model ${id} is not in the registry`);
    const encoder = await this.registry.get(id);
    await this.checkIndexDimension({ id, tag: info.tag, encoder });
    this.active = { id, tag: info.tag, encoder };
    return this.active;
  }

  /**
   * Refuses a model whose embedding dimension the index cannot hold, before anything is written: a Pinecone
   * index has one dimension fixed at creation (describe_index_stats reports it whatever the namespace), so a
   * 512-d CLIP model on a 64-d index would otherwise fail at its first upsert, halfway through an activation.
   * LanceDB / memory namespaces are per model (`<ns>--<tag>--...`) and take the dimension of their first write;
   * for them this only catches a namespace left by another model under the same tag.
   */
  async checkIndexDimension(model: ActiveModel): Promise<void> {
    try {
      await checkIndexDimensionRoute(this.index, model.encoder.dim); // Pinecone with one index per dimension
    } catch (e) {
      if (isIndexError(e) && e.code === 'DIMENSION_MISMATCH') throw new ApiError(409, 'index_dimension_mismatch', `model ${model.id}: ${e.message}`, 'id');
      throw e;
    }
    const namespaces = new Set([this.config.server.defaultNamespace, ...(await this.store.namespaces())]);
    for (const ns of namespaces) {
      for (const target of ['images', 'texts'] as const) {
        const physical = physicalNamespace(ns, model.tag, target);
        const { dimension } = await this.index.stats(physical);
        if (dimension !== undefined && dimension !== model.encoder.dim) {
          const where = this.index.kind === 'pinecone' ? 'the Pinecone index' : `index namespace ${physical}`;
          throw new ApiError(
            409,
            'index_dimension_mismatch',
            `model ${model.id} embeds into ${model.encoder.dim} dimensions but ${where} holds ${dimension}-dimensional vectors` +
              (this.index.kind === 'pinecone' ? `: create a Pinecone index of dimension ${model.encoder.dim} (metric cosine) and point index.pinecone.host at it` : ''),
            'id',
          );
        }
        // one describe_index_stats answers for every namespace of a Pinecone index
        if (this.index.kind === 'pinecone') return;
      }
    }
  }

  /** every model whose namespaces receive writes now: the active one and, during activation, the target */
  private writeTargets(): ActiveModel[] {
    return this.building && this.building.id !== this.active.id ? [this.active, this.building] : [this.active];
  }

  // ------------------------------------------------------------------------------------------- items
  /**
   * The index records of many items for one model (all in one namespace or several): every image and caption is
   * embedded through the queue at once (it micro-batches them into few forward passes) and each namespace gets
   * one upsert and at most one delete. Item by item, a 200-item request was 400 upserts: LanceDB's merge-insert
   * costs ~50 ms whatever its size, so ingest ran at ~4 items/s.
   */
  async writeItemsRecords(model: ActiveModel, writes: readonly { item: StoredItem; pixels: Uint8Array | undefined; previous?: StoredItem }[]): Promise<void> {
    const enc = model.encoder;
    const embedded = await Promise.all(
      writes.map(async ({ item, pixels }) => {
        const [imgVec, capVecs] = await Promise.all([
          pixels ? this.queue.embedImage(enc, pixels) : Promise.resolve(undefined),
          Promise.all(item.captions.map((c) => this.queue.embedText(enc, c))),
        ]);
        return { imgVec, capVecs };
      }),
    );
    // per physical namespace: records to upsert and ids to delete, in item order (the last write of an id wins)
    const byNs = new Map<string, { upsert: VectorRecord[]; remove: string[] }>();
    const slot = (ns: string) => {
      let s = byNs.get(ns);
      if (!s) byNs.set(ns, (s = { upsert: [], remove: [] }));
      return s;
    };
    writes.forEach(({ item, previous }, w) => {
      const { imgVec, capVecs } = embedded[w];
      const imgNs = slot(physicalNamespace(item.namespace, model.tag, 'images'));
      const txtNs = slot(physicalNamespace(item.namespace, model.tag, 'texts'));
      if (imgVec) imgNs.upsert.push({ id: item.id, values: imgVec, metadata: item.metadata });
      else if (previous?.image) imgNs.remove.push(item.id);
      capVecs.forEach((v, k) =>
        txtNs.upsert.push({ id: captionRecordId(item.id, k), values: v, metadata: { ...item.metadata, _item: item.id, _caption: k, _text: item.captions[k] } }),
      );
      const stale = previous ? previous.captions.length : 0;
      for (let k = item.captions.length; k < stale; k++) txtNs.remove.push(captionRecordId(item.id, k));
    });
    for (const [ns, { upsert, remove }] of byNs) {
      if (upsert.length) await this.index.upsert(ns, upsert);
      if (remove.length) await this.index.delete(ns, remove);
    }
  }

  /**
   * Re-embeds stored items with `model` and writes their records (activation, re-indexing, a probe's scratch
   * pairs): each image decoded by the model's rule, then one upsert per namespace. `concurrent` decodes the items'
   * images at once (a re-index batch); the default decodes one at a time (a long activation keeps memory flat).
   */
  async reembed(model: ActiveModel, items: readonly StoredItem[], opts: { concurrent?: boolean } = {}): Promise<void> {
    const writes: { item: StoredItem; pixels: Uint8Array | undefined }[] = [];
    if (opts.concurrent) writes.push(...(await Promise.all(items.map(async (item) => ({ item, pixels: await this.pixelsOf(item, model.encoder) })))));
    else for (const item of items) writes.push({ item, pixels: await this.pixelsOf(item, model.encoder) });
    await this.writeItemsRecords(model, writes);
  }

  /** 409 when the index takes no writes (the edge's read-only memory snapshot), before any work that would write */
  assertWritable(): void {
    assertIndexWritable(this.index);
  }

  /**
   * How the index's counts follow its writes: a lag policy when they may trail them (Pinecone serverless), else
   * undefined (LanceDB, memory: a count read after a write sees it).
   */
  get countConsistency(): EventuallyConsistentCounts['consistency'] | undefined {
    return eventualCounts(this.index)?.consistency;
  }

  /** The index's records of `model` per user namespace (images, caption records), read now. */
  async recordCounts(model: ActiveModel, namespaces: readonly string[]): Promise<Record<string, { images: number; texts: number }>> {
    const names = namespaces.flatMap((ns) => [physicalNamespace(ns, model.tag, 'images'), physicalNamespace(ns, model.tag, 'texts')]);
    const lagging = eventualCounts(this.index);
    let counts: Record<string, number>;
    if (lagging) counts = await lagging.namespaceCounts(names); // one describe_index_stats for all of them
    else {
      counts = {};
      for (const name of names) counts[name] = (await this.index.stats(name)).count;
    }
    return Object.fromEntries(
      namespaces.map((ns) => [ns, { images: counts[physicalNamespace(ns, model.tag, 'images')] ?? 0, texts: counts[physicalNamespace(ns, model.tag, 'texts')] ?? 0 }]),
    );
  }

  /** Drops a user namespace's records of one model (both its image and caption namespaces); `quiet` ignores failures. */
  async dropModelNamespace(ns: string, tag: string, opts: { quiet?: boolean } = {}): Promise<void> {
    for (const t of ['images', 'texts'] as const) {
      const drop = this.index.dropNamespace(physicalNamespace(ns, tag, t));
      await (opts.quiet ? drop.catch(() => undefined) : drop);
    }
  }

  /** A stored item's pixels for a model, decoded by the model's rule (a CLIP model gets CLIPImageProcessor's). */
  async pixelsOf(item: StoredItem, model: Encoder): Promise<Uint8Array | undefined> {
    if (!item.image) return undefined;
    const bytes = await this.store.getBlob(item.image.sha256);
    return imageToPixels(bytes, decodeSpecOf(model), 'image', this.limits);
  }

  async upsertItems(ns: string, inputs: ItemInput[]): Promise<UpsertOutcome[]> {
    // decode every image first: a bad image fails the whole request before anything is written
    const decoded = new Map<string, Map<string, Uint8Array>>();
    const targets = this.writeTargets();
    assertIndexWritable(this.index); // the edge's memory snapshot: 409 before any blob is stored
    // models that decode alike share the pixels (same spec key); a CLIP and a Manyfold model of one size do not
    const specs = new Map<string, DecodeSpec>();
    const keyOf = new Map<ActiveModel, string>();
    for (const t of targets) {
      const spec = decodeSpecOf(t.encoder);
      keyOf.set(t, specKey(spec));
      specs.set(specKey(spec), spec);
    }
    const pixelsFor = async (img: CheckedImage, i: number): Promise<Map<string, Uint8Array>> => {
      const m = new Map<string, Uint8Array>();
      for (const [key, spec] of specs) m.set(key, await imageToPixels(img.bytes, spec, `items[${i}].image`, this.limits));
      return m;
    };
    for (let i = 0; i < inputs.length; i++) {
      const img = inputs[i].image;
      if (img) decoded.set(`${i}`, await pixelsFor(img, i));
    }
    const out: UpsertOutcome[] = [];
    // last duplicate id in one request wins (index contract)
    const lastIndex = new Map<string, number>();
    inputs.forEach((it, i) => lastIndex.set(it.id, i));
    const writes: { item: StoredItem; previous?: StoredItem; input: number }[] = [];
    for (let i = 0; i < inputs.length; i++) {
      const input = inputs[i];
      if (lastIndex.get(input.id) !== i) continue;
      const captions = input.captions ?? [];
      const metadata = input.metadata ?? {};
      const previous = await this.store.getItem(ns, input.id);
      const contentHash = itemContentHash(input.image?.sha256, captions, metadata);
      if (previous && previous.contentHash === contentHash) {
        out.push({ id: input.id, status: 'unchanged', image: Boolean(input.image), captions: captions.length });
        continue;
      }
      if (input.image) await this.store.putBlob(input.image.sha256, input.image.bytes);
      const item: StoredItem = {
        id: input.id,
        namespace: ns,
        ...(input.image
          ? { image: { sha256: input.image.sha256, format: input.image.format, width: input.image.width, height: input.image.height, bytes: input.image.bytes.length } }
          : {}),
        captions,
        metadata,
        contentHash,
        updatedAt: new Date().toISOString(),
      };
      writes.push({ item, ...(previous ? { previous } : {}), input: i });
      out.push({ id: input.id, status: previous ? 'updated' : 'created', image: Boolean(input.image), captions: captions.length });
    }
    // the index first, then the stored items: a crash in between leaves items whose stored copy is the old one,
    // which the client's retry of the request rewrites (their content hash differs)
    for (const t of targets) {
      await this.writeItemsRecords(
        t,
        writes.map((w) => ({ item: w.item, pixels: decoded.get(`${w.input}`)?.get(keyOf.get(t)!), ...(w.previous ? { previous: w.previous } : {}) })),
      );
    }
    for (const w of writes) await this.store.putItem(w.item);
    return out;
  }

  /** Deletes an item's records from every model's namespaces (the registry's tags) and its stored copy. */
  async deleteItem(ns: string, id: string): Promise<boolean> {
    const item = await this.store.getItem(ns, id);
    if (!item) return false;
    const tags = new Set([...this.registry.list().map((m) => m.tag), this.active.tag]);
    const capIds = item.captions.map((_, k) => captionRecordId(id, k));
    for (const tag of tags) {
      await this.index.delete(physicalNamespace(ns, tag, 'images'), [id]);
      if (capIds.length) await this.index.delete(physicalNamespace(ns, tag, 'texts'), capIds);
    }
    await this.store.deleteItem(ns, id);
    return true;
  }

  // ------------------------------------------------------------------------------------------- search
  /** Validates a filter up front so the caller gets 422 with the offending path. */
  checkFilter(filter: unknown): void {
    try {
      parseFilter(filter);
    } catch (e) {
      if (isIndexError(e)) throw new ApiError(422, 'invalid_filter', e.message, e.field ?? 'filter');
      throw e;
    }
  }

  /**
   * Runs model work (an attack's gradient steps, a white-box probe's encodes) on the encoder's background lane:
   * it waits for every pending client embedding and holds the encoder between clients' batches, never during one.
   */
  inBackground<T>(work: () => T | Promise<T>): Promise<T> {
    return this.queue.run(work);
  }

  /** what the served index is (memory, lancedb, pinecone), for reports */
  get indexKind(): VectorIndex['kind'] {
    return this.index.kind;
  }

  async embedQueryText(text: string, model = this.active): Promise<Float32Array> {
    return this.queue.embedText(model.encoder, text);
  }

  async embedQueryImage(img: CheckedImage, field: string, model = this.active): Promise<Float32Array> {
    const px = await imageToPixels(img.bytes, decodeSpecOf(model.encoder), field, this.limits);
    return this.queue.embedImage(model.encoder, px);
  }

  /**
   * One search as a client makes it: the query embedded by `model` on the interactive lane (text; an uploaded
   * image, decoded by the model's rule; or pixels already decoded), then the top-K of `target` in namespace `ns`.
   * The search route and the live-index probe both call it, so a probe measures exactly what clients get.
   */
  async search(
    ns: string,
    query: { text: string } | { image: CheckedImage; field: string } | { pixels: Uint8Array },
    target: Target,
    topK: number,
    filter?: Record<string, unknown>,
    model = this.active,
  ): Promise<SearchHit[]> {
    const vector =
      'text' in query
        ? await this.embedQueryText(query.text, model)
        : 'image' in query
          ? await this.embedQueryImage(query.image, query.field, model)
          : await this.queue.embedImage(model.encoder, query.pixels);
    return this.queryVector(ns, vector, target, topK, filter, model);
  }

  /** observer of every index query's seconds (searches and probes alike; the app feeds the metrics histogram) */
  onIndexQuery?: (seconds: number) => void;

  async queryVector(ns: string, vector: Float32Array, target: Target, topK: number, filter?: Record<string, unknown>, model = this.active): Promise<SearchHit[]> {
    let matches: QueryMatch[];
    const t0 = performance.now();
    try {
      matches = await this.index.query(physicalNamespace(ns, model.tag, target), vector, {
        topK,
        ...(filter ? { filter } : {}),
        includeMetadata: true,
      });
      this.onIndexQuery?.((performance.now() - t0) / 1000);
    } catch (e) {
      if (isIndexError(e) && e.code === 'INVALID_FILTER') throw new ApiError(422, 'invalid_filter', e.message, e.field ?? 'filter');
      throw e;
    }
    return matches.map((m) => {
      if (target === 'images') return { id: m.id, score: m.score, metadata: publicMetadata(m.metadata) };
      const md = m.metadata ?? {};
      return {
        id: typeof md._item === 'string' ? md._item : m.id.replace(/#\d+$/, ''),
        score: m.score,
        metadata: publicMetadata(md),
        ...(typeof md._caption === 'number' ? { captionIndex: md._caption } : {}),
        ...(typeof md._text === 'string' ? { caption: md._text } : {}),
      };
    });
  }
}

/** the index's counts interface when they may lag its writes (Pinecone), else undefined (read once) */
function eventualCounts(index: VectorIndex): EventuallyConsistentCounts | undefined {
  const c = index as Partial<EventuallyConsistentCounts>;
  return c.consistency && typeof c.namespaceCounts === 'function' ? (c as EventuallyConsistentCounts) : undefined;
}
