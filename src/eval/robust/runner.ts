/**
 * The robust-recall probe: one runner for every rank source (in memory, this server's live index, a remote HTTP
 * target), so the three give the same numbers on the same model and items.
 *
 * Queries are a labelled set: images with the system's id of their item, and those items' captions. `tr` = an
 * image query must bring its item back (image -> text), `ir` = a caption must bring its item's image back (text ->
 * image). Each query's rank of its gold id among the top `topK` results is measured clean and under every attack;
 * a gold absent from the top `topK` ranks `topK` (a miss at every reported cut-off).
 *
 * Work goes in chunks of `chunkImages` images with all their captions (SGA attacks an image's caption set
 * together): each chunk is attacked, then its adversarial queries are sent, so memory and progress scale with the
 * chunk, cancellation is checked between chunks, and attack seeds are per chunk (seed of attack a on chunk c =
 * seed + 1000003 c + 7919 (a + 1)). Every image query, clean or adversarial, is quantised to 8 bits first (what an
 * image file carries); the source decides how it travels (PNG / JPEG for a remote target).
 *
 * Attack goals: white-box and transfer attacks push each gold item out of the top-`goalK` of the query set's
 * own gallery as the crafting model embeds it (the served model, or the surrogate); black-box attacks push the
 * gold id out of the system's own top-`goalK`. ASR is measured at `goalK`; the worst case per direction counts
 * a query only if it is a hit clean and under every attack covering that direction.
 */
import { attackByName } from '../../attacks/registry.js';
import { splitTargets } from '../../attacks/goals/retrieval.js';
import { embedImageRows, embedTextRows } from '../../attacks/util/embed.js';
import type { OracleHit, ScoreOracle } from '../../attacks/blackbox/oracle.js';
import type { AttackBatch, AttackResult } from '../../attacks/types.js';
import type { DualEncoder, Tokenizer } from '../../model/types.js';
import type { LabelLexicon } from '../../attacks/constraints/labels.js';
import { quantize } from '../../util/quantize.js';
import { PROBE_ATTACKS, attackLabel, recipeOptions, type Modality, type ProbeAttackName, type ProbeAttackSpec, type ThreatModel } from './catalog.js';
import { recallFigures, successRate, worstCase, type DirectionFigures, type Rank, type SuccessRate } from './metrics.js';
import { RankSourceError, type RankSource, type SourceHit, type SourceStats, type WhiteBoxModel } from './rank-source.js';

export interface ProbeQuerySet {
  /** image edge S */
  size: number;
  /**
   * 8-bit RGB, row-major [N, S, S, 3], or a loader of `count` rows from `first` (large probes: only a chunk of
   * images is held at a time)
   */
  images: Uint8Array | ImageRows;
  /** per image: the system's id of its item (the gold answer of both directions) */
  ids: readonly string[];
  /** per image: where it came from (file:line, item id), for the attempt log; default the id */
  labels?: readonly string[];
  captions: readonly string[];
  /** caption c belongs to image captionToImage[c] */
  captionToImage: readonly number[];
  /** how the set was drawn, for the report ('sampled with seed 0 from namespace "default"') */
  origin: string;
}

/** `count` query images from row `first`, 8-bit RGB [count, S, S, 3] */
export type ImageRows = (first: number, count: number) => Promise<Uint8Array>;

export interface Surrogate {
  encoder: DualEncoder;
  tokenizer: Tokenizer;
  id: string;
}

export interface ProbeProgress {
  stage: string;
  done: number;
  total: number;
}

export interface AttemptRecord {
  /** 'clean' or the attack's label (`pgd@2`) */
  stage: string;
  direction: Direction;
  query: number;
  /** image label or the caption sent */
  input: string;
  gold: string;
  cleanRank: Rank;
  rank: Rank;
  /** system queries the attack spent on this item (black-box); 0 otherwise */
  attackQueries: number;
  error?: string;
}

