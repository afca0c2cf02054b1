/** Bounded min-heap keeping the k largest (score, row) pairs; ties broken by lower row first. */
export class TopK {
  private readonly scores: Float64Array;
  private readonly rows: Int32Array;
  private n = 0;

  constructor(private readonly k: number) {
    this.scores = new Float64Array(k);
    this.rows = new Int32Array(k);
  }

  get size(): number {
    return this.n;
  }

  /** the smallest kept score, -Infinity until full: a candidate must beat it */
  get threshold(): number {
    return this.n < this.k ? -Infinity : this.scores[0];
  }

  push(score: number, row: number): void {
    if (this.n < this.k) {
      let i = this.n++;
      this.scores[i] = score;
      this.rows[i] = row;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (!this.less(i, p)) break;
        this.swap(i, p);
        i = p;
      }
      return;
    }
    if (score <= this.scores[0]) return;
    this.scores[0] = score;
    this.rows[0] = row;
    this.siftDown(0);
  }

  /** (row, score) pairs, best first */
  sorted(): { row: number; score: number }[] {
    const out: { row: number; score: number }[] = [];
    for (let i = 0; i < this.n; i++) out.push({ row: this.rows[i], score: this.scores[i] });
    out.sort((a, b) => b.score - a.score || a.row - b.row);
    return out;
  }

  private less(i: number, j: number): boolean {
    return this.scores[i] < this.scores[j] || (this.scores[i] === this.scores[j] && this.rows[i] > this.rows[j]);
  }

  private swap(i: number, j: number): void {
    const s = this.scores[i];
    this.scores[i] = this.scores[j];
    this.scores[j] = s;
    const r = this.rows[i];
    this.rows[i] = this.rows[j];
    this.rows[j] = r;
  }

  private siftDown(i: number): void {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < this.n && this.less(l, m)) m = l;
      if (r < this.n && this.less(r, m)) m = r;
      if (m === i) return;
      this.swap(i, m);
      i = m;
    }
  }
}

/** dot product of a[aOff..aOff+n) and b[0..n), unrolled by 4 */
export function dot(a: Float32Array, aOff: number, b: Float32Array, n: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let i = 0;
  const n4 = n - (n % 4);
  for (; i < n4; i += 4) {
    s0 += a[aOff + i] * b[i];
    s1 += a[aOff + i + 1] * b[i + 1];
    s2 += a[aOff + i + 2] * b[i + 2];
    s3 += a[aOff + i + 3] * b[i + 3];
  }
  for (; i < n; i++) s0 += a[aOff + i] * b[i];
  return s0 + s1 + s2 + s3;
}
