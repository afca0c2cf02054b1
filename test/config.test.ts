import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';

describe('configuration layers', () => {
  it('MANYFOLD_THREADS sets threads; flags override the environment', () => {
    expect(loadConfig({ env: {} }).threads).toBe(1);
    expect(loadConfig({ env: { MANYFOLD_THREADS: '2' } }).threads).toBe(2);
    expect(loadConfig({ env: { MANYFOLD_THREADS: '2' }, overrides: { threads: 4 } }).threads).toBe(4);
  });

  it('a bad MANYFOLD_THREADS is an error that names the field', () => {
    for (const bad of ['two', '0', '1.5']) {
      expect(() => loadConfig({ env: { MANYFOLD_THREADS: bad } }), bad).toThrow(ConfigError);
      expect(() => loadConfig({ env: { MANYFOLD_THREADS: bad } }), bad).toThrow(/threads:/);
    }
  });
});

describe('training recipes (training/recipes/*.json)', () => {
  it('scenes-shape.json parses with the one schema and holds the recipe docs/results.md measured', () => {
    const c = loadConfig({ file: 'training/recipes/scenes-shape.json', env: {} });
    expect(c.train).toMatchObject({ stem: 'conv', epochs: 8, hardNegativeImages: 1, minLrRatio: 1, weightDecay: 0, lr: 5e-4, batch: 64, preset: 'tiny', method: 'clean' });
    // flags still override the file
    expect(loadConfig({ file: 'training/recipes/scenes-shape.json', env: {}, overrides: { train: { epochs: 2 } } }).train.epochs).toBe(2);
  });
});