export interface RobustProbeOptions {
  source: RankSource;
  queries: ProbeQuerySet;
  attacks: readonly ProbeAttackSpec[];
  /** white-box model transfer attacks are crafted on */
  surrogate?: Surrogate;
  /** results requested per query (default 10) */
  topK?: number;
  /** recall cut-offs (default 1, 5, 10; each <= topK) */
  ks?: readonly number[];
  /** attack goal and ASR cut-off: the gold leaves the top-goalK (default 1) */
  goalK?: number;
  seed?: number;
  /** bootstrap resamples (default 1000) */
  resamples?: number;
  /** images per chunk of work (default 16) */
  chunkImages?: number;
  signal?: AbortSignal;
  /** awaited before each chunk (the API's tests pause probes here) */
  beforeChunk?: () => Promise<void> | void;
  onProgress?: (p: ProbeProgress) => void;
  onAttempt?: (a: AttemptRecord) => void;
  /** keep every query's clean and robust (worst-case) rank in the report: paired comparisons of two models */
  keepRanks?: boolean;
  /** each chunk's raw attack output (float pixels before quantisation, final texts), for measurements beside the wire */
  onAttackOutput?: (label: string, chunk: number, result: AttackResult) => void;
  /** text attacks may not swap a word for one with another label of this closed vocabulary (the paper's protocol: absent) */
  textLabels?: LabelLexicon;
  /**
   * 'clean' (default; every live system): only the queries are adversarial. 'attacked' (the papers' protocol,
   * in-memory sources only): each attack's adversarial images and captions also replace the gallery, so every
   * attack touches both directions (an adversarial image gallery changes what a clean caption finds)
   */
  gallery?: GalleryMode;
}

export type GalleryMode = 'clean' | 'attacked';

export type Direction = 'tr' | 'ir';

export interface AttackDirection extends DirectionFigures {
  asr: SuccessRate;
}

export interface AttackFigures {
  name: ProbeAttackName;
  /** the name with the image budget (`pgd@2`): unique within a report */
  label: string;
  /** the attack as the suite gave it (budgets in /255 units) */
  spec: ProbeAttackSpec;
  threatModel: ThreatModel;
  recipe: string;
  modalities: readonly Modality[];
  /** the recipe's resolved configuration (pixel units), seeds aside */
  config: Record<string, unknown>;
  goal: string;
  tr?: AttackDirection;
  ir?: AttackDirection;
  /** queries the attack itself sent to the system while searching (black-box); 0 for white-box and transfer */
  attackQueries: number;
  /** the attack's work on a model it holds: forward passes / candidates scored (white-box on the served model, transfer on the surrogate) */
  modelQueries: number;
  /** searches sent to measure the attacked queries */
  evalQueries: number;
  wallMs: number;
}

export interface RobustProbeReport {
  format: 'manyfold-robust/1';
  source: { kind: RankSource['kind']; name: string } & Record<string, string>;
  partial: boolean;
  error?: string;
  queries: { images: number; captions: number; origin: string };
  imageSize: number;
  imageTransport: string;
  topK: number;
  ks: number[];
  goalK: number;
  seed: number;
  resamples: number;
  chunkImages: number;
  gallery: GalleryMode;
  /** the closed vocabulary text substitutes kept (null: any WordNet lemma) */
  textLabels: string | null;
  surrogate: string | null;
  clean: { tr: DirectionFigures; ir: DirectionFigures };
  attacks: AttackFigures[];
  /** per direction: a hit only when a hit clean and under every attack covering it (absent: no attack did) */
  robust: { tr?: DirectionFigures; ir?: DirectionFigures };
  sourceStats?: SourceStats & { timeShare: number };
  /**
   * per query (keepRanks): clean rank, worst rank over clean and every attack of its direction, and each attack's
   * ranks (in the order of `attacks`; absent for a direction the attack did not touch); null = failed
   */
  ranks?: { clean: { tr: Rank[]; ir: Rank[] }; robust: { tr: Rank[]; ir: Rank[] }; attacks: { tr?: Rank[]; ir?: Rank[] }[] };
  protocol: string;
  startedAt: string;
  finishedAt: string;
  wallMs: number;
}

/** stops the run; what was measured so far becomes a partial report */
class FatalSourceError extends Error {}

/** what a probe can do: which threat models its source and options allow */
export interface ProbeAbilities {
  /** the kind of source, for messages */
  source: RankSource['kind'];
  /** the system's own model is reachable (white-box attacks) */
  whiteBox: boolean;
  /** a surrogate model was given (transfer attacks) */
  surrogate: boolean;
  /** images travel as JPEG (expectation over the encoding) */
  jpeg: boolean;
  /** the source can swap its gallery for attacked copies (the papers' protocol) */
  attackedGallery?: boolean;
}

