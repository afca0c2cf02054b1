import { InvalidArgumentError } from 'commander';

/** commander argument parsers that name the offending flag value in their error. */
export function intFlag(min = Number.MIN_SAFE_INTEGER) {
  return (value: string): number => {
    if (!/^-?\d+$/.test(value.trim())) throw new InvalidArgumentError(`expected an integer, got "${value}"`);
    const n = Number(value);
    if (n < min) throw new InvalidArgumentError(`expected an integer >= ${min}, got ${n}`);
    return n;
  };
}

/**
 * A size in bytes: an integer, or one with a binary unit (KiB, MiB, GiB; K, M, G mean the same), e.g. --shard-bytes 24MiB.
 */
export function bytesFlag(min = 1) {
  const units: Record<string, number> = { '': 1, b: 1, k: 1024, kib: 1024, m: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gib: 1024 ** 3 };
  return (value: string): number => {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(value);
    const unit = m ? units[m[2].toLowerCase()] : undefined;
    if (!m || unit === undefined) throw new InvalidArgumentError(`expected bytes (an integer, or with KiB / MiB / GiB), got "${value}"`);
    const n = Math.floor(Number(m[1]) * unit);
    if (n < min) throw new InvalidArgumentError(`expected at least ${min} bytes, got ${n}`);
    return n;
  };
}

export function numberFlag(opts: { min?: number; exclusiveMin?: boolean } = {}) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`expected a number, got "${value}"`);
    if (opts.min !== undefined && (opts.exclusiveMin ? n <= opts.min : n < opts.min)) {
      throw new InvalidArgumentError(`expected a number ${opts.exclusiveMin ? '>' : '>='} ${opts.min}, got ${n}`);
    }
    return n;
  };
}

/** comma-separated list of numbers, e.g. --eps 1,2,4,8 */
export function numberListFlag(value: string): number[] {
  const parts = value.split(',').map((p) => p.trim()).filter(Boolean);
  if (!parts.length) throw new InvalidArgumentError(`expected a comma-separated list of numbers, got "${value}"`);
  return parts.map((p) => {
    const n = Number(p);
    if (!Number.isFinite(n)) throw new InvalidArgumentError(`"${p}" in "${value}" is not a number`);
    return n;
  });
}

/** comma-separated list of distinct integers >= min, e.g. --seed 3,4,5 */
export function intListFlag(min = Number.MIN_SAFE_INTEGER) {
  const one = intFlag(min);
  return (value: string): number[] => {
    const parts = value.split(',').map((p) => p.trim()).filter(Boolean);
    if (!parts.length) throw new InvalidArgumentError(`expected a comma-separated list of integers, got "${value}"`);
    const list = parts.map((p) => {
      try {
        return one(p);
      } catch (err) {
        throw new InvalidArgumentError(`"${p}" in "${value}": ${(err as Error).message}`);
      }
    });
    const repeated = list.find((n, i) => list.indexOf(n) !== i);
    if (repeated !== undefined) throw new InvalidArgumentError(`${repeated} appears twice in "${value}"`);
    return list;
  };
}

export function choiceFlag<T extends string>(choices: readonly T[]) {
  return (value: string): T => {
    if (!(choices as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected one of ${choices.join(', ')}, got "${value}"`);
    return value as T;
  };
}

/** Help of `--threads`, shared by every command that initialises the tfjs backend. */
export const THREADS_FLAG_HELP = 'wasm: XNNPACK threads (default 1; 2+ is experimental and pays off only on idle cores)';
