/** N:N augmentation (see pool.ts for the names and docs/defenses.md for the design). */
export * from './types.js';
export * from './words.js';
export * from './text.js';
export * from './image.js';
export * from './oracle.js';
export * from './misaligned.js';
export * from './providers.js';
export * from './filter.js';
export * from './pool.js';
