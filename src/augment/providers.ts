/**
 * Cross-modal providers behind one interface, and their cache.
 *
 * A provider turns an image into captions (a captioner), captions into images (a generator) and/or a caption
 * into paraphrases. Providers are only ever called OFFLINE, by `manyfold augment prepare`, which writes their
 * outputs to a cache file; training reads that file (readProviderCache: one readFileSync, never a write, never a
 * network call), so a training step never waits on a model server.
 * - scenesOracleProvider: the benchmark's oracle captioner/renderer (oracle.ts), for `scenes` data;
 * - httpProvider: a user-run model behind an OpenAI-compatible API: POST {baseUrl}/chat/completions (a
 *   vision chat model captions a PNG data URL, or paraphrases a caption) and POST {baseUrl}/images/generations
 *   (b64_json PNGs, resized to the data set's size).
 */
import { existsSync, readFileSync } from 'node:fs';
import sharp from 'sharp';
import { writeFileAtomic } from '../util/atomic.js';
import type { DatasetSplit, SceneGraph } from '../data/types.js';
import { Rng } from '../util/rng.js';
import type { Augmenter, Pair } from './types.js';
import { withCaptions } from './types.js';
import { oracleCaptions, renderSceneVariant, ORACLE_CAPTIONER, ORACLE_RENDERER } from './oracle.js';

export interface ProviderItem {
  source: number;
  imageId: string;
  /** RGB uint8 [size, size, 3] */
  image: Uint8Array;
  size: number;
  captions: readonly string[];
  scene?: SceneGraph;
}

export interface ProviderCounts {
  captions: number;
  images: number;
  paraphrases: number;
}

export interface CrossModalProvider {
  readonly name: string;
  /** image -> new captions */
  captions?(item: ProviderItem, count: number, rng: Rng): Promise<string[]>;
  /** the image's captions -> new images (RGB uint8 [size,size,3]) */
  images?(item: ProviderItem, count: number, rng: Rng): Promise<Uint8Array[]>;
  /** caption -> paraphrases */
  paraphrases?(caption: string, count: number, rng: Rng): Promise<string[]>;
}

// ---------------------------------------------------------------------------------------------- scenes oracle

export function scenesOracleProvider(): CrossModalProvider {
  return {
    name: `${ORACLE_CAPTIONER}+${ORACLE_RENDERER}`,
    captions: async (item, count, rng) => (item.scene ? oracleCaptions(item.scene, item.captions, count, rng) : []),
    images: async (item, count, rng) => (item.scene ? Array.from({ length: count }, () => renderSceneVariant(item.scene!, item.size, rng)) : []),
  };
}

// ---------------------------------------------------------------------------------------------- HTTP

export interface HttpProviderOptions {
  /** e.g. http://127.0.0.1:8000/v1 */
  baseUrl: string;
  /** chat model for captions and paraphrases (omit to skip them) */
  captionModel?: string;
  /** image-generation model (omit to skip images) */
  imageModel?: string;
  /** sent as `Authorization: Bearer ...` when set (read it from the environment, not from a flag) */
  apiKey?: string;
  timeoutMs?: number;
  captionPrompt?: string;
  paraphrasePrompt?: string;
  /** image size requested from the generator */
  generateSize?: string;
  fetch?: typeof fetch;
}

export const DEFAULT_CAPTION_PROMPT = 'Write one short caption (at most 20 words) that describes this image: name every object with its colour and shape, and say where the objects are relative to each other. Reply with the caption only.';
export const DEFAULT_PARAPHRASE_PROMPT = 'Paraphrase this image caption in at most 20 words. Keep every object, colour, size and spatial relation exactly; change only the wording. Reply with the paraphrase only.\n\nCaption: ';

