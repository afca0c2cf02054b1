import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Command } from 'commander';
import { loadConfig } from '../../config.js';
import { choiceFlag } from '../flags.js';

/** `--model` accepts an artifact directory or a training run directory holding model/. */
export function resolveModelDir(dir: string): string {
  if (existsSync(join(dir, 'manifest.json'))) return dir;
  if (existsSync(join(dir, 'model', 'manifest.json'))) return join(dir, 'model');
  throw new Error(`no model artifact at ${dir} (expected ${join(dir, 'manifest.json')} or ${join(dir, 'model', 'manifest.json')})`);
}

export function registerEvalCommand(program: Command): void {
  program
    .command('eval')
    .description('retrieval recall (R@1/5/10, both directions, semantic recall on scenes) of a model on a split')
    .requiredOption('--model <dir>', 'model artifact directory (or a training run directory)')
    .requiredOption('--data <file>', 'Karpathy JSON or JSONL manifest')
    .option('--split <name>', 'split to evaluate', 'test')
    .option('--images <dir>', 'image directory (default: relative to the data file)')
    .option('--json <file>', 'write the results as JSON')
    .option('--export-sims <prefix>', 'write PREFIX.json (ground truth) and PREFIX.bin (float32 image x text similarities)')
    .option('--backend <name>', 'auto | tensorflow | wasm | cpu', choiceFlag(['auto', 'tensorflow', 'wasm', 'cpu'] as const))
    .option('--on-bad-row <mode>', 'fail | skip', choiceFlag(['fail', 'skip'] as const))
    .option('--quiet', 'no progress output')
    .action(async (o) => {
      const config = loadConfig({ overrides: { backend: o.backend, data: { file: o.data, imagesDir: o.images, onBadRow: o.onBadRow } } });
      const [{ initBackend }, { loadArtifact }, { Encoder }, { evaluateClean, formatCleanSummary }, { exportSims }, { loadSplit }] = await Promise.all([
        import('../../engine/backend.js'),
        import('../../model/artifact.js'),
        import('../../model/encoder.js'),
        import('../../eval/evaluate.js'),
        import('../../eval/export-sims.js'),
        import('../../../training/run.js'),
      ]);
      await initBackend(config.backend);
      const modelDir = resolveModelDir(o.model);
      const { model, tokenizer, manifest } = await loadArtifact(modelDir);
      const encoder = new Encoder(model, tokenizer, manifest);
      const split = await loadSplit(config, o.split, encoder.imageSize, Boolean(o.quiet));
      if (split.count === 0) throw new Error(`${o.data} has no rows in split "${o.split}"`);
      const result = evaluateClean(encoder, split);
      process.stdout.write(`${formatCleanSummary(result.summary)}\n`);
      if (o.exportSims) {
        mkdirSync(dirname(o.exportSims), { recursive: true });
        const files = await exportSims(o.exportSims, result.sims, split.count, split.captions.length, split.captionToImage, split.imageToCaptions);
        process.stderr.write(`similarities written to ${files.json} and ${files.bin}\n`);
      }
      if (o.json) {
        mkdirSync(dirname(o.json), { recursive: true });
        const s = result.summary;
        const report = {
          model: manifest.id,
          data: o.data,
          split: o.split,
          clean: { tr: s.tr, ir: s.ir, ...(s.semantic ? { semantic: s.semantic } : {}) },
          nImages: s.nImages,
          nTexts: s.nTexts,
          protocol: s.protocol,
          seconds: s.seconds,
        };
        writeFileSync(o.json, JSON.stringify(report, null, 2) + '\n');
        process.stderr.write(`results written to ${o.json}\n`);
      }
      model.dispose();
    });
}
