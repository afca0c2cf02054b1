/**
 * Attacks by name, for the CLI, eval and the API probe. `attackByName(name, opts)` returns an Attack whose
 * `run(batch, env)` gives an AttackResult. Budgets are in pixel units; use `budgetFrom255` for CLI input.
 */
import type { Attack, AttackName } from './types.js';
import { ATTACK_NAMES } from './types.js';
import { pgdAttack, type PgdOptions } from './recipes/pgd.js';
import { textPwwsAttack, type TextPwwsOptions } from './recipes/text-pwws.js';
import { textCharEditAttack, type TextCharEditOptions } from './recipes/text-charedit.js';
import { coAttack, type CoAttackOptions } from './recipes/co-attack.js';
import { sgaAttack, type SgaOptions } from './recipes/sga.js';
import { blackBoxImageAttack, type BlackBoxImageOptions } from './recipes/blackbox-image.js';
import { blackBoxTextAttack, type BlackBoxTextOptions } from './recipes/blackbox-text.js';

export interface AttackOptionsByName {
  pgd: PgdOptions;
  text: TextPwwsOptions;
  charedit: TextCharEditOptions;
  coattack: CoAttackOptions;
  sga: SgaOptions;
  'blackbox-image': BlackBoxImageOptions;
  'blackbox-text': BlackBoxTextOptions;
}

const FACTORIES: { [K in AttackName]: (o: AttackOptionsByName[K]) => Attack } = {
  pgd: pgdAttack,
  text: textPwwsAttack,
  charedit: textCharEditAttack,
  coattack: coAttack,
  sga: sgaAttack,
  'blackbox-image': blackBoxImageAttack,
  'blackbox-text': blackBoxTextAttack,
};

export function isAttackName(name: string): name is AttackName {
  return (ATTACK_NAMES as readonly string[]).includes(name);
}

export function attackByName<K extends AttackName>(name: K, opts?: AttackOptionsByName[K]): Attack;
export function attackByName(name: string, opts?: Record<string, unknown>): Attack;
export function attackByName(name: string, opts: Record<string, unknown> = {}): Attack {
  if (!isAttackName(name)) throw new Error(`unknown attack '${name}' (expected one of: ${ATTACK_NAMES.join(', ')})`);
  return (FACTORIES[name] as (o: Record<string, unknown>) => Attack)(opts);
}
