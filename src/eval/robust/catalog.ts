/**
 * The probe's attack catalogue: every attack a robust-recall probe can run describes itself here once (the recipe
 * of src/attacks that does the work, its threat model, the query sides it perturbs, the knobs it takes), and the
 * one spec schema and the one /255 conversion derive from it. The API's request schema, the CLI flags and the
 * runner read this table; nothing else lists modalities or threat models (TextAttack's recipe-plus-metadata).
 *
 * Threat models:
 * - white-box: gradients / scores of the system's own model (our own deployment, or an in-memory model);
 * - transfer: white-box on a surrogate model, only the final queries reach the system (any system);
 * - black-box: only the system's search results (ids, scores when it returns them), within a query budget.
 */
import { z } from 'zod';
import type { AttackName } from '../../attacks/types.js';
import type { LabelLexicon } from '../../attacks/constraints/labels.js';

export type ThreatModel = 'white-box' | 'transfer' | 'black-box';
export type Modality = 'image' | 'text';
type Knob = 'eps' | 'stepSize' | 'steps' | 'maxWordsChanged' | 'maxQueries' | 'eot';

export interface ProbeAttackInfo {
  recipe: AttackName;
  threatModel: ThreatModel;
  modalities: readonly Modality[];
  knobs: readonly Knob[];
  summary: string;
}

const PGD_KNOBS: readonly Knob[] = ['eps', 'stepSize', 'steps'];
const MULTI_KNOBS: readonly Knob[] = ['eps', 'stepSize', 'steps', 'maxWordsChanged'];

export const PROBE_ATTACKS = {
  pgd: { recipe: 'pgd', threatModel: 'white-box', modalities: ['image'], knobs: PGD_KNOBS, summary: 'L-inf PGD on the image query' },
  text: { recipe: 'text', threatModel: 'white-box', modalities: ['text'], knobs: ['maxWordsChanged'], summary: 'greedy WordNet word swaps (PWWS-style)' },
  charedit: { recipe: 'charedit', threatModel: 'white-box', modalities: ['text'], knobs: ['maxWordsChanged'], summary: 'character edits inside words' },
  coattack: { recipe: 'coattack', threatModel: 'white-box', modalities: ['image', 'text'], knobs: MULTI_KNOBS, summary: 'Co-Attack: caption swaps, then the image attacked jointly' },
  sga: { recipe: 'sga', threatModel: 'white-box', modalities: ['image', 'text'], knobs: MULTI_KNOBS, summary: 'SGA: set-level guidance over all captions of an image' },
  'blackbox-image': { recipe: 'blackbox-image', threatModel: 'black-box', modalities: ['image'], knobs: ['eps', 'maxQueries'], summary: 'Square-style random search on the returned scores (rank when there are none)' },
  'blackbox-text': { recipe: 'blackbox-text', threatModel: 'black-box', modalities: ['text'], knobs: ['maxWordsChanged', 'maxQueries'], summary: 'score-guided WordNet swaps on the returned results' },
  'transfer-pgd': { recipe: 'pgd', threatModel: 'transfer', modalities: ['image'], knobs: [...PGD_KNOBS, 'eot'], summary: 'PGD crafted on the surrogate, sent to the system' },
  'transfer-text': { recipe: 'text', threatModel: 'transfer', modalities: ['text'], knobs: ['maxWordsChanged'], summary: 'word swaps chosen on the surrogate' },
  'transfer-coattack': { recipe: 'coattack', threatModel: 'transfer', modalities: ['image', 'text'], knobs: MULTI_KNOBS, summary: 'Co-Attack crafted on the surrogate' },
  'transfer-sga': { recipe: 'sga', threatModel: 'transfer', modalities: ['image', 'text'], knobs: MULTI_KNOBS, summary: 'SGA crafted on the surrogate (the strongest in transfer in its paper)' },
} as const satisfies Record<string, ProbeAttackInfo>;

export type ProbeAttackName = keyof typeof PROBE_ATTACKS;
export const PROBE_ATTACK_NAMES = Object.keys(PROBE_ATTACKS) as ProbeAttackName[];

export function probeAttackInfo(name: ProbeAttackName): ProbeAttackInfo {
  return PROBE_ATTACKS[name];
}

export function attacksOf(threat: ThreatModel): ProbeAttackName[] {
  return PROBE_ATTACK_NAMES.filter((n) => PROBE_ATTACKS[n].threatModel === threat);
}

/** the fields of one attack of a probe, budgets in /255 pixel units as people state them */
export const probeAttackSpecShape = {
  name: z.enum(PROBE_ATTACK_NAMES as [ProbeAttackName, ...ProbeAttackName[]]),
  eps: z.number().min(0).max(64).optional().describe('L-inf budget in /255 units (image attacks)'),
  stepSize: z.number().min(0).max(64).optional().describe('PGD step in /255 units (default max(eps/4, 0.25))'),
  steps: z.number().int().min(0).max(100).optional(),
  maxWordsChanged: z.number().int().min(0).max(5).optional(),
  maxQueries: z.number().int().min(1).max(5000).optional().describe('black-box: queries to the system per item'),
  eot: z.boolean().optional().describe('transfer-pgd over JPEG: craft with expectation over the encoding'),
};

