/** Robust recall under attack over any rank source: catalogue, metrics, runner, sources, reports, release bars. */
export * from './catalog.js';
export * from './metrics.js';
export * from './rank-source.js';
export * from './runner.js';
export * from './render.js';
export * from './gate.js';
export { MemoryRankSource, type MemoryGallery } from './sources/memory.js';
export { probeFromSplit } from './split.js';