/** Checks a suite against what the probe can do, before any work; throws naming the attack as attacks[i]. */
export function checkSuite(attacks: readonly ProbeAttackSpec[], can: ProbeAbilities, gallery: GalleryMode = 'clean'): void {
  if (gallery === 'attacked' && !can.attackedGallery) throw new Error(`an attacked gallery (the papers' protocol) needs an in-memory source; a ${can.source} source searches its own gallery`);
  const seen = new Set<string>();
  const labels = new Set<string>();
  attacks.forEach((a, i) => {
    const info = PROBE_ATTACKS[a.name];
    const where = `attacks[${i}] (${a.name})`;
    const key = JSON.stringify(a);
    if (seen.has(key)) throw new Error(`${where}: listed twice`);
    seen.add(key);
    // two budgets of one attack differ in eps; anything else (two step counts) would share a report row name
    if (labels.has(attackLabel(a))) throw new Error(`${where}: ${attackLabel(a)} is already in the suite with other settings; one suite runs an attack once per eps`);
    labels.add(attackLabel(a));
    if (info.threatModel === 'white-box' && !can.whiteBox) {
      throw new Error(`${where} is white-box: it needs the system's own model, which a ${can.source} source does not expose; use transfer-${a.name === 'charedit' ? 'text' : a.name} with a surrogate model, or a black-box attack`);
    }
    if (info.threatModel === 'transfer' && !can.surrogate) {
      throw new Error(`${where} is a transfer attack: it needs a surrogate model${can.source === 'live-index' ? ' (the API probe attacks the served model white-box; run transfer attacks with manyfold probe --target --surrogate)' : ' (--surrogate DIR)'}`);
    }
    if (a.eot && !can.jpeg) throw new Error(`${where}: eot (expectation over JPEG encoding) needs images sent as JPEG (--encoding jpeg)`);
  });
}