/** refuses a knob the attack does not take (naming it), so a budget is never silently ignored */
export function refineProbeAttackKnobs(spec: { name: ProbeAttackName } & Record<string, unknown>, ctx: z.RefinementCtx): void {
  const knobs: readonly string[] = PROBE_ATTACKS[spec.name].knobs;
  for (const key of Object.keys(spec)) {
    if (key !== 'name' && spec[key] !== undefined && !knobs.includes(key)) {
      ctx.addIssue({ code: 'custom', path: [key], message: `${spec.name} takes no ${key} (its options: ${knobs.join(', ') || 'none'})` });
    }
  }
}

/** one attack of a probe (the API builds the same from the shape with its OpenAPI-aware zod) */
export const probeAttackSpecSchema = z.strictObject(probeAttackSpecShape).superRefine(refineProbeAttackKnobs);
export type ProbeAttackSpec = z.infer<typeof probeAttackSpecSchema>;

/** the suite a probe runs when none is given (issue 22): multimodal, PGD at 10 steps, a 1-word text attack, black-box */
export const DEFAULT_WHITE_BOX_SUITE: readonly ProbeAttackSpec[] = [
  { name: 'coattack', eps: 2, steps: 10 },
  { name: 'sga', eps: 2, steps: 10 },
  { name: 'pgd', eps: 2, steps: 10 },
  { name: 'text', maxWordsChanged: 1 },
  { name: 'blackbox-text', maxQueries: 30 },
];

/** the suite against a system whose model we do not have: transfer from the surrogate, then query-only */
export const DEFAULT_REMOTE_SUITE: readonly ProbeAttackSpec[] = [
  { name: 'transfer-sga', eps: 4, steps: 10 },
  { name: 'transfer-pgd', eps: 4, steps: 10 },
  { name: 'transfer-text', maxWordsChanged: 1 },
  { name: 'blackbox-image', eps: 4, maxQueries: 100 },
  { name: 'blackbox-text', maxQueries: 50 },
];

/**
 * How a report names one attack of a suite: its name, with the image budget when it has one (`pgd@2`, `sga@4`,
 * `text`), so one suite may run an attack at several budgets (a robustness curve).
 */
export function attackLabel(spec: ProbeAttackSpec): string {
  return spec.eps === undefined ? spec.name : `${spec.name}@${spec.eps}`;
}

/**
 * The recipe options of a spec: the one place /255 budgets become pixel units. A PGD-like step defaults to
 * max(eps/4, 0.25)/255 so that 10 steps can cross the ball twice at the budgets people use (2-8/255).
 */
export function recipeOptions(spec: ProbeAttackSpec, seed: number, extra: { eotJpegQuality?: number; textLabels?: LabelLexicon } = {}): Record<string, unknown> {
  const o: Record<string, unknown> = { seed };
  if (extra.textLabels && knobsOf(spec).includes('maxWordsChanged')) o.labels = extra.textLabels;
  if (spec.eps !== undefined) o.eps = spec.eps / 255;
  const knobs = knobsOf(spec);
  if (spec.stepSize !== undefined) o.stepSize = spec.stepSize / 255;
  else if (spec.eps !== undefined && knobs.includes('stepSize')) o.stepSize = Math.max(spec.eps / 4, 0.25) / 255;
  if (spec.steps !== undefined) o.steps = spec.steps;
  if (spec.maxWordsChanged !== undefined) o.maxWordsChanged = spec.maxWordsChanged;
  if (spec.maxQueries !== undefined) o.maxQueries = spec.maxQueries;
  if (spec.eot && extra.eotJpegQuality !== undefined) o.eotJpegQuality = extra.eotJpegQuality;
  return o;
}

/**
 * One attack at each of several image budgets (a robustness curve): one spec per eps when the attack takes an eps,
 * else one spec; the other budgets go only where the attack takes them (specsFromList). Throws naming an unknown
 * attack.
 */
export function specsAtEachEps(
  name: string,
  eps: readonly number[],
  budgets: { steps?: number; stepSize?: number; maxQueries?: number; maxWordsChanged?: number; eot?: boolean },
): ProbeAttackSpec[] {
  const takesEps = name in PROBE_ATTACKS && (PROBE_ATTACKS[name as ProbeAttackName].knobs as readonly string[]).includes('eps');
  return takesEps ? eps.flatMap((e) => specsFromList(name, { ...budgets, eps: e })) : specsFromList(name, budgets);
}

function knobsOf(spec: ProbeAttackSpec): readonly string[] {
  return PROBE_ATTACKS[spec.name].knobs;
}

/**
 * `pgd,sga,transfer-pgd` plus shared budgets (the CLI's --attacks / --eps / --steps / --max-queries): each budget
 * goes only to the attacks that take it. Throws naming the unknown attack.
 */
export function specsFromList(
  list: string,
  budgets: { eps?: number; steps?: number; stepSize?: number; maxQueries?: number; maxWordsChanged?: number; eot?: boolean },
): ProbeAttackSpec[] {
  return list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((name) => {
      if (!(name in PROBE_ATTACKS)) throw new Error(`unknown attack '${name}' (expected one of: ${PROBE_ATTACK_NAMES.join(', ')})`);
      const knobs: readonly string[] = PROBE_ATTACKS[name as ProbeAttackName].knobs;
      const spec: Record<string, unknown> = { name };
      for (const [k, v] of Object.entries(budgets)) if (v !== undefined && v !== false && knobs.includes(k)) spec[k] = v;
      return probeAttackSpecSchema.parse(spec);
    });
}
