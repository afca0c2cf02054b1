/**
 * The Node runtime's model catalogue (src/api/registry.ts ModelCatalogue): directories. An artifact directory
 * (holding manifest.json) is one model; any other directory is scanned one level deep for artifact directories
 * (e.g. <data>/models/<id>/). Encoders load through model/load-encoder.ts (onnxruntime towers when configured).
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { modelInfo, type ModelCatalogue, type ModelInfo } from '../api/registry.js';
import { readManifest } from '../model/artifact.js';
import type { Encoder } from '../model/encoder.js';
import { loadEncoder, type LoadEncoderOptions } from '../model/load-encoder.js';

export class DirectoryCatalogue implements ModelCatalogue {
  readonly sources: readonly string[];

  constructor(
    dirs: readonly string[],
    /** how encoders run (model/load-encoder.ts) */
    private readonly loadOptions: LoadEncoderOptions = {},
  ) {
    this.sources = dirs.map((d) => resolve(d));
  }

  async scan(): Promise<{ models: ModelInfo[]; warnings: string[] }> {
    const warnings: string[] = [];
    const models: ModelInfo[] = [];
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
          models.push(modelInfo(await readManifest(dir), dir));
        } catch (e) {
          warnings.push(`${dir}: ${(e as Error).message}`);
        }
      }
    }
    return { models, warnings };
  }

  load(info: ModelInfo): Promise<Encoder> {
    return loadEncoder(info.dir, this.loadOptions);
  }
}
