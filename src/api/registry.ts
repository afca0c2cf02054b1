/**
 * The encoder registry: which model artifacts the server can serve, loaded on demand.
 *
 * Sources are directories: an artifact directory (holding manifest.json) is one model; any other directory is
 * scanned one level deep for artifact directories (e.g. <data>/models/<id>/). Manifests are read (cheap) to
 * list models; weights are loaded and verified (sha256 of every file) on first use and kept while in use.
 * Which model is active is NOT decided here but by the store's state (blue/green, see activation.ts).
 *
 * Each model has a namespace tag: its id when that is short and namespace-safe (content ids `mf-<12 hex>`
 * are), else `m` + 16 hex digits of sha256(id). Index namespaces are `<user ns>--<tag>--img|txt`, so vectors of
 * two models never share a namespace.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { readManifest, type ArtifactManifest } from '../model/artifact.js';
import type { Encoder } from '../model/encoder.js';
import { loadEncoder, type LoadEncoderOptions } from '../model/load-encoder.js';

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

export class ModelRegistry {
  /** the catalogue; subclasses that read artifacts elsewhere fill it in their scan() */
  protected models = new Map<string, ModelInfo>();
  private loaded = new Map<string, Promise<Encoder>>();
  /** sources in priority order; the first model of the first source is the default */
  readonly sources: string[];
  defaultId?: string;

  constructor(
    sources: string[],
    /** how encoders run (model/load-encoder.ts); the edge registry always uses tfjs */
    private readonly loadOptions: LoadEncoderOptions = {},
  ) {
    this.sources = sources.map((s) => resolve(s));
  }

  /** (Re)reads the manifests of every source. Unreadable artifacts are skipped and returned as warnings. */
  async scan(): Promise<string[]> {
    const warnings: string[] = [];
    const found = new Map<string, ModelInfo>();
    let first: string | undefined;
    for (const src of this.sources) {
      if (!existsSync(src)) continue;
      const dirs = existsSync(join(src, 'manifest.json'))
        ? [src]
        : readdirSync(src)
            .filter((n) => !n.startsWith('.'))
            .map((n) => join(src, n))
            .filter((d) => statSync(d).isDirectory() && existsSync(join(d, 'manifest.json')))
            .sort();
      for (const dir of dirs) {
        try {
          const m = await readManifest(dir);
          if (!found.has(m.id)) found.set(m.id, modelInfo(m, dir));
          first ??= m.id;
        } catch (e) {
          warnings.push(`${dir}: ${(e as Error).message}`);
        }
      }
    }
    this.models = found;
    this.defaultId = first;
    return warnings;
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
      p = this.loadEncoder(i);
      p.catch(() => this.loaded.delete(id));
      this.loaded.set(id, p);
    }
    return p;
  }

  /** How one model's encoder is loaded (verified); the only step that depends on where artifacts live. */
  protected async loadEncoder(i: ModelInfo): Promise<Encoder> {
    return loadEncoder(i.dir, this.loadOptions);
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
