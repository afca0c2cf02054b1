/**
 * The closed world of the `scenes` data set: shapes, colours, sizes, backgrounds, and the words captions use
 * for them. Every word here is a WordNet lemma (checked by test/data/scenes.test.ts), so synonym attacks and
 * EDA find substitutes, and the synonyms used in captions teach the model that "crimson disc" = "red circle".
 */
import type { SceneObject } from '../types.js';

export const SHAPES = ['circle', 'square', 'triangle', 'star', 'cross', 'diamond'] as const;
export type Shape = (typeof SHAPES)[number];

export const COLORS = ['red', 'green', 'blue', 'yellow', 'purple', 'orange', 'white', 'black'] as const;
export type Color = (typeof COLORS)[number];

export const SIZES = ['small', 'medium', 'large'] as const satisfies readonly SceneObject['size'][];

/** Nouns for each shape; the first is the canonical name (used about half the time). */
export const SHAPE_WORDS: Record<Shape, readonly string[]> = {
  circle: ['circle', 'disc', 'disk'],
  square: ['square', 'box', 'block'],
  triangle: ['triangle'],
  star: ['star', 'pentacle'],
  cross: ['cross', 'plus'],
  diamond: ['diamond', 'rhombus', 'lozenge'],
};

export const COLOR_WORDS: Record<Color, readonly string[]> = {
  red: ['red', 'crimson', 'scarlet'],
  green: ['green', 'emerald'],
  blue: ['blue', 'azure', 'cobalt'],
  yellow: ['yellow', 'golden', 'gold'],
  purple: ['purple', 'violet'],
  orange: ['orange', 'tangerine'],
  white: ['white', 'ivory', 'snowy'],
  black: ['black', 'ebony', 'jet'],
};

export const SIZE_WORDS: Record<SceneObject['size'], readonly string[]> = {
  small: ['small', 'little', 'tiny'],
  medium: ['medium'],
  large: ['large', 'big', 'huge'],
};

export const BIGGER_WORDS = ['bigger', 'larger'] as const;
export const SMALLER_WORDS = ['smaller'] as const;

/** sRGB fill of each object colour (before per-object colour noise). */
export const COLOR_RGB: Record<Color, readonly [number, number, number]> = {
  red: [215, 35, 35],
  green: [40, 165, 60],
  blue: [35, 75, 215],
  yellow: [240, 215, 40],
  purple: [135, 50, 175],
  orange: [245, 135, 25],
  white: [245, 245, 245],
  black: [20, 20, 20],
};

/** Muted backgrounds; a scene only uses one that contrasts with all of its objects (see MIN_CONTRAST). */
export const BACKGROUND_RGB: Record<string, readonly [number, number, number]> = {
  gray: [128, 128, 128],
  silver: [182, 182, 188],
  charcoal: [60, 62, 66],
  tan: [185, 165, 125],
  brown: [105, 78, 55],
};

/** minimum Euclidean RGB distance between an object's colour and the background */
export const MIN_CONTRAST = 95;

/** Scale of each size class, as a fraction of the image edge (about the shape's radius). */
export const SIZE_SCALE: Record<SceneObject['size'], number> = { small: 0.11, medium: 0.15, large: 0.2 };

/** Picks the canonical word with probability 1/2, otherwise one of the others uniformly. */
export function pickWord(words: readonly string[], next: () => number): string {
  if (words.length === 1 || next() < 0.5) return words[0];
  return words[1 + Math.floor(next() * (words.length - 1))];
}

export function shapeWords(shape: string): readonly string[] {
  return (SHAPE_WORDS as Record<string, readonly string[]>)[shape] ?? [shape];
}

export function colorWords(color: string): readonly string[] {
  return (COLOR_WORDS as Record<string, readonly string[]>)[color] ?? [color];
}
