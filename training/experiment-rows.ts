/**
 * The rows of the defenses table (training/experiment.ts). A module of its own, free of tfjs, so that the CLI's
 * --help can list the row ids without loading the trainer.
 */
export interface RowSpec {
  id: string;
  label: string;
  method: 'clean' | 'tecoa' | 'fare' | 'mat';
  augment: string[];
  /** the base clean model itself (not fine-tuned) */
  base?: boolean;
  alignQuantile?: number;
  note?: string;
}

export const ROWS: readonly RowSpec[] = [
  { id: 'clean', label: 'clean', method: 'clean', augment: [], base: true },
  { id: 'clean-ft', label: 'clean + fine-tune (no attack)', method: 'clean', augment: [] },
  { id: 'tecoa', label: 'TeCoA', method: 'tecoa', augment: [] },
  { id: 'fare', label: 'FARE', method: 'fare', augment: [] },
  { id: 'mat', label: 'MAT', method: 'mat', augment: [] },
  { id: 'mat-text', label: 'MAT + text aug', method: 'mat', augment: ['text'] },
  { id: 'mat-image', label: 'MAT + image aug', method: 'mat', augment: ['image'] },
  { id: 'mat-cross', label: 'MAT + cross-modal aug', method: 'mat', augment: ['cross'] },
  { id: 'mat-nn', label: 'MAT + N:N', method: 'mat', augment: ['nn'] },
  { id: 'mat-misaligned', label: 'MAT + misaligned aug (control)', method: 'mat', augment: ['misaligned'], alignQuantile: 0 },
  // ablation: the alignment filter scores views with the clean model, which rates unseen views below memorised pairs
  { id: 'mat-nn-unfiltered', label: 'MAT + N:N, no alignment filter (ablation)', method: 'mat', augment: ['nn'], alignQuantile: 0 },
];
