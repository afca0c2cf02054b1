/** Public surface of src/data: readers, loader + tensor cache, and the `scenes` generator. */
export type { DatasetSplit, LoadInfo, SceneGraph, SceneObject } from './types.js';
export { DatasetError, type BadRow } from './errors.js';
export { loadDataset, defaultCacheDir, type LoadOptions, type LoadProgress } from './load.js';
export {
  readDatasetFile,
  parseKarpathy,
  parseJsonl,
  detectFormat,
  normaliseCaption,
  type DatasetFormat,
  type DatasetRecord,
  type OnBadRow,
  type ReadOptions,
  type ReadResult,
} from './readers.js';
export {
  decodeImage,
  decodeSpecForModel,
  clipResizeGeometry,
  ImageTensorCache,
  StatIndex,
  sha256,
  specKey,
  parseRgb,
  type DecodeSpec,
  type ManyfoldDecodeSpec,
  type ClipDecodeSpec,
  type DecodeModelConfig,
  type ResizeMode,
  type Rgb,
} from './imageCache.js';
export { SceneGraphSchema, SceneObjectSchema, KarpathyImageSchema, JsonlRowSchema } from './schemas.js';
export {
  generateScenes,
  DEFAULT_SCENE_COUNTS,
  DEFAULT_SCENE_SIZE,
  SCENES_JSON,
  type GenerateScenesOptions,
  type GenerateScenesResult,
  type SceneSplitStats,
} from './scenes/generate.js';
export { sceneMatches, sceneKey, spatialFacts, type SceneMatchOptions } from './scenes/match.js';
export { captionScene, captionsForScene, tokenize } from './scenes/captions.js';
export { renderScene, type RenderSpec } from './scenes/raster.js';
export { SHAPES, COLORS, SIZES, SHAPE_WORDS, COLOR_WORDS, SIZE_WORDS } from './scenes/vocab.js';
