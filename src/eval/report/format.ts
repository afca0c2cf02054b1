/**
 * Shared table model of a robust report: the rows and cells both the Markdown and the HTML renderers print,
 * so the two always show the same numbers with the same protocol columns.
 */
import type { RobustEntry, RobustReport, WorstEntry } from '../robust.js';

export const f2 = (x: number | null | undefined): string => (x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(2));
export const f1 = (x: number | null | undefined): string => (x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(1));
const ci = (c: [number, number]): string => `[${f1(c[0])}, ${f1(c[1])}]`;

export const ATTACK_HEADERS = [
  'attack',
  'threat',
  'eps/255',
  'steps',
  'words',
  'TR R@1 [95% CI]',
  'TR R@5',
  'TR R@10',
  'IR R@1 [95% CI]',
  'IR R@5',
  'IR R@10',
  'RSUM',
  'ASR TR@1 [CI]',
  'ASR IR@1 [CI]',
  'queries/img',
  'queries/cap',
  'wall s',
];

export function attackRow(e: RobustEntry): string[] {
  return [
    e.label,
    e.protocol.threatModel,
    e.eps255 === null ? '–' : String(e.eps255),
    e.protocol.steps === null ? '–' : String(e.protocol.steps),
    e.protocol.words === null ? '–' : String(e.protocol.words),
    `${f2(e.tr.r1)} ${ci(e.ci.tr.r1)}${e.attacked.tr ? '' : ' (clean)'}`,
    f2(e.tr.r5),
    f2(e.tr.r10),
    `${f2(e.ir.r1)} ${ci(e.ci.ir.r1)}${e.attacked.ir ? '' : ' (clean)'}`,
    f2(e.ir.r5),
    f2(e.ir.r10),
    f1(e.rsum),
    `${f1(e.asr.tr.r1)} ${ci(e.ci.asr.tr.r1)} of ${e.asr.base.tr.r1}`,
    `${f1(e.asr.ir.r1)} ${ci(e.ci.asr.ir.r1)} of ${e.asr.base.ir.r1}`,
    f1(e.queries.perImage),
    f1(e.queries.perCaption),
    f1(e.wallSeconds),
  ];
}

export const WORST_HEADERS = ['eps/255', 'over', 'TR R@1 [95% CI]', 'TR R@5', 'TR R@10', 'IR R@1 [95% CI]', 'IR R@5', 'IR R@10', 'RSUM', 'ASR TR@1', 'ASR IR@1'];

export function worstRow(w: WorstEntry): string[] {
  return [
    w.eps255 === null ? '–' : String(w.eps255),
    w.over.join(', '),
    `${f2(w.tr.r1)} ${ci(w.ci.tr.r1)}`,
    f2(w.tr.r5),
    f2(w.tr.r10),
    `${f2(w.ir.r1)} ${ci(w.ci.ir.r1)}`,
    f2(w.ir.r5),
    f2(w.ir.r10),
    f1(w.rsum),
    f1(w.asr.tr.r1),
    f1(w.asr.ir.r1),
  ];
}

export const CLEAN_HEADERS = ['direction', 'R@1 [95% CI]', 'R@5', 'R@10', 'RSUM'];

export function cleanRows(r: RobustReport): string[][] {
  const t = r.clean.tr;
  const i = r.clean.ir;
  const rsum = f1(t.r1 + t.r5 + t.r10 + i.r1 + i.r5 + i.r10);
  return [
    ['image->text (TR)', `${f2(t.r1)} ${ci(t.r1ci)}`, f2(t.r5), f2(t.r10), rsum],
    ['text->image (IR)', `${f2(i.r1)} ${ci(i.r1ci)}`, f2(i.r5), f2(i.r10), '(both)'],
  ];
}

/** one line stating the protocol every number of the report was measured under */
export function protocolLine(r: RobustReport): string {
  const s = r.robust;
  return (
    `model ${r.model}; split ${s.split} (${s.nImages} images, ${s.nTexts} captions${s.limit !== null ? `, first ${s.limit} images` : ''}); ` +
    `side=${s.side}; eps ${s.eps255.join(', ')} /255 (L-inf); steps ${s.steps}; step size ${typeof s.stepSize255 === 'number' ? `${s.stepSize255}/255` : s.stepSize255}; ` +
    `words ${s.words}${s.textLabels ? ` (substitutes keep their ${s.textLabels} label)` : ''}; seed ${s.seed}; chunk ${s.chunkImages} images; attack goal top-${s.goalK} leave; bootstrap ${s.resamples} resamples; ` +
    `black-box budget ${s.blackbox.imageQueries} queries/image, ${s.blackbox.textQueries} queries/caption, top-${s.blackbox.topK}`
  );
}
