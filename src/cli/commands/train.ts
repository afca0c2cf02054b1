import { join } from 'node:path';
import type { Command } from 'commander';
import { TEXT_LABEL_CHOICES } from '../../eval/text-labels.js';
import { BACKEND_KINDS, augmentNameSchema, loadConfig, presetSchema, textAttackSchema, trainSchema } from '../../config.js';
import { choiceFlag, intFlag, numberFlag, THREADS_FLAG_HELP, bytesFlag } from '../flags.js';
import type { StepInfo } from '../../../training/trainer.js';

/** comma-separated --augment list, validated against the schema's names */
function augmentListFlag(value: string): string[] {
  const names = value.split(',').map((s) => s.trim()).filter(Boolean);
  for (const n of names) choiceFlag(augmentNameSchema.options)(n);
  return names;
}

/** learning rate when fine-tuning from --init and no --lr is given (STACK.md: 1e-4..3e-4 warm-started) */
export const FINE_TUNE_LR = 2e-4;

export function registerTrainCommand(program: Command): void {
  program
    .command('train')
    .description('train a dual encoder (clean, or a defense fine-tuned from --init); writes checkpoints, metrics.jsonl and the model artifact to --out/model')
    .addHelpText(
      'after',
      `
Model sizes: the CPU backends (wasm, cpu) train the tiny and small presets and fine-tune small imported models;
CLIP ViT-B/16 and larger are for the GPU backend (--backend tensorflow with @tensorflow/tfjs-node-gpu). A ViT-B/32
fits wasm's 4 GiB heap only with small micro-batches, and for MAT and FARE with frozen blocks (estimates: MAT
--freeze-blocks 6 --batch 8, TeCoA --batch 8, FARE --freeze-blocks 6 --batch 4); --grad-accum restores the effective
batch (--batch 8 --grad-accum 4 steps on 32 images). Before any image is loaded the run prints a memory estimate
(weights, AdamW moments, gradients, activations of one micro-batch, and on wasm XNNPACK's packed weights) and, on
wasm, refuses a run whose estimate exceeds the heap, saying what to change.

Example (robust fine-tuning of an imported CLIP checkpoint):
  manyfold train --init models/clip-b32 --method mat --augment nn --data coco.json --out runs/b32-mat \\
    --batch 8 --grad-accum 4 --freeze-blocks 6`,
    )
    .requiredOption('--data <file>', 'Karpathy JSON or JSONL manifest')
    .requiredOption('--out <dir>', 'run directory (checkpoint, metrics, model/)')
    .option('--images <dir>', 'image directory (default: relative to the data file)')
    .option('--preset <name>', 'model preset: tiny | small | base', choiceFlag(presetSchema.options))
    .option('--stem <kind>', "image patch embedding: linear (ViT patches) | conv (two 3x3 stride-2 convolutions); default the preset's", choiceFlag(['linear', 'conv'] as const))
    .option('--image-size <px>', "image input edge in pixels (default the preset's; tiny 32)", intFlag(8))
    .option('--patch <px>', "image patch edge in pixels (default the preset's; tiny 8); tokens = (size/patch)^2", intFlag(1))
    .option('--method <name>', 'clean | tecoa | fare | mat', choiceFlag(trainSchema.shape.method.unwrap().options))
    .option('--init <model>', 'fine-tune from this model artifact (required for tecoa/fare/mat unless --from-scratch)')
    .option('--reference <model>', 'FARE: frozen reference encoder (default: the --init model)')
    .option('--from-scratch', 'allow an adversarial method without --init (collapses on small data)')
    .option('--train-eps <x>', 'training-time L-inf image budget, /255 (default 4)', numberFlag({ min: 0 }))
    .option('--train-steps <n>', 'PGD steps of the inner maximisation (default 3); also the embedding-attack steps', intFlag(0))
    .option('--train-step-size <x>', 'PGD step size, /255 (default 2.5*eps/steps)', numberFlag({ min: 0, exclusiveMin: true }))
    .option('--train-words <n>', 'MAT: words substituted per caption (default 1)', intFlag(0))
    .option('--text-attack <kind>', 'MAT text inner max: substitution (WordNet swap) | embedding (PGD on token embeddings, cheaper)', choiceFlag(textAttackSchema.options))
    .option('--text-candidates <n>', 'MAT substitution: WordNet candidates per word (default 8)', intFlag(1))
    .option('--text-labels <name>', 'MAT substitution: none (default) | scenes: substitutes may not name another colour, shape, size or position of the scenes vocabulary', choiceFlag(TEXT_LABEL_CHOICES))
    .option('--text-wir <order>', 'MAT substitution: word order random (default) | delete (importance, slower)', choiceFlag(['random', 'delete'] as const))
    .option('--text-embed-eps <x>', 'MAT embedding attack: L2 radius per token relative to the mean token norm (default 0.5)', numberFlag({ min: 0 }))
    .option('--augment <list>', 'N:N augmentation, comma-separated: nn | text | image | cross | eda, siblings, paraphrase, basic, flip, oracle-caption, oracle-image, provider-caption, provider-image | misaligned (control)', augmentListFlag)
    .option('--augment-cache <file>', "provider cache written by 'manyfold augment prepare' (read-only during training)")
    .option('--augment-texts <n>', 'augmented caption slots per image per step (default 1)', intFlag(0))
    .option('--augment-image-p <x>', 'probability of training on an augmented view of an image (default 0.5)', numberFlag({ min: 0 }))
    .option('--align-quantile <q>', 'alignment filter: keep augmented pairs scoring >= this quantile of ground-truth pairs (default 0.05; 0 = off)', numberFlag({ min: 0 }))
    .option('--align-model <model>', 'model scoring the alignment filter (default: --reference, else --init)')
    .option('--epochs <n>', 'epochs', intFlag(1))
    .option('--batch <n>', 'images per (micro-)batch', intFlag(1))
    .option(
      '--grad-accum <n>',
      'gradient accumulation: N micro-batches of --batch images per optimizer step (effective batch = batch x N; default 1). ' +
        "The contrastive loss is computed within each micro-batch (its negatives are that micro-batch's captions and images) and the step applies the mean of the N micro-batch gradients; " +
        "open_clip's accum_freq feature caching (every micro-batch contrasted against all N) is not done",
      intFlag(1),
    )
    .option(
      '--freeze-blocks <n>',
      'fine-tuning: freeze the embeddings (image: patch / conv stem, class token, position, ln_pre; text: token, position) and the first N transformer blocks of BOTH towers ' +
        '(default 0 = nothing frozen). Frozen weights get no gradients and no AdamW moments and stay bit-identical; final LayerNorms, projections and the logit scale train',
      intFlag(0),
    )
    .option('--max-steps <n>', 'stop after N optimizer steps (the learning-rate schedule is laid out over them); default: epochs x steps per epoch', intFlag(1))
    .option('--captions-per-image <n>', 'captions sampled per image per step (all positives)', intFlag(1))
    .option('--shift <px>', 'random translation of each training image by up to N pixels per axis, every step (default 0 = off)', intFlag(0))
    .option('--hard-negatives <n>', 'scenes: hard negative captions per image per step (one object\'s shape or colour changed; default 0)', intFlag(0))
    .option('--hard-negative-images <n>', 'scenes: hard negative images per training image (the edit rendered; text->image negatives; default 0)', intFlag(0))
    .option('--batch-sampling <mode>', 'random | hard (batches of nearest-neighbour groups mined with the model each epoch)', choiceFlag(['random', 'hard'] as const))
    .option('--hard-group <n>', 'hard sampling: images per mined group (default 4)', intFlag(2))
    .option('--hard-from-epoch <n>', 'hard sampling: first mined epoch, 0-based (default 1)', intFlag(0))
    .option('--lr <x>', `peak learning rate (default 5e-4 from scratch, ${FINE_TUNE_LR} with --init)`, numberFlag({ min: 0, exclusiveMin: true }))
    .option('--weight-decay <x>', 'AdamW weight decay', numberFlag({ min: 0 }))
    .option('--checkpoint-every <n>', 'checkpoint every N steps', intFlag(1))
    .option('--seed <n>', 'seed for init, batches, sampling, augmentation and inner attacks', intFlag(0))
    .option('--backend <name>', `${BACKEND_KINDS.join(' | ')} (docs/gpu.md)`, choiceFlag(BACKEND_KINDS))
    .option('--threads <n>', THREADS_FLAG_HELP, intFlag(1))
    .option('--config <file>', 'JSON config file (flags override it)')
    .option('--on-bad-row <mode>', 'fail | skip', choiceFlag(['fail', 'skip'] as const))
    .option('--resume', 'continue from the checkpoint in --out')
    .option('--overwrite', 'start over: delete a checkpoint (and metrics.jsonl) an earlier run left in --out')
    .option('--shard-bytes <size>', 'largest weight shard of the saved artifact, e.g. 24MiB (default 32MiB; Cloudflare Workers assets allow 25 MiB per file)', bytesFlag(4))
    .option('--log-steps', 'print every optimizer step as a JSON line on stderr (the metrics.jsonl record: step, loss, lr, scale, gradNorm, ms, ...)')
    .option('--no-eval', 'do not evaluate on the test split at the end')
    .option('--quiet', 'no progress output')
    .action(async (o) => {
      const config = loadConfig({
        file: o.config,
        overrides: {
          backend: o.backend,
          threads: o.threads,
          seed: o.seed,
          data: { file: o.data, imagesDir: o.images, onBadRow: o.onBadRow },
          train: {
            preset: o.preset,
            stem: o.stem,
            imageSize: o.imageSize,
            patch: o.patch,
            method: o.method,
            epochs: o.epochs,
            batch: o.batch,
            gradAccum: o.gradAccum,
            freezeBlocks: o.freezeBlocks,
            maxSteps: o.maxSteps,
            captionsPerImage: o.captionsPerImage,
            shift: o.shift,
            hardNegatives: o.hardNegatives,
            hardNegativeImages: o.hardNegativeImages,
            batchSampling: o.batchSampling,
            hardGroup: o.hardGroup,
            hardFromEpoch: o.hardFromEpoch,
            lr: o.lr ?? (o.init ? FINE_TUNE_LR : undefined),
            weightDecay: o.weightDecay,
            checkpointEvery: o.checkpointEvery,
            init: o.init,
            reference: o.reference,
            trainEps: o.trainEps,
            trainSteps: o.trainSteps,
            trainStepSize: o.trainStepSize,
            trainWords: o.trainWords,
            textAttack: o.textAttack,
            textCandidates: o.textCandidates,
            textWir: o.textWir,
            textLabels: o.textLabels,
            textEmbedEps: o.textEmbedEps,
            augment: o.augment,
            augmentCache: o.augmentCache,
            augmentTexts: o.augmentTexts,
            augmentImageP: o.augmentImageP,
            alignQuantile: o.alignQuantile,
            alignModel: o.alignModel,
          },
        },
      });
      const { runTraining } = await import('../../../training/run.js');
      // SIGTERM / SIGINT (what schedulers and Ctrl-C send): finish the current step, write a checkpoint, exit;
      // a second signal exits at once (the last checkpoint is complete either way: they are written atomically)
      let stopSignal: NodeJS.Signals | null = null;
      const onSignal = (sig: NodeJS.Signals) => {
        if (stopSignal) process.exit(128 + (sig === 'SIGINT' ? 2 : 15));
        stopSignal = sig;
        process.stderr.write(`\n${sig}: stopping after the current step (a checkpoint is written; rerun with --resume to continue; ${sig} again to exit now)\n`);
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
      const run = await runTraining({
        config,
        out: o.out,
        resume: Boolean(o.resume),
        overwrite: Boolean(o.overwrite),
        ...(o.shardBytes !== undefined ? { shardBytes: o.shardBytes as number } : {}),
        evaluate: o.eval !== false,
        quiet: Boolean(o.quiet),
        fromScratch: Boolean(o.fromScratch),
        shouldStop: () => stopSignal !== null,
        ...(o.logSteps ? { onStep: (info: StepInfo) => process.stderr.write(`${JSON.stringify(info)}\n`) } : {}),
      });
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      if (!run.finished) {
        process.stderr.write(`stopped by ${stopSignal ?? 'request'}: checkpoint in ${o.out}; continue with the same command and --resume\n`);
        process.exitCode = 128 + (stopSignal === 'SIGINT' ? 2 : 15);
        return;
      }
      process.stderr.write(`model written to ${join(o.out, 'model')}\n`);
    });

  const augment = program.command('augment').description('N:N augmentation tools');
  augment
    .command('prepare')
    .description('query a cross-modal provider OFFLINE for every training image and write the cache that training reads (--augment-cache)')
    .requiredOption('--data <file>', 'Karpathy JSON or JSONL manifest')
    .requiredOption('--out <file>', 'cache file to write (a partial cache of the same provider is resumed)')
    .option('--provider <kind>', 'scenes-oracle | http', choiceFlag(['scenes-oracle', 'http'] as const), 'http')
    .option('--base-url <url>', 'http: OpenAI-compatible API base, e.g. http://127.0.0.1:8000/v1')
    .option('--caption-model <name>', 'http: chat model for captions and paraphrases')
    .option('--image-model <name>', 'http: image-generation model')
    .option('--captions <n>', 'new captions per image', intFlag(0), 3)
    .option('--images <n>', 'new images per image', intFlag(0), 1)
    .option('--paraphrases <n>', 'paraphrases per ground-truth caption', intFlag(0), 0)
    .option('--split <name>', 'split to prepare', 'train')
    .option('--preset <name>', 'model preset (fixes the image size stored in the cache)', choiceFlag(presetSchema.options), 'tiny')
    .option('--concurrency <n>', 'requests in flight', intFlag(1), 2)
    .option('--seed <n>', 'seed', intFlag(0), 0)
    .option('--images-dir <dir>', 'image directory (default: relative to the data file)')
    .action(async (o) => {
      const [{ loadSplit }, { modelConfigFromPreset }, { httpProvider, prepareProviderCache, scenesOracleProvider }] = await Promise.all([
        import('../../../training/run.js'),
        import('../../model/presets.js'),
        import('../../augment/providers.js'),
      ]);
      const config = loadConfig({ overrides: { data: { file: o.data, imagesDir: o.imagesDir } } });
      const split = await loadSplit(config, o.split, modelConfigFromPreset(o.preset, 2).image.size);
      let provider;
      if (o.provider === 'scenes-oracle') {
        if (!split.scenes?.some(Boolean)) throw new Error(`${o.data} carries no scene graphs: the scenes oracle needs the scenes data set`);
        provider = scenesOracleProvider();
      } else {
        if (!o.baseUrl) throw new Error('--provider http needs --base-url');
        if (!o.captionModel && !o.imageModel) throw new Error('--provider http needs --caption-model and/or --image-model');
        provider = httpProvider({ baseUrl: o.baseUrl, captionModel: o.captionModel, imageModel: o.imageModel, apiKey: process.env.MANYFOLD_PROVIDER_API_KEY });
      }
      const r = await prepareProviderCache({
        split,
        provider,
        out: o.out,
        data: o.data,
        captions: o.captions,
        images: o.images,
        paraphrases: o.paraphrases,
        concurrency: o.concurrency,
        seed: o.seed,
        onProgress: (d, t) => process.stderr.write(`\raugment prepare: ${d}/${t}`),
      });
      process.stderr.write(`\n${r.file}: ${r.counts.captions} captions, ${r.counts.images} images, ${r.counts.paraphrases} paraphrases (${r.skipped} images already cached)\n`);
    });
}
