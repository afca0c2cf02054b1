import { describe, it, expect, beforeAll } from 'vitest';
import { attackByName, WordNetSynonymSwap } from '../../src/attacks/index.js';
import { labelLexicon, labelPreserving } from '../../src/attacks/constraints/labels.js';
import { scenesLabelWords } from '../../src/data/scenes/lexicon.js';
import { COLOR_WORDS, SHAPE_WORDS } from '../../src/data/scenes/vocab.js';
import { textLabelLexicon } from '../../src/eval/text-labels.js';
import { splitWords, wordsOf } from '../../src/attacks/util/words.js';
import { Rng } from '../../src/util/rng.js';
import { fixture } from './helpers.js';
import { useCpu } from './setup.js';

beforeAll(useCpu);

const scenes = labelLexicon('scenes', scenesLabelWords());
const state = (words: string[]) => ({ original: words, current: words, modified: new Set<number>() });

describe('label lexicon', () => {
  it('labels every scenes colour and shape word, plurals and any case', () => {
    for (const [color, words] of Object.entries(COLOR_WORDS)) for (const w of words) expect(scenes.labelOf(w)).toBe(`color:${color}`);
    for (const [shape, words] of Object.entries(SHAPE_WORDS)) for (const w of words) expect(scenes.labelOf(w)).toBe(`shape:${shape}`);
    expect(scenes.labelOf('Disks')).toBe('shape:circle');
    expect(scenes.labelOf('boxes')).toBe('shape:square');
    expect(scenes.labelOf('JET')).toBe('color:black');
    expect(scenes.labelOf('under')).toBe('position:below');
    expect(scenes.labelOf('fleeceable')).toBeUndefined();
  });

  it('refuses a word with two labels', () => {
    expect(() => labelLexicon('bad', { 'color:green': ['green', 'jet'], 'color:black': ['jet'] })).toThrow(/'jet' has two labels/);
  });
});

describe('label-preserving constraint', () => {
  const c = labelPreserving(scenes);
  const allows = (words: string[], i: number, cand: string) => c.allows!(state(words), i, cand);

  it('forbids a substitute that names another label, allows synonyms and words outside the vocabulary', () => {
    const words = ['a', 'green', 'disk', 'left', 'of', 'a', 'box'];
    expect(allows(words, 1, 'jet')).toBe(false); // green -> black
    expect(allows(words, 1, 'emerald')).toBe(true); // same colour
    expect(allows(words, 1, 'fleeceable')).toBe(true); // removes the colour, does not contradict it
    expect(allows(words, 2, 'platter')).toBe(true);
    expect(allows(words, 2, 'square')).toBe(false); // circle -> square
    expect(allows(words, 3, 'right')).toBe(false);
    expect(allows(words, 6, 'blocks')).toBe(true); // plural of the same shape
    // a word outside the vocabulary may not become one inside it
    expect(allows(['three', 'shapes'], 1, 'circle')).toBe(false);
  });

  it('WordNet offers contradicting substitutes for scenes words, and the constraint removes exactly those', async () => {
    const swap = new WordNetSynonymSwap({ maxCandidates: 50 });
    const green = await swap.candidates(['green'], 0, new Rng(0));
    expect(green).toContain('jet'); // WordNet lists "jet" among green's lemmas; in scenes it is a black
    const kept = green.filter((w) => allows(['green'], 0, w));
    expect(kept).not.toContain('jet');
    expect(green.filter((w) => !kept.includes(w))).toEqual(green.filter((w) => scenes.labelOf(w) !== undefined && scenes.labelOf(w) !== 'color:green'));
  });

  it('textLabelLexicon: none is the paper protocol (no lexicon), scenes the closed vocabulary; unknown names fail', () => {
    expect(textLabelLexicon('none')).toBeUndefined();
    expect(textLabelLexicon(undefined)).toBeUndefined();
    expect(textLabelLexicon('scenes')!.labelOf('crimson')).toBe('color:red');
    expect(() => textLabelLexicon('coco' as never)).toThrow(/unknown text label lexicon 'coco'/);
  });
});

describe('text attacks with a label lexicon', () => {
  const f = fixture({ nImages: 6 });
  const env = { encoder: f.encoder, tokenizer: f.tokenizer };
  const batch = { images: f.images, size: f.size, captions: f.captions, captionToImage: f.captionToImage };

  for (const name of ['text', 'coattack', 'sga'] as const) {
    it(`${name}: no adversarial caption swaps a word for another label, and the config names the lexicon`, async () => {
      const free = await attackByName(name, { seed: 3 }).run(batch, env);
      const attack = attackByName(name, { seed: 3, labels: scenes });
      expect(attack.config.labels).toBe('scenes');
      expect(attackByName(name, { seed: 3 }).config.labels).toBeNull();
      const r = await attack.run(batch, env);
      let changed = 0;
      r.captions!.texts.forEach((adv, i) => {
        const before = wordsOf(splitWords(f.captions[i]));
        const after = wordsOf(splitWords(adv));
        expect(after.length).toBe(before.length);
        after.forEach((w, k) => {
          if (w === before[k]) return;
          changed++;
          const to = scenes.labelOf(w);
          if (to !== undefined) expect(to).toBe(scenes.labelOf(before[k]));
        });
      });
      expect(changed).toBeGreaterThan(0); // the constraint narrows the search, it does not switch it off
      // a lexicon that gives every word its own label forbids every substitution: nothing may change
      const everyWordItsOwnLabel = { name: 'identity', labelOf: (w: string) => w.toLowerCase() };
      const none = await attackByName(name, { seed: 3, labels: everyWordItsOwnLabel }).run(batch, env);
      expect(none.captions!.texts).toEqual(f.captions);
      expect(free.captions!.wordsChanged.reduce((x, y) => x + y, 0)).toBeGreaterThan(0);
    });
  }
});
