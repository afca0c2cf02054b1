declare module 'wordpos' {
  interface WordPOSResult {
    synsetOffset: number;
    pos: string;
    lemma: string;
    synonyms: string[];
    lexName?: string;
    gloss?: string;
  }
  class WordPOS {
    constructor(options?: { stopwords?: boolean | string[]; profile?: boolean; dictPath?: string });
    lookup(word: string): Promise<WordPOSResult[]>;
    lookupNoun(word: string): Promise<WordPOSResult[]>;
    lookupVerb(word: string): Promise<WordPOSResult[]>;
    lookupAdjective(word: string): Promise<WordPOSResult[]>;
    lookupAdverb(word: string): Promise<WordPOSResult[]>;
  }
  export default WordPOS;
}
