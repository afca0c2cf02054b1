/** One object of a procedurally rendered `scenes` image. */
export interface SceneObject {
  shape: string; // e.g. circle, square, triangle, star, ...
  color: string; // a colour name WordNet knows
  size: 'small' | 'medium' | 'large';
  x: number; // centre, 0..1 of the image width
  y: number; // centre, 0..1 of the image height
}

/** The ground-truth scene graph of one `scenes` image: objects plus pairwise relations. */
export interface SceneGraph {
  background: string;
  objects: SceneObject[];
  relations: { subject: number; relation: 'left of' | 'right of' | 'above' | 'below' | 'bigger than' | 'smaller than'; object: number }[];
}

/**
 * A split decoded into memory, ready for training and evaluation.
 * Images are RGB uint8, row-major [count, size, size, 3] (pixels / 255 gives the model's [0,1] input).
 */
export interface DatasetSplit {
  name: string; // train | val | test | ...
  size: number; // image edge in pixels
  count: number; // number of images
  images: Uint8Array;
  imageIds: string[]; // file names (unique within the data set)
  captions: string[];
  captionToImage: Int32Array; // caption index -> image index
  imageToCaptions: number[][]; // image index -> caption indices
  scenes?: (SceneGraph | undefined)[]; // per image, when the data set carries scene graphs
  /** rows skipped by a reader in skip mode, with the reason naming the file/line */
  skipped: { where: string; reason: string }[];
  /** how the split was loaded (set by data/load.ts loadDataset; optional for hand-built splits) */
  load?: LoadInfo;
}

/** Provenance and cache statistics of one loadDataset call. */
export interface LoadInfo {
  file: string; // absolute path of the dataset file
  format: 'karpathy' | 'jsonl';
  /** 'clip' = CLIPImageProcessor's decode (a CLIP-family model, see imageCache.ts) */
  resize: 'cover' | 'fill' | 'clip';
  /** the decode spec's cache key (imageCache.ts specKey): equal keys = identical pixels */
  decode?: string;
  cacheDir: string | null; // null when the tensor cache was disabled
  cacheHits: number; // images served from the tensor cache
  decoded: number; // images decoded with sharp (cache misses, corrupt entries, or no cache)
  corruptEntries: number; // cache entries that failed validation and were re-decoded
  hashed: number; // source files read and hashed (the rest were known from the stat index)
  ms: number; // wall time of the load
}