export async function runRobustProbe(opts: RobustProbeOptions): Promise<RobustProbeReport> {
  const t0 = performance.now();
  const startedAt = new Date().toISOString();
  const { source, queries: qs, signal } = opts;
  const topK = opts.topK ?? 10;
  const ks = [...(opts.ks ?? [1, 5, 10])].filter((k) => k <= topK);
  if (ks.length === 0) throw new Error(`every recall cut-off exceeds topK ${topK}`);
  const goalK = opts.goalK ?? 1;
  if (!(Number.isInteger(goalK) && goalK >= 1 && goalK <= topK)) throw new Error(`goalK must be an integer in [1, topK ${topK}], got ${goalK}`);
  const seed = opts.seed ?? 0;
  const boot = { seed, resamples: opts.resamples ?? 1000 };
  const chunkImages = opts.chunkImages ?? 16;
  if (!(Number.isInteger(chunkImages) && chunkImages >= 1)) throw new Error(`chunkImages must be a positive integer, got ${chunkImages}`);
  const S = qs.size;
  const per = S * S * 3;
  const nI = qs.ids.length;
  const nC = qs.captions.length;
  if (nI === 0) throw new Error('the query set has no images');
  const held = qs.images;
  if (typeof held !== 'function' && held.length !== nI * per) throw new Error(`query images: expected ${nI} x ${S} x ${S} x 3 values, got ${held.length}`);
  /** the chunk's images, checked: a loader that returns the wrong size is named, not trusted */
  const rowsOf = async (first: number, count: number): Promise<Uint8Array> => {
    if (typeof held !== 'function') return held.subarray(first * per, (first + count) * per);
    const rows = await held(first, count);
    if (rows.length !== count * per) throw new Error(`query images: the loader gave ${rows.length} values for rows ${first}..${first + count - 1}, expected ${count} x ${S} x ${S} x 3`);
    return rows;
  };
  if (qs.captionToImage.length !== nC) throw new Error('query captions: captionToImage needs one entry per caption');
  const galleryMode = opts.gallery ?? 'clean';
  checkSuite(
    opts.attacks,
    { source: source.kind, whiteBox: source.whiteBox !== undefined, surrogate: opts.surrogate !== undefined, jpeg: source.jpegQuality !== undefined, attackedGallery: source.withGallery !== undefined },
    galleryMode,
  );
  if (galleryMode === 'attacked' && typeof held === 'function') throw new Error('an attacked gallery needs the query images in memory, not a loader');

  const imageToCaptions: number[][] = Array.from({ length: nI }, () => []);
  qs.captionToImage.forEach((i, c) => {
    if (!(Number.isInteger(i) && i >= 0 && i < nI)) throw new Error(`query captions: caption ${c} names image ${i} of ${nI}`);
    imageToCaptions[i].push(c);
  });
  const captionGold = qs.captionToImage.map((i) => qs.ids[i]);
  const chunks: { images: number[]; captions: number[] }[] = [];
  for (let s = 0; s < nI; s += chunkImages) {
    const images = Array.from({ length: Math.min(chunkImages, nI - s) }, (_, k) => s + k);
    chunks.push({ images, captions: images.flatMap((i) => imageToCaptions[i]) });
  }
  const progress = { stage: 'clean', done: 0, total: chunks.length * (1 + opts.attacks.length) };
  const step = async (stage: string) => {
    signal?.throwIfAborted();
    progress.stage = stage;
    opts.onProgress?.({ ...progress });
    await opts.beforeChunk?.();
    signal?.throwIfAborted();
  };
  const schedule = source.schedule ?? (<T>(work: () => Promise<T>) => work());

  const ask = async (search: () => Promise<SourceHit[]>): Promise<SourceHit[] | RankSourceError> => {
    try {
      return await search();
    } catch (e) {
      if (e instanceof RankSourceError) {
        if (e.fatal) throw new FatalSourceError(`${e.kind}: ${e.message}`, { cause: e });
        return e;
      }
      throw e;
    }
  };
  const searchImage = (rgb: Uint8Array) => ask(() => source.searchImage(rgb, S, topK));
  const searchText = (text: string) => ask(() => source.searchText(text, topK));
  const rankOf = (hits: readonly SourceHit[], gold: string): number => {
    const r = hits.findIndex((h) => h.id === gold);
    return r < 0 ? topK : r;
  };

  /** sends the queries of one chunk; ranks land in `into` at the queries' global rows */
  const measure = async (
    stage: string,
    direction: Direction,
    rows: readonly number[],
    send: (j: number) => Promise<SourceHit[] | RankSourceError>,
    into: Rank[],
    input: (j: number) => string,
    cleanRanks: readonly Rank[] | null,
    attackQueries: readonly number[] | null,
  ): Promise<void> => {
    const answers = await Promise.all(rows.map((_, j) => send(j)));
    rows.forEach((row, j) => {
      const a = answers[j];
      const gold = direction === 'tr' ? qs.ids[row] : captionGold[row];
      into[row] = a instanceof RankSourceError ? null : rankOf(a, gold);
      opts.onAttempt?.({
        stage,
        direction,
        query: row,
        input: input(j),
        gold,
        cleanRank: cleanRanks ? cleanRanks[row] : null,
        rank: into[row],
        attackQueries: attackQueries ? attackQueries[j] : 0,
        ...(a instanceof RankSourceError ? { error: `${a.kind}: ${a.message}` } : {}),
      });
    });
  };
  const labelOf = (row: number) => qs.labels?.[row] ?? qs.ids[row];

  const cleanTr: Rank[] = new Array(nI).fill(null);
  const cleanIr: Rank[] = new Array(nC).fill(null);
  const figures: AttackFigures[] = [];
  const attackRanks: { tr?: Rank[]; ir?: Rank[] }[] = [];
  let fatal: string | undefined;

  // clean embeddings of the query set by each crafting model (white-box goals), computed on first need
  const galleries = new Map<string, { imageEmb: Float32Array; textEmb: Float32Array; dim: number }>();
  const galleryOf = async (key: string, m: WhiteBoxModel) => {
    let g = galleries.get(key);
    if (!g) {
      g = await schedule(async () => {
        const imageEmb = new Float32Array(nI * m.encoder.config.embedDim);
        for (const c of chunks) {
          const px = Float32Array.from(await rowsOf(c.images[0], c.images.length), (v) => v / 255);
          imageEmb.set(await embedImageRows(m.encoder, px, c.images.length, S), c.images[0] * m.encoder.config.embedDim);
        }
        return { imageEmb, textEmb: await embedTextRows(m.encoder, m.tokenizer, qs.captions), dim: m.encoder.config.embedDim };
      });
      galleries.set(key, g);
    }
    return g;
  };

  try {
    for (const c of chunks) {
      await step('clean');
      const rgb = await rowsOf(c.images[0], c.images.length);
      await measure('clean', 'tr', c.images, (j) => searchImage(rgb.subarray(j * per, (j + 1) * per)), cleanTr, (j) => labelOf(c.images[j]), null, null);
      await measure('clean', 'ir', c.captions, (j) => searchText(qs.captions[c.captions[j]]), cleanIr, (j) => qs.captions[c.captions[j]], null, null);
      progress.done++;
    }

    for (let a = 0; a < opts.attacks.length; a++) {
      const spec = opts.attacks[a];
      const info = PROBE_ATTACKS[spec.name];
      const label = attackLabel(spec);
      const started = performance.now();
      const perturbs = { tr: (info.modalities as readonly string[]).includes('image'), ir: (info.modalities as readonly string[]).includes('text') };
      // an attacked gallery changes what every query finds, so every attack then covers both directions
      const covers = galleryMode === 'attacked' ? { tr: true, ir: true } : perturbs;
      const tr: Rank[] | undefined = covers.tr ? new Array(nI).fill(null) : undefined;
      const ir: Rank[] | undefined = covers.ir ? new Array(nC).fill(null) : undefined;
      attackRanks.push({ tr, ir });
      const fig: AttackFigures = { name: spec.name, label, spec, threatModel: info.threatModel, recipe: info.recipe, modalities: info.modalities, config: {}, goal: '', attackQueries: 0, modelQueries: 0, evalQueries: 0, wallMs: 0 };
      figures.push(fig);
      const crafter = info.threatModel === 'white-box' ? { key: 'source', model: () => source.whiteBox!() } : info.threatModel === 'transfer' ? { key: 'surrogate', model: async () => opts.surrogate! } : null;

      /** the attack on one chunk: its adversarial queries (8-bit images, final captions; null = unperturbed) */
      const craft = async (ci: number) => {
        const c = chunks[ci];
        const first = c.images[0];
        const local = (row: number) => row - first;
        const pixels = Float32Array.from(await rowsOf(first, c.images.length), (v) => v / 255);
        const attack = attackByName(
          info.recipe,
          recipeOptions(spec, chunkSeed(seed, a, ci), { ...(source.jpegQuality !== undefined ? { eotJpegQuality: source.jpegQuality } : {}), textLabels: opts.textLabels }),
        );
        let result: AttackResult;
        let perItemQueries: { images: number[] | null; captions: number[] | null } = { images: null, captions: null };
        if (crafter) {
          const m = await crafter.model();
          const g = await galleryOf(crafter.key, m);
          const batch: AttackBatch = {
            images: pixels,
            size: S,
            captions: c.captions.map((x) => qs.captions[x]),
            captionToImage: c.captions.map((x) => local(qs.captionToImage[x])),
            targets: splitTargets({ ...g, captionToImage: qs.captionToImage, imageToCaptions, batchImages: c.images, batchCaptions: c.captions, k: goalK }),
          };
          result = await schedule(() => attack.run(batch, { encoder: m.encoder, tokenizer: m.tokenizer }));
        } else {
          // the system answers the attack's own queries, exactly as it answers the evaluation's
          const oracle: ScoreOracle = async (oq) => {
            signal?.throwIfAborted();
            const answers = await Promise.all(oq.map((q) => (q.kind === 'text' ? searchText(q.text) : searchImage(quantize(q.pixels)))));
            // a failed query answers "nothing found": no information for the search, never a success
            return answers.map((h): OracleHit[] => (h instanceof RankSourceError ? [] : h));
          };
          const batch: AttackBatch = perturbs.tr
            ? { images: pixels, size: S, targets: { k: goalK, imageGoldIds: c.images.map((i) => [qs.ids[i]]) } }
            : { captions: c.captions.map((x) => qs.captions[x]), targets: { k: goalK, captionGoldIds: c.captions.map((x) => [captionGold[x]]) } };
          result = await attack.run(batch, { oracle });
          perItemQueries = { images: result.images?.queries ?? null, captions: result.captions?.queries ?? null };
        }
        opts.onAttackOutput?.(label, ci, result);
        const { seed: _s, ...config } = result.config;
        fig.config = config;
        fig.goal = result.goal;
        if (crafter) fig.modelQueries += result.queries;
        else fig.attackQueries += result.queries;
        return { images: result.images ? quantize(result.images.data) : null, texts: result.captions?.texts ?? null, perItemQueries };
      };
      type Crafted = Awaited<ReturnType<typeof craft>>;

      /** sends one chunk's queries (adversarial where the attack made them, else clean) to `src` */
      const send = async (src: RankSource, ci: number, adv: Crafted, clean: Uint8Array) => {
        const c = chunks[ci];
        if (tr) {
          const rgb = adv.images ?? clean;
          const query = (j: number) => ask(() => src.searchImage(rgb.subarray(j * per, (j + 1) * per), S, topK));
          await measure(label, 'tr', c.images, query, tr, (j) => labelOf(c.images[j]), cleanTr, adv.perItemQueries.images);
          fig.evalQueries += c.images.length;
        }
        if (ir) {
          const text = (j: number) => adv.texts?.[j] ?? qs.captions[c.captions[j]];
          await measure(label, 'ir', c.captions, (j) => ask(() => src.searchText(text(j), topK)), ir, text, cleanIr, adv.perItemQueries.captions);
          fig.evalQueries += c.captions.length;
        }
      };

      if (galleryMode === 'clean') {
        for (let ci = 0; ci < chunks.length; ci++) {
          await step(`attack ${label}`);
          const adv = await craft(ci);
          await send(source, ci, adv, await rowsOf(chunks[ci].images[0], chunks[ci].images.length));
          progress.done++;
        }
      } else {
        // the papers' protocol: every query of the set is crafted before the attacked gallery exists
        const crafted: Crafted[] = [];
        const galleryImages = Uint8Array.from(held as Uint8Array);
        const galleryCaptions = [...qs.captions];
        for (let ci = 0; ci < chunks.length; ci++) {
          await step(`attack ${label}`);
          const adv = await craft(ci);
          crafted.push(adv);
          if (adv.images) galleryImages.set(adv.images, chunks[ci].images[0] * per);
          if (adv.texts) chunks[ci].captions.forEach((x, j) => (galleryCaptions[x] = adv.texts![j]));
        }
        const attacked = await source.withGallery!({ images: galleryImages, captions: galleryCaptions });
        for (let ci = 0; ci < chunks.length; ci++) {
          signal?.throwIfAborted();
          await send(attacked, ci, crafted[ci], (held as Uint8Array).subarray(chunks[ci].images[0] * per, (chunks[ci].images[0] + chunks[ci].images.length) * per));
          progress.done++;
        }
      }
      fig.wallMs = Math.round(performance.now() - started);
      if (tr) fig.tr = { ...recallFigures(tr, ks, boot), asr: successRate(cleanTr, tr, goalK) };
      if (ir) fig.ir = { ...recallFigures(ir, ks, boot), asr: successRate(cleanIr, ir, goalK) };
    }
    opts.onProgress?.({ ...progress, stage: 'report' });
  } catch (e) {
    if (!(e instanceof FatalSourceError)) throw e;
    fatal = e.message;
  }
  // an attack cut short by a fatal error reports what it measured
  figures.forEach((fig, a) => {
    const r = attackRanks[a];
    if (r.tr && !fig.tr) fig.tr = { ...recallFigures(r.tr, ks, boot), asr: successRate(cleanTr, r.tr, goalK) };
    if (r.ir && !fig.ir) fig.ir = { ...recallFigures(r.ir, ks, boot), asr: successRate(cleanIr, r.ir, goalK) };
  });

  const worstOf = (dir: Direction, clean: Rank[]): Rank[] | undefined => {
    const lists = attackRanks.map((r) => r[dir]).filter((l): l is Rank[] => l !== undefined);
    return lists.length === 0 ? undefined : worstCase([clean, ...lists]);
  };
  const worstTr = worstOf('tr', cleanTr);
  const worstIr = worstOf('ir', cleanIr);
  const robustTr = worstTr && recallFigures(worstTr, ks, boot);
  const robustIr = worstIr && recallFigures(worstIr, ks, boot);
  const wallMs = Math.round(performance.now() - t0);
  const stats = source.stats?.();
  return {
    format: 'manyfold-robust/1',
    source: { kind: source.kind, name: source.name, ...(source.details ?? {}) },
    partial: fatal !== undefined,
    ...(fatal ? { error: fatal } : {}),
    queries: { images: nI, captions: nC, origin: qs.origin },
    imageSize: S,
    imageTransport: source.imageTransport,
    topK,
    ks,
    goalK,
    seed,
    resamples: boot.resamples,
    chunkImages,
    gallery: galleryMode,
    textLabels: opts.textLabels?.name ?? null,
    surrogate: opts.surrogate?.id ?? null,
    clean: { tr: recallFigures(cleanTr, ks, boot), ir: recallFigures(cleanIr, ks, boot) },
    attacks: figures,
    robust: { ...(robustTr ? { tr: robustTr } : {}), ...(robustIr ? { ir: robustIr } : {}) },
    ...(stats ? { sourceStats: { ...stats, timeShare: wallMs > 0 ? Math.round((stats.latencyMs.mean * stats.latencyMs.count * 1000) / wallMs) / 1000 : 0 } } : {}),
    ...(opts.keepRanks ? { ranks: { clean: { tr: cleanTr, ir: cleanIr }, robust: { tr: worstTr ?? cleanTr, ir: worstIr ?? cleanIr }, attacks: attackRanks } } : {}),
    protocol: protocolText(source, { topK, goalK, seed, resamples: boot.resamples, chunkImages, origin: qs.origin, surrogate: opts.surrogate?.id, gallery: galleryMode, textLabels: opts.textLabels?.name }),
    startedAt,
    finishedAt: new Date().toISOString(),
    wallMs,
  };
}

