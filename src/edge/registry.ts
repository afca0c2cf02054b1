/**
 * EdgeRegistry: the API's ModelRegistry over artifacts read through callbacks (Workers assets, R2, S3)
 * instead of directories. Subclasses ModelRegistry (so the API accepts it) and overrides only how the catalogue is read and how an
 * encoder is loaded.
 */
import { ModelRegistry, modelInfo, type ModelInfo } from '../api/registry.js';
import type { Encoder } from '../model/encoder.js';
import { loadEncoderFrom, readManifestFrom, type ReadFile } from './artifact.js';

export interface EdgeModelSource {
  /** a label for messages (e.g. "assets:/model/") */
  name: string;
  read: ReadFile;
}

export class EdgeRegistry extends ModelRegistry {
  /** where each model's artifact files are read from */
  private readers = new Map<string, ReadFile>();
  /** bytes of verified artifact files loaded, per model (reported by /ready in the Worker) */
  readonly loadedBytes = new Map<string, number>();

  constructor(private readonly modelSources: EdgeModelSource[]) {
    super([]);
    (this as { sources: string[] }).sources = modelSources.map((s) => s.name);
  }

  /** Reads each source's manifest into the shared catalogue; loading, caching and unloading are the base class's. */
  override async scan(): Promise<string[]> {
    const warnings: string[] = [];
    const found = new Map<string, ModelInfo>();
    const readers = new Map<string, ReadFile>();
    let first: string | undefined;
    for (const src of this.modelSources) {
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
