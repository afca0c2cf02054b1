/**
 * EdgeRegistry: the API's ModelRegistry over artifacts read through callbacks (Workers assets, R2, S3)
 * instead of directories. Subclasses ModelRegistry (so the API accepts it) and overrides every public method.
 */
import { ModelRegistry, modelTag, type ModelInfo } from '../api/registry.js';
import type { Encoder } from '../model/encoder.js';
import { loadEncoderFrom, readManifestFrom, type ReadFile } from './artifact.js';

export interface EdgeModelSource {
  /** a label for messages (e.g. "assets:/model/") */
  name: string;
  read: ReadFile;
}

export class EdgeRegistry extends ModelRegistry {
  private infos = new Map<string, ModelInfo & { read: ReadFile }>();
  private encoders = new Map<string, Promise<Encoder>>();
  /** bytes of verified artifact files loaded, per model (reported by /ready in the Worker) */
  readonly loadedBytes = new Map<string, number>();

  constructor(private readonly modelSources: EdgeModelSource[]) {
    super([]);
    (this as { sources: string[] }).sources = modelSources.map((s) => s.name);
  }

  override async scan(): Promise<string[]> {
    const warnings: string[] = [];
    const found = new Map<string, ModelInfo & { read: ReadFile }>();
    let first: string | undefined;
    for (const src of this.modelSources) {
      try {
        const m = await readManifestFrom(src.read);
        if (!found.has(m.id)) {
          found.set(m.id, {
            id: m.id,
            tag: modelTag(m.id),
            dir: src.name,
            preset: m.config.preset,
            embedDim: m.config.embedDim,
            imageSize: m.config.image.size,
            created: m.created,
            training: m.training as Record<string, unknown>,
            metrics: m.metrics,
            read: src.read,
          });
        }
        first ??= m.id;
      } catch (e) {
        warnings.push(`${src.name}: ${(e as Error).message}`);
      }
    }
    this.infos = found;
    this.defaultId = first;
    return warnings;
  }

  override list(): ModelInfo[] {
    return [...this.infos.values()].map(({ read: _r, ...i }) => i);
  }
  override info(id: string): ModelInfo | undefined {
    const i = this.infos.get(id);
    if (!i) return undefined;
    const { read: _r, ...rest } = i;
    return rest;
  }
  override has(id: string): boolean {
    return this.infos.has(id);
  }
  override get(id: string): Promise<Encoder> {
    const i = this.infos.get(id);
    if (!i) return Promise.reject(new Error(`unknown model ${id}`));
    let p = this.encoders.get(id);
    if (!p) {
      p = loadEncoderFrom(i.read).then(({ encoder, bytes }) => {
        this.loadedBytes.set(id, bytes);
        return encoder;
      });
      p.catch(() => this.encoders.delete(id));
      this.encoders.set(id, p);
    }
    return p;
  }
  override isLoaded(id: string): boolean {
    return this.encoders.has(id);
  }
  override async unload(id: string): Promise<void> {
    const p = this.encoders.get(id);
    if (!p) return;
    this.encoders.delete(id);
    try {
      (await p).model.dispose();
    } catch {
      /* never loaded */
    }
  }
  override async close(): Promise<void> {
    for (const id of [...this.encoders.keys()]) await this.unload(id);
  }
}
