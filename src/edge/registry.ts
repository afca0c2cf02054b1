/**
 * EdgeRegistry: the API's ModelRegistry over artifacts read through callbacks (Workers assets, R2, S3)
 * instead of directories. Subclasses ModelRegistry (so the API accepts it) and overrides only how the catalogue is read and how an
 * encoder is loaded. The sources are a fixed list, or a discovery function (a bucket's catalogue, see
 * bucket-catalog.ts) called at every scan, so a model published after boot can be activated without a redeploy.
 */
import { ModelRegistry, modelInfo, type ModelInfo } from '../api/registry.js';
import type { Encoder } from '../model/encoder.js';
import { loadEncoderFrom, readManifestFrom, type ReadFile } from './artifact.js';

export interface EdgeModelSource {
  /** a label for messages (e.g. "assets:/model/") */
  name: string;
  read: ReadFile;
}

/** fixed sources, or a function that lists them afresh at each scan (the first source's model is the default) */
export type EdgeModelSources = EdgeModelSource[] | (() => Promise<EdgeModelSource[]>);

export class EdgeRegistry extends ModelRegistry {
  /** where each model's artifact files are read from */
  private readers = new Map<string, ReadFile>();
  /** bytes of verified artifact files loaded, per model (reported by /ready in the Worker) */
  readonly loadedBytes = new Map<string, number>();

  constructor(private readonly modelSources: EdgeModelSources) {
    super([]);
    if (Array.isArray(modelSources)) this.setSourceNames(modelSources);
  }

  private setSourceNames(sources: EdgeModelSource[]): void {
    (this as { sources: string[] }).sources = sources.map((s) => s.name);
  }

  /** Reads each source's manifest into the shared catalogue; loading, caching and unloading are the base class's. */
  override async scan(): Promise<string[]> {
    const warnings: string[] = [];
    let sources: EdgeModelSource[];
    if (Array.isArray(this.modelSources)) sources = this.modelSources;
    else {
      try {
        sources = await this.modelSources();
      } catch (e) {
        // at boot there is nothing to serve: fail with the reason; later (a rescan on activation) keep what was found
        if (this.models.size === 0) throw e;
        return [`model discovery failed, keeping the previous catalogue: ${(e as Error).message}`];
      }
      this.setSourceNames(sources);
    }
    const found = new Map<string, ModelInfo>();
    const readers = new Map<string, ReadFile>();
    let first: string | undefined;
    for (const src of sources) {
      try {
        const m = await readManifestFrom(src.read);
        if (!found.has(m.id)) {
          found.set(m.id, modelInfo(m, src.name));
          readers.set(m.id, src.read);
        }
        first ??= m.id;
      } catch (e) {
        warnings.push(`${src.name}: ${(e as Error).message}`);
      }
    }
    this.models = found;
    this.readers = readers;
    this.defaultId = first;
    return warnings;
  }

  protected override async loadEncoder(i: ModelInfo): Promise<Encoder> {
    const read = this.readers.get(i.id);
    if (!read) throw new Error(`unknown model ${i.id}`);
    const { encoder, bytes } = await loadEncoderFrom(read);
    this.loadedBytes.set(i.id, bytes);
    return encoder;
  }
}
