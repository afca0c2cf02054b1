import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEMO_DEFAULTS, demoTrainingConfig, parseDemoArgs } from '../../scripts/demo-flags.js';

const RECIPE = 'training/recipes/scenes-shape.json';

describe('demo flags', () => {
  it('without a recipe trains the demo default of 12 epochs on the given data', () => {
    const flags = parseDemoArgs(['--no-serve']);
    expect(flags.serve).toBe(false);
    expect(flags.config).toBeUndefined();
    const config = demoTrainingConfig(flags, 'data/scenes/dataset_scenes.json');
    expect(config.train.epochs).toBe(DEMO_DEFAULTS.epochs);
    expect(config.train.stem).not.toBe('conv');
    expect(config.train.hardNegativeImages).toBe(0);
    expect(config.data.file).toBe('data/scenes/dataset_scenes.json');
    expect(config.seed).toBe(0);
  });

  it('--config takes a recipe whole, its epochs included', () => {
    const config = demoTrainingConfig(parseDemoArgs(['--config', RECIPE, '--seed', '3']), 'd.json');
    expect(config.train).toMatchObject({ stem: 'conv', epochs: 8, hardNegativeImages: 1, minLrRatio: 1, weightDecay: 0 });
    expect(config.seed).toBe(3);
  });

  it('--epochs overrides the recipe and nothing else', () => {
    const config = demoTrainingConfig(parseDemoArgs(['--config', RECIPE, '--epochs', '4', '--train', '48000']), 'd.json');
    expect(config.train).toMatchObject({ stem: 'conv', epochs: 4, hardNegativeImages: 1, minLrRatio: 1, weightDecay: 0 });
  });

  it('a missing or invalid recipe is an error naming the file', () => {
    expect(() => demoTrainingConfig(parseDemoArgs(['--config', 'no/such/recipe.json']), 'd.json')).toThrow(/no\/such\/recipe\.json/);
    const bad = join(mkdtempSync(join(tmpdir(), 'mf-demo-')), 'bad.json');
    writeFileSync(bad, JSON.stringify({ train: { epochs: -1 } }));
    expect(() => demoTrainingConfig(parseDemoArgs(['--config', bad]), 'd.json')).toThrow(/bad\.json[\s\S]*train\.epochs/);
  });

  it('bad and unknown flags are refused by name', () => {
    expect(() => parseDemoArgs(['--epochs', '0'])).toThrow(/--epochs/);
    expect(() => parseDemoArgs(['--threads', 'two'])).toThrow(/--threads/);
    expect(() => parseDemoArgs(['--recipe', RECIPE])).toThrow(/recipe/);
  });
});
