/**
 * The edge runtimes' model catalogue (src/api/registry.ts ModelCatalogue): artifacts read through callbacks
 * (Workers static assets, R2, S3) instead of directories, always on tfjs. The sources are a fixed list, or a
 * discovery function (a bucket's catalogue, see bucket-catalog.ts) called at every scan, so a model published
 * after boot can be activated without a redeploy.
 */
import { modelInfo, type ModelCatalogue, type ModelInfo } from '../api/registry.js';
import type { Encoder } from '../model/encoder.js';
import { loadEncoderFrom, readManifestFrom, type ReadFile } from './artifact.js';

export interface EdgeModelSource {
  /** a label for messages (e.g. "assets:/model/") */
  name: string;
  read: ReadFile;
}

/** fixed sources, or a function that lists them afresh at each scan (the first source's model is the default) */
export type EdgeModelSources = EdgeModelSource[] | (() => Promise<EdgeModelSource[]>);

export class SourceCatalogue implements ModelCatalogue {
  sources: readonly string[] = [];
  /** where each model's artifact files are read from (the last scan's) */
  private readers = new Map<string, ReadFile>();
  /** bytes of verified artifact files loaded, per model */
  readonly loadedBytes = new Map<string, number>();

  constructor(private readonly modelSources: EdgeModelSources) {
    if (Array.isArray(modelSources)) this.sources = modelSources.map((s) => s.name);
  }

  async scan(): Promise<{ models: ModelInfo[]; warnings: string[] }> {
    const sources = Array.isArray(this.modelSources) ? this.modelSources : await this.modelSources();
    this.sources = sources.map((s) => s.name);
    const warnings: string[] = [];
    const models: ModelInfo[] = [];
    const readers = new Map<string, ReadFile>();
    for (const src of sources) {
      try {
        const m = await readManifestFrom(src.read);
        models.push(modelInfo(m, src.name));
        if (!readers.has(m.id)) readers.set(m.id, src.read);
      } catch (e) {
        warnings.push(`${src.name}: ${(e as Error).message}`);
      }
    }
    this.readers = readers;
    return { models, warnings };
  }

  async load(info: ModelInfo): Promise<Encoder> {
    const read = this.readers.get(info.id);
    if (!read) throw new Error(`unknown model ${info.id}`);
    const { encoder, bytes } = await loadEncoderFrom(read);
    this.loadedBytes.set(info.id, bytes);
    return encoder;
  }
}
