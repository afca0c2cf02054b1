import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEMO_DEFAULTS, baseTrainingConfig, demoBaseDir, parseDemoArgs, robustTrainingConfig } from '../../scripts/demo-flags.js';
import { BASE_RECIPE, BUNDLED_BASE_DIR } from '../../scripts/bundled-base.js';

const SHAPE_RECIPE = 'training/recipes/scenes-shape.json';

describe('demo flags', () => {
  it('by default robustifies the bundled base with the demo recipe: MAT + N:N from the base, on the given data', () => {
    const flags = parseDemoArgs(['--no-serve']);
    expect(flags.serve).toBe(false);
    expect(flags['from-scratch']).toBe(false);
    expect(flags.config).toBe(DEMO_DEFAULTS.recipe);
    const baseDir = demoBaseDir(flags, 'runs/demo/base/model');
    expect(baseDir).toBe(BUNDLED_BASE_DIR);
    const config = robustTrainingConfig(flags, 'data/scenes/dataset_scenes.json', baseDir);
    expect(config.train).toMatchObject({ method: 'mat', augment: ['nn'], init: BUNDLED_BASE_DIR, trainEps: 4, trainSteps: 2, lr: 2e-4 });
    expect(config.train.epochs).toBeLessThan(BASE_RECIPE.epochs);
    expect(config.data.file).toBe('data/scenes/dataset_scenes.json');
    expect(config.seed).toBe(0);
  });

  it('the base recipe is the clean 12-epoch run the bundle was trained with', () => {
    const config = baseTrainingConfig({ backend: 'auto', threads: 2, seed: BASE_RECIPE.seed }, 'd.json');
    expect(config.train.method).toBe('clean');
    expect(config.train.augment).toEqual([]);
    expect(config.train.epochs).toBe(BASE_RECIPE.epochs);
    expect(config.train.init).toBeUndefined();
    expect(config.train.stem).not.toBe('conv');
    expect(config.seed).toBe(0);
    expect([DEMO_DEFAULTS.train, DEMO_DEFAULTS.val, DEMO_DEFAULTS.test, DEMO_DEFAULTS.seed]).toEqual([
      BASE_RECIPE.data.train,
      BASE_RECIPE.data.val,
      BASE_RECIPE.data.test,
      BASE_RECIPE.data.seed,
    ]);
  });

  it('--from-scratch robustifies a base trained under --out; --base names another', () => {
    expect(demoBaseDir(parseDemoArgs(['--from-scratch']), 'runs/x/base/model')).toBe('runs/x/base/model');
    const flags = parseDemoArgs(['--base', 'my/model']);
    expect(demoBaseDir(flags, 'runs/x/base/model')).toBe('my/model');
    expect(robustTrainingConfig(flags, 'd.json', 'my/model').train.init).toBe('my/model');
  });

  it('--epochs sets the fine-tune epochs and nothing else; --config swaps the recipe, flags still override it', () => {
    const flags = parseDemoArgs(['--epochs', '1', '--seed', '3']);
    const config = robustTrainingConfig(flags, 'd.json', 'b');
    expect(config.train).toMatchObject({ method: 'mat', epochs: 1, init: 'b' });
    expect(config.seed).toBe(3);
    const shape = robustTrainingConfig(parseDemoArgs(['--config', SHAPE_RECIPE, '--epochs', '4']), 'd.json', 'b');
    expect(shape.train).toMatchObject({ stem: 'conv', epochs: 4, hardNegativeImages: 1, init: 'b' });
  });

  it('a missing or invalid recipe is an error naming the file', () => {
    expect(() => robustTrainingConfig(parseDemoArgs(['--config', 'no/such/recipe.json']), 'd.json', 'b')).toThrow(/no\/such\/recipe\.json/);
    const bad = join(mkdtempSync(join(tmpdir(), 'mf-demo-')), 'bad.json');
    writeFileSync(bad, JSON.stringify({ train: { epochs: -1 } }));
    expect(() => robustTrainingConfig(parseDemoArgs(['--config', bad]), 'd.json', 'b')).toThrow(/bad\.json[\s\S]*train\.epochs/);
  });

  it('bad, conflicting and unknown flags are refused by name', () => {
    expect(() => parseDemoArgs(['--epochs', '0'])).toThrow(/--epochs/);
    expect(() => parseDemoArgs(['--threads', 'two'])).toThrow(/--threads/);
    expect(() => parseDemoArgs(['--probe-sample', '0'])).toThrow(/--probe-sample/);
    expect(() => parseDemoArgs(['--port', '65535'])).toThrow(/--port/);
    expect(() => parseDemoArgs(['--base', 'm', '--from-scratch'])).toThrow(/--base: .*--from-scratch/);
    expect(() => parseDemoArgs(['--recipe', SHAPE_RECIPE])).toThrow(/recipe/);
  });
});
