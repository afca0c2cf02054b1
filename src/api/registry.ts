/**
 * The encoder registry: which model artifacts the server can serve, loaded on demand and kept while in use.
 * Where artifacts live is a ModelCatalogue, one per runtime:
 *   src/node/model-directories.ts   directories (an artifact directory, or a directory of them one level deep)
 *   src/edge/registry.ts            files read through callbacks: Worker static assets, R2, S3, a bucket catalogue
 * Manifests are read (cheap) to list models; weights are loaded and verified (sha256 of every file) on first use.
 * Which model is active is NOT decided here but by the store's state (blue/green, see activation.ts).
 *
 * Each model has a namespace tag: its id when that is short and namespace-safe (content ids `mf-<12 hex>`
 * are), else `m` + 16 hex digits of sha256(id). Index namespaces are `<user ns>--<tag>--img|txt`, so vectors of
 * two models never share a namespace.
 */
import { createHash } from 'node:crypto';
import type { ArtifactManifest } from '../model/artifact.js';
import type { Encoder } from '../model/encoder.js';

export interface ModelInfo {
  id: string;
  tag: string;
  dir: string;
  preset: string;
  embedDim: number;
  imageSize: number;
  created: string;
  training: Record<string, unknown>;
  metrics: Record<string, unknown>;
}

export function modelTag(id: string): string {
  if (/^[A-Za-z0-9][A-Za-z0-9_.]*(-[A-Za-z0-9_.]+)*$/.test(id) && id.length <= 24 && !id.includes('--')) return id;
  return `m${createHash('sha256').update(id).digest('hex').slice(0, 16)}`;
}

/** Where a runtime's model artifacts live. */
export interface ModelCatalogue {
  /** where models come from, in priority order, for messages */
  readonly sources: readonly string[];
  /** every readable artifact's entry, the default model (the first source's first) first; unreadable ones as warnings */
  scan(): Promise<{ models: ModelInfo[]; warnings: string[] }>;
  /** one model's encoder, its artifact verified */
  load(info: ModelInfo): Promise<Encoder>;
}

export class ModelRegistry {
  private models = new Map<string, ModelInfo>();
  private loaded = new Map<string, Promise<Encoder>>();
  defaultId?: string;

  constructor(private readonly catalogue: ModelCatalogue) {}

  get sources(): readonly string[] {
    return this.catalogue.sources;
  }

  /**
   * (Re)reads the catalogue; returns warnings (unreadable artifacts are skipped). A catalogue that cannot be read
   * at all fails the first scan (nothing to serve) and later ones keep the previous entries.
   */
  async scan(): Promise<string[]> {
    let found: { models: ModelInfo[]; warnings: string[] };
    try {
      found = await this.catalogue.scan();
    } catch (e) {
      if (this.models.size === 0) throw e;
      return [`model discovery failed, keeping the previous catalogue: ${(e as Error).message}`];
    }
    const models = new Map<string, ModelInfo>();
    for (const m of found.models) if (!models.has(m.id)) models.set(m.id, m);
    this.models = models;
    this.defaultId = found.models[0]?.id;
    return found.warnings;
  }

  list(): ModelInfo[] {
    return [...this.models.values()];
  }

  info(id: string): ModelInfo | undefined {
    return this.models.get(id);
  }

  has(id: string): boolean {
    return this.models.has(id);
  }

  /** The encoder of a model, loading (and verifying) its artifact on first use. */
  get(id: string): Promise<Encoder> {
    const i = this.models.get(id);
    if (!i) return Promise.reject(new Error(`unknown model ${id}`));
    let p = this.loaded.get(id);
    if (!p) {
      p = this.catalogue.load(i);
      p.catch(() => this.loaded.delete(id));
      this.loaded.set(id, p);
    }
    return p;
  }

  isLoaded(id: string): boolean {
    return this.loaded.has(id);
  }

  /** Frees a model's tensors (not the active one: the caller decides). */
  async unload(id: string): Promise<void> {
    const p = this.loaded.get(id);
    if (!p) return;
    this.loaded.delete(id);
    try {
      await (await p).dispose();
    } catch {
      /* it never loaded */
    }
  }

  async close(): Promise<void> {
    for (const id of [...this.loaded.keys()]) await this.unload(id);
  }
}

/** The catalogue entry of an artifact (`dir` = where it was found: a directory, or a source label on the edge). */
export function modelInfo(m: ArtifactManifest, dir: string): ModelInfo {
  return {
    id: m.id,
    tag: modelTag(m.id),
    dir,
    preset: m.config.preset,
    embedDim: m.config.embedDim,
    imageSize: m.config.image.size,
    created: m.created,
    training: m.training as Record<string, unknown>,
    metrics: m.metrics,
  };
}