function chunkSeed(seed: number, attack: number, chunk: number): number {
  return (seed + 1000003 * chunk + 7919 * (attack + 1)) % 2147483647;
}

function protocolText(
  source: RankSource,
  p: { topK: number; goalK: number; seed: number; resamples: number; chunkImages: number; origin: string; surrogate?: string; gallery: GalleryMode; textLabels?: string },
): string {
  return [
    `Queries: images (gold: their item) and their captions (gold: the same item), ${p.origin}.`,
    `Each query, clean or adversarial, is searched in ${source.kind === 'remote' ? `the remote system ${source.name}` : source.kind === 'live-index' ? `the live index of ${source.name}, read-only` : `an in-memory index of ${source.name}`} (top ${p.topK});`,
    `image queries are quantised to 8 bits and sent as ${source.imageTransport}; text attacks send their final strings.`,
    p.gallery === 'attacked'
      ? "Gallery attacked too (the papers' protocol): each attack's adversarial images and captions replace the gallery's, so an attack on one modality changes both directions."
      : 'The gallery stays clean: only the queries are adversarial (an attack on one modality leaves the other direction untouched).',
    p.textLabels ? `Word swaps keep the ${p.textLabels} labels of the caption (a substitute with another label of that closed vocabulary is refused).` : 'Word swaps may use any WordNet lemma.',
    `R@K = % of queries whose gold item is among the first K results (a gold beyond the top ${p.topK} is a miss).`,
    `White-box attacks use the system's own model; transfer attacks are crafted on ${p.surrogate ?? 'a surrogate'} and only the final queries reach the system; black-box attacks see only the search results (ids, scores when returned) within their query budget.`,
    `Attack goal: the gold leaves the top-${p.goalK}. ASR = % of clean hits at ${p.goalK} that the attack turns into misses. Robust (worst case) = a query counts only if it is a hit clean and under every attack covering its direction.`,
    `Work in chunks of ${p.chunkImages} images with their captions; attack seeds per chunk from seed ${p.seed}. 95% CIs: percentile bootstrap over queries, ${p.resamples} resamples, seed ${p.seed}. Budgets: eps and step sizes in /255 pixel units (the configs hold them in [0,1] pixel units).`,
  ].join(' ');
}
