/**
 * `manyfold data ...`: generate the `scenes` data set, and check/warm a data set (validate every row, decode
 * every image into the tensor cache, print a summary).
 */
import type { Command } from 'commander';
import { createProgress } from '../../util/progress.js';
import { loadDataset } from '../../data/load.js';
import { subsetDataset } from '../../data/subset.js';
import { DEFAULT_SCENE_COUNTS, DEFAULT_SCENE_SIZE, generateScenes } from '../../data/scenes/generate.js';
import { choiceFlag, intFlag } from '../flags.js';

export function registerDataCommands(program: Command): void {
  const data = program.command('data').description('data sets: generate the scenes data set, check and cache a data set');

  data
    .command('scenes')
    .description('generate the procedural "scenes" data set (PNGs + Karpathy JSON with scene graphs and 5 captions per image)')
    .requiredOption('--out <dir>', 'output directory (images/ and dataset_scenes.json)')
    .option('--train <n>', 'train images', intFlag(0), DEFAULT_SCENE_COUNTS.train)
    .option('--val <n>', 'val images', intFlag(0), DEFAULT_SCENE_COUNTS.val)
    .option('--test <n>', 'test images', intFlag(0), DEFAULT_SCENE_COUNTS.test)
    .option('--seed <n>', 'seed (same seed -> identical files)', intFlag(0), 0)
    .option('--size <px>', 'rendered image edge in pixels', intFlag(16), DEFAULT_SCENE_SIZE)
    .option('--captions <n>', 'captions per image', intFlag(1), 5)
    .option('--quiet', 'no progress output')
    .action(async (o: { out: string; train: number; val: number; test: number; seed: number; size: number; captions: number; quiet?: boolean }) => {
      const total = o.train + o.val + o.test;
      const bar = createProgress('scenes', total, { quiet: o.quiet });
      const r = await generateScenes({
        out: o.out,
        train: o.train,
        val: o.val,
        test: o.test,
        seed: o.seed,
        size: o.size,
        captions: o.captions,
        onProgress: (done) => bar.update(done),
      });
      bar.stop();
      process.stdout.write(
        `${JSON.stringify({ file: r.file, images: r.imagesDir, seed: r.seed, size: r.size, counts: r.counts, stats: r.stats, seconds: +(r.ms / 1000).toFixed(2) }, null, 2)}\n`,
      );
    });

  data
    .command('subset')
    .description(
      'write a smaller manifest: the first N rows (file order) of the splits given, every other split whole; images stay where they are (paths are rewritten to resolve from --out)',
    )
    .argument('<file>', 'Karpathy JSON or JSONL manifest')
    .requiredOption('--out <file>', 'the new manifest (same format as the source)')
    .option('--train <n>', 'train rows to keep (default: all)', intFlag(0))
    .option('--val <n>', 'val rows to keep (default: all)', intFlag(0))
    .option('--test <n>', 'test rows to keep (default: all)', intFlag(0))
    .option('--images <dir>', 'image directory of the source (default: relative to the source file)')
    .action(async (file: string, o: { out: string; train?: number; val?: number; test?: number; images?: string }) => {
      const keep: Record<string, number> = {};
      for (const split of ['train', 'val', 'test'] as const) if (o[split] !== undefined) keep[split] = o[split];
      if (Object.keys(keep).length === 0) throw new Error('data subset: give at least one of --train, --val, --test');
      const r = await subsetDataset(file, o.out, { keep, imagesDir: o.images });
      process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    });

  data
    .command('check')
    .description('validate a Karpathy JSON / JSONL manifest, decode its images into the tensor cache, print a summary')
    .argument('<file>', 'Karpathy JSON or JSONL manifest')
    .option('--split <names>', 'comma-separated splits (default: all rows)')
    .option('--size <px>', 'decode size', intFlag(1), 32)
    .option('--images <dir>', 'image directory (default: relative to the data file)')
    .option('--cache-dir <dir>', 'tensor cache directory (default: <data dir>/.cache/manyfold/images)')
    .option('--no-cache', 'do not read or write the tensor cache')
    .option('--resize <mode>', 'cover (centre crop) | fill (stretch)', choiceFlag(['cover', 'fill'] as const), 'cover')
    .option('--on-bad-row <mode>', 'fail | skip', choiceFlag(['fail', 'skip'] as const), 'fail')
    .option('--limit <n>', 'at most N rows', intFlag(0))
    .option('--quiet', 'no progress output')
    .action(
      async (
        file: string,
        o: {
          split?: string;
          size: number;
          images?: string;
          cacheDir?: string;
          cache: boolean;
          resize: 'cover' | 'fill';
          onBadRow: 'fail' | 'skip';
          limit?: number;
          quiet?: boolean;
        },
      ) => {
        let bar: ReturnType<typeof createProgress> | undefined;
        const split = await loadDataset(file, {
          size: o.size,
          split: o.split ? o.split.split(',').map((s) => s.trim()).filter(Boolean) : undefined,
          imagesDir: o.images,
          cacheDir: o.cache === false ? false : o.cacheDir,
          resize: o.resize,
          onBadRow: o.onBadRow,
          limit: o.limit,
          onWarning: (m) => process.stderr.write(`warning: ${m}\n`),
          onProgress: (p) => {
            bar ??= createProgress('images', p.total, { quiet: o.quiet });
            bar.update(p.done, { cached: p.cacheHits, decoded: p.decoded, skipped: p.skipped });
          },
        });
        bar?.stop();
        const summary = {
          file: split.load?.file,
          format: split.load?.format,
          split: split.name,
          images: split.count,
          captions: split.captions.length,
          withScenes: split.scenes ? split.scenes.filter(Boolean).length : 0,
          size: split.size,
          resize: split.load?.resize,
          cacheDir: split.load?.cacheDir,
          cacheHits: split.load?.cacheHits,
          decoded: split.load?.decoded,
          corruptCacheEntries: split.load?.corruptEntries,
          seconds: split.load ? +(split.load.ms / 1000).toFixed(2) : undefined,
          skipped: split.skipped.length,
          firstSkipped: split.skipped.slice(0, 10),
        };
        process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
      },
    );
}
