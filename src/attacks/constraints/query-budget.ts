/**
 * A per-item query budget: searches ask how many queries an item has left before spending them, and every
 * spent query is counted (the count is reported in the AttackResult).
 */
export class QueryBudget {
  readonly used: Int32Array;

  constructor(
    readonly max: number,
    n: number,
  ) {
    if (!(max >= 0)) throw new Error(`query budget must be >= 0, got ${max}`);
    this.used = new Int32Array(n);
  }

  remaining(item: number): number {
    return Math.max(0, this.max - this.used[item]);
  }

  /** record `count` queries for an item; throws if that exceeds the budget (a search bug) */
  spend(item: number, count = 1): void {
    if (this.used[item] + count > this.max) {
      throw new Error(`query budget exceeded for item ${item}: ${this.used[item]} + ${count} > ${this.max}`);
    }
    this.used[item] += count;
  }

  get total(): number {
    let s = 0;
    for (const u of this.used) s += u;
    return s;
  }
}
