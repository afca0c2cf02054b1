import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CONFIG_VARIABLES, ConfigError, loadConfig } from '../src/config.js';

describe('configuration layers', () => {
  it('MANYFOLD_THREADS sets threads; flags override the environment', () => {
    expect(loadConfig({ env: {} }).threads).toBe(1);
    expect(loadConfig({ env: { MANYFOLD_THREADS: '2' } }).threads).toBe(2);
    expect(loadConfig({ env: { MANYFOLD_THREADS: '2' }, overrides: { threads: 4 } }).threads).toBe(4);
  });

  it('a bad MANYFOLD_THREADS is an error that names the field', () => {
    for (const bad of ['two', '0', '1.5']) {
      expect(() => loadConfig({ env: { MANYFOLD_THREADS: bad } }), bad).toThrow(ConfigError);
      expect(() => loadConfig({ env: { MANYFOLD_THREADS: bad } }), bad).toThrow(/threads \(MANYFOLD_THREADS\):/);
    }
  });
});

describe('configuration from the environment (one loader for Node, the Worker and Lambda)', () => {
  it('every variable of CONFIG_VARIABLES sets its field', () => {
    const env = {
      MANYFOLD_BACKEND: 'wasm',
      MANYFOLD_THREADS: '3',
      MANYFOLD_INFERENCE: 'tfjs',
      MANYFOLD_SEED: '7',
      MANYFOLD_PORT: '8123',
      MANYFOLD_HOST: '0.0.0.0',
      MANYFOLD_LOG_LEVEL: 'warn',
      MANYFOLD_API_KEYS: 'k-12345678=admin',
      MANYFOLD_INDEX: 'pinecone',
      PINECONE_API_KEY: 'pc-key',
      PINECONE_HOST: 'http://127.0.0.1:9',
    };
    expect(Object.keys(env).sort()).toEqual(CONFIG_VARIABLES.map((v) => v.name).sort());
    const c = loadConfig({ env });
    expect(c).toMatchObject({ backend: 'wasm', threads: 3, inference: 'tfjs', seed: 7, auth: { keys: 'k-12345678=admin' } });
    expect(c.server).toMatchObject({ port: 8123, host: '0.0.0.0', logLevel: 'warn' });
    expect(c.index).toMatchObject({ kind: 'pinecone', pinecone: { apiKey: 'pc-key', host: 'http://127.0.0.1:9' } });
  });

  it('layers in one order: file <- MANYFOLD_CONFIG <- variables <- flags', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mf-config-'));
    try {
      const file = join(dir, 'c.json');
      writeFileSync(file, JSON.stringify({ seed: 1, threads: 1, server: { port: 1001, host: '127.0.0.2' } }));
      const env = { MANYFOLD_CONFIG: JSON.stringify({ seed: 2, server: { port: 1002 } }), MANYFOLD_PORT: '1003' };
      const c = loadConfig({ file, env, overrides: { threads: 4 } });
      expect(c.seed).toBe(2); // MANYFOLD_CONFIG over the file
      expect(c.server.port).toBe(1003); // a variable over MANYFOLD_CONFIG
      expect(c.server.host).toBe('127.0.0.2'); // deep: the file's other server fields stay
      expect(c.threads).toBe(4); // flags last
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a Worker's bindings: only strings are read (buckets and queues are not configuration)", () => {
    const c = loadConfig({ env: { DATA: { get() {} }, MANYFOLD_INDEX: 'memory', MANYFOLD_PORT: 8080 as unknown, MANYFOLD_SEED: '' } });
    expect(c.index.kind).toBe('memory');
    expect(c.server.port).toBe(loadConfig({ env: {} }).server.port);
    expect(c.seed).toBe(loadConfig({ env: {} }).seed);
  });

  it('PINECONE_* are read only when the index is Pinecone (a shell exporting them must not break a LanceDB server)', () => {
    const c = loadConfig({ env: { PINECONE_API_KEY: 'pc-key' } });
    expect(c.index.kind).toBe('lancedb');
    expect(c.index.pinecone).toBeUndefined();
    expect(loadConfig({ env: { PINECONE_HOST: 'http://127.0.0.1:9', MANYFOLD_INDEX: 'memory' } }).index.pinecone).toBeUndefined();
    // Pinecone chosen by the file, MANYFOLD_CONFIG or a flag picks them up just as MANYFOLD_INDEX does
    expect(loadConfig({ env: { PINECONE_API_KEY: 'pc-key', PINECONE_HOST: 'http://h', MANYFOLD_CONFIG: '{"index":{"kind":"pinecone"}}' } }).index.pinecone).toMatchObject({ apiKey: 'pc-key', host: 'http://h' });
    expect(loadConfig({ env: { PINECONE_API_KEY: 'pc-key', PINECONE_HOST: 'http://h' }, overrides: { index: { kind: 'pinecone' } } }).index.pinecone?.apiKey).toBe('pc-key');
    // and a Pinecone index without them says what is missing
    expect(() => loadConfig({ env: { MANYFOLD_INDEX: 'pinecone', PINECONE_API_KEY: 'pc-key' } })).toThrow(/index\.pinecone\.host: required unless indexes/);
  });

  it('bad input names the variable or MANYFOLD_CONFIG', () => {
    expect(() => loadConfig({ env: { MANYFOLD_CONFIG: '{"seed": 1' } })).toThrow(/MANYFOLD_CONFIG is not valid JSON/);
    expect(() => loadConfig({ env: { MANYFOLD_CONFIG: '[1]' } })).toThrow(/MANYFOLD_CONFIG is not valid JSON: top level must be an object/);
    expect(() => loadConfig({ env: { MANYFOLD_PORT: 'eighty' } })).toThrow(/server\.port \(MANYFOLD_PORT\):/);
    expect(() => loadConfig({ env: { MANYFOLD_INDEX: 'faiss' } })).toThrow(/index\.kind \(MANYFOLD_INDEX\):/);
    expect(() => loadConfig({ env: { MANYFOLD_CONFIG: JSON.stringify({ train: { epochs: 0 } }) } })).toThrow(/in MANYFOLD_CONFIG:\n\s+train\.epochs:/);
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