function cleanReply(s: string): string {
  return s.replace(/^\s*["'“]+|["'”]+\s*$/g, '').replace(/\s+/g, ' ').trim().toLowerCase().replace(/[.]+$/, '');
}

export function httpProvider(o: HttpProviderOptions): CrossModalProvider {
  const f = o.fetch ?? fetch;
  const base = o.baseUrl.replace(/\/+$/, '');
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (o.apiKey) headers.authorization = `Bearer ${o.apiKey}`;
  const post = async (path: string, body: unknown): Promise<Record<string, unknown>> => {
    const res = await f(`${base}${path}`, { method: 'POST', headers, body: JSON.stringify(body), signal: AbortSignal.timeout(o.timeoutMs ?? 60_000) });
    const text = await res.text();
    if (!res.ok) throw new Error(`provider ${base}${path}: HTTP ${res.status}: ${text.slice(0, 200)}`);
    try {
      return JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw new Error(`provider ${base}${path}: response is not JSON: ${text.slice(0, 200)}`);
    }
  };
  const chat = async (content: unknown, count: number): Promise<string[]> => {
    const out: string[] = [];
    for (let attempt = 0; out.length < count && attempt < count * 2; attempt++) {
      const r = await post('/chat/completions', { model: o.captionModel, messages: [{ role: 'user', content }], n: count - out.length, temperature: 0.9 });
      const choices = (r.choices as { message?: { content?: unknown } }[] | undefined) ?? [];
      for (const c of choices) {
        const t = typeof c.message?.content === 'string' ? cleanReply(c.message.content) : '';
        if (t && !out.includes(t)) out.push(t);
      }
      if (choices.length === 0) break;
    }
    return out.slice(0, count);
  };
  const p: CrossModalProvider = { name: `http:${base}` };
  if (o.captionModel) {
    p.captions = async (item, count) => {
      const png = await sharp(Buffer.from(item.image), { raw: { width: item.size, height: item.size, channels: 3 } }).png().toBuffer();
      const url = `data:image/png;base64,${png.toString('base64')}`;
      const have = new Set(item.captions);
      return (await chat([{ type: 'text', text: o.captionPrompt ?? DEFAULT_CAPTION_PROMPT }, { type: 'image_url', image_url: { url } }], count)).filter((c) => !have.has(c));
    };
    p.paraphrases = async (caption, count) => (await chat((o.paraphrasePrompt ?? DEFAULT_PARAPHRASE_PROMPT) + caption, count)).filter((c) => c !== caption);
  }
  if (o.imageModel) {
    p.images = async (item, count, rng) => {
      const out: Uint8Array[] = [];
      for (let k = 0; k < count && item.captions.length; k++) {
        const prompt = item.captions[rng.int(item.captions.length)];
        const r = await post('/images/generations', { model: o.imageModel, prompt, n: 1, size: o.generateSize ?? '256x256', response_format: 'b64_json' });
        const data = (r.data as { b64_json?: string }[] | undefined) ?? [];
        for (const d of data) {
          if (!d.b64_json) continue;
          const raw = await sharp(Buffer.from(d.b64_json, 'base64')).removeAlpha().resize(item.size, item.size, { fit: 'cover' }).raw().toBuffer();
          out.push(new Uint8Array(raw));
        }
      }
      return out;
    };
  }
  return p;
}

// ---------------------------------------------------------------------------------------------- cache

export const PROVIDER_CACHE_FORMAT = 'manyfold-augment-cache/1';

export interface ProviderCacheEntry {
  captions?: string[];
  /** base64 of raw RGB uint8 [size,size,3] */
  images?: string[];
  /** ground-truth caption -> paraphrases */
  paraphrases?: Record<string, string[]>;
}

export interface ProviderCacheFile {
  format: typeof PROVIDER_CACHE_FORMAT;
  provider: string;
  size: number;
  data: string;
  split: string;
  entries: Record<string, ProviderCacheEntry>;
}

/** The cache as training sees it: read once, looked up synchronously. */
export class ProviderCache {
  private constructor(
    readonly file: ProviderCacheFile,
    readonly path: string,
  ) {}

  static read(path: string): ProviderCache {
    let parsed: ProviderCacheFile;
    try {
      parsed = JSON.parse(readFileSync(path, 'utf8')) as ProviderCacheFile;
    } catch (e) {
      throw new Error(`augment cache ${path}: ${(e as Error).message}`);
    }
    if (parsed.format !== PROVIDER_CACHE_FORMAT) throw new Error(`augment cache ${path}: unknown format ${String(parsed.format)}`);
    return new ProviderCache(parsed, path);
  }

  get provider(): string {
    return this.file.provider;
  }

  captions(imageId: string): string[] {
    return this.file.entries[imageId]?.captions ?? [];
  }

  images(imageId: string, size: number): Uint8Array[] {
    if (size !== this.file.size) throw new Error(`augment cache ${this.path} holds ${this.file.size}px images, training uses ${size}px (re-run augment prepare with the model's preset)`);
    return (this.file.entries[imageId]?.images ?? []).map((b) => new Uint8Array(Buffer.from(b, 'base64')));
  }

  paraphrases(caption: string): string[] {
    // paraphrases are stored per image; this index is built lazily
    this.index ??= (() => {
      const m = new Map<string, string[]>();
      for (const e of Object.values(this.file.entries)) for (const [c, ps] of Object.entries(e.paraphrases ?? {})) m.set(c, ps);
      return m;
    })();
    return this.index.get(caption) ?? [];
  }

  private index?: Map<string, string[]>;

  counts(): ProviderCounts {
    let captions = 0;
    let images = 0;
    let paraphrases = 0;
    for (const e of Object.values(this.file.entries)) {
      captions += e.captions?.length ?? 0;
      images += e.images?.length ?? 0;
      for (const ps of Object.values(e.paraphrases ?? {})) paraphrases += ps.length;
    }
    return { captions, images, paraphrases };
  }
}

export function cachedCaptionAugmenter(cache: ProviderCache, imageIds: readonly string[]): Augmenter {
  return {
    name: 'provider-caption',
    kind: 'cross-text',
    augment(pair: Pair): Pair[] {
      const have = new Set(pair.captions);
      const caps = cache.captions(imageIds[pair.source]).filter((c) => !have.has(c));
      return caps.length ? [withCaptions(pair, caps, 'provider-caption')] : [];
    },
  };
}

export function cachedImageAugmenter(cache: ProviderCache, imageIds: readonly string[]): Augmenter {
  return {
    name: 'provider-image',
    kind: 'cross-image',
    augment(pair: Pair): Pair[] {
      return cache.images(imageIds[pair.source], pair.size).map((image, k) => ({ ...pair, image, captions: pair.captions.slice(), origins: pair.origins.slice(), view: `provider-image#${k}` }));
    },
  };
}

// ---------------------------------------------------------------------------------------------- prepare

export interface PrepareOptions {
  split: DatasetSplit;
  provider: CrossModalProvider;
  out: string;
  /** data set file (recorded in the cache) */
  data: string;
  captions?: number;
  images?: number;
  paraphrases?: number;
  seed?: number;
  /** requests in flight */
  concurrency?: number;
  /** save progress every N images (the run resumes from a partial cache) */
  saveEvery?: number;
  onProgress?: (done: number, total: number) => void;
}

/** Query the provider for every image of the split and write the cache (resumes a partial cache of the same provider). */
export async function prepareProviderCache(o: PrepareOptions): Promise<{ file: string; counts: ProviderCounts; skipped: number }> {
  const s = o.split;
  let file: ProviderCacheFile = { format: PROVIDER_CACHE_FORMAT, provider: o.provider.name, size: s.size, data: o.data, split: s.name, entries: {} };
  let skipped = 0;
  if (existsSync(o.out)) {
    const old = ProviderCache.read(o.out).file;
    if (old.provider === file.provider && old.size === file.size && old.split === file.split) file = old;
  }
  const per = s.size * s.size * 3;
  const todo = s.imageIds.map((id, i) => [id, i] as const).filter(([id]) => !file.entries[id]);
  skipped = s.count - todo.length;
  let done = 0;
  let next = 0;
  const save = () => writeFileAtomic(o.out, JSON.stringify(file));
  const worker = async () => {
    while (next < todo.length) {
      const [id, i] = todo[next++];
      const rng = new Rng((o.seed ?? 0) * 1_000_003 + i);
      const item: ProviderItem = { source: i, imageId: id, image: s.images.subarray(i * per, (i + 1) * per), size: s.size, captions: s.imageToCaptions[i].map((c) => s.captions[c]), scene: s.scenes?.[i] };
      const e: ProviderCacheEntry = {};
      if (o.provider.captions && (o.captions ?? 3) > 0) e.captions = await o.provider.captions(item, o.captions ?? 3, rng);
      if (o.provider.images && (o.images ?? 1) > 0) e.images = (await o.provider.images(item, o.images ?? 1, rng)).map((im) => Buffer.from(im).toString('base64'));
      if (o.provider.paraphrases && (o.paraphrases ?? 0) > 0) {
        e.paraphrases = {};
        for (const c of item.captions) e.paraphrases[c] = await o.provider.paraphrases(c, o.paraphrases ?? 0, rng);
      }
      file.entries[id] = e;
      done++;
      o.onProgress?.(done + skipped, s.count);
      if (done % (o.saveEvery ?? 50) === 0) await save();
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, o.concurrency ?? 2) }, worker));
  await save();
  return { file: o.out, counts: ProviderCache.read(o.out).counts(), skipped };
}
