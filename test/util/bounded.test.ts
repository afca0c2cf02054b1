import { describe, expect, it } from 'vitest';
import { BoundedTasks } from '../../src/util/bounded.js';

const tick = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe('BoundedTasks', () => {
  it('never has more than `limit` tasks in flight and runs every task', async () => {
    const tasks = new BoundedTasks(3);
    let running = 0;
    let peak = 0;
    const finished: number[] = [];
    for (let i = 0; i < 20; i++) {
      await tasks.submit(async () => {
        running++;
        peak = Math.max(peak, running);
        await tick(1 + (i % 4));
        running--;
        finished.push(i);
      });
    }
    await tasks.drain();
    expect(peak).toBe(3);
    expect(finished.sort((a, b) => a - b)).toEqual([...Array(20).keys()]);
  });

  it('reports the first failure, lets the caller stop, and rethrows it from drain after in-flight tasks settle', async () => {
    const tasks = new BoundedTasks(2);
    let settled = 0;
    let submitted = 0;
    for (let i = 0; i < 10 && !tasks.failed; i++) {
      submitted++;
      await tasks.submit(async () => {
        await tick(i === 1 ? 1 : 5);
        settled++;
        if (i === 1) throw new Error('task 1 broke');
        if (i === 3) throw new Error('task 3 broke too');
      });
    }
    expect(tasks.failed).toBe(true);
    expect(submitted).toBeLessThan(10);
    await expect(tasks.drain()).rejects.toThrow('task 1 broke');
    expect(settled).toBe(submitted);
  });

  it('rejects a limit that is not a positive integer', () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) expect(() => new BoundedTasks(bad)).toThrow(/limit must be an integer >= 1/);
  });
});
