#!/usr/bin/python3
"""Independent reference for CLIP's BPE tokenizer, used to produce test/fixtures/clip/tokenizer-ref.json.

Written from the published semantics of Hugging Face's CLIPTokenizerFast (the `tokenizer.json` that
transformers' CLIPConverter builds) and OpenAI's CLIP `simple_tokenizer.py`, not from Manyfold's TypeScript.

Pipeline (HF tokenizer.json semantics, which Manyfold matches):
  1. Normaliser: Unicode NFC, every run of whitespace -> one space, lower-case code point by code point (the
     `tokenizers` Lowercase normaliser maps each char on its own, so a final capital sigma becomes U+03C3, never
     the word-final U+03C2 that Python's str.lower() would choose from context).
  2. Added tokens: `<|startoftext|>` / `<|endoftext|>` written in the text are matched (after normalisation,
     since their `normalized` flag is true) and become their special ids, as in HF and in OpenAI's original.
  3. Pre-tokeniser: the pieces are the matches of
        's|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+
     (everything between matches is whitespace and dropped). `tokenizers` compiles this with Oniguruma, whose
     Unicode \\s is U+0009-U+000D, U+0085 and the Zs / Zl / Zp categories. Python's and JavaScript's \\s differ
     from that (Python's str.isspace adds U+001C-U+001F; JavaScript adds U+FEFF and drops U+0085), so the class
     is spelled out here.
  4. Byte level: each UTF-8 byte of a piece becomes its `bytes_to_unicode` character.
  5. BPE: the word's characters, the last one with "</w>" appended; repeatedly merge the adjacent pair of lowest
     merge rank (every occurrence, left to right) until no adjacent pair is a merge.
  6. Post-processor: <|startoftext|> + ids + <|endoftext|>; with a context length C the content is cut to C - 2
     ids, so EOT stays last (OpenAI's `tokenize(truncate=True)` gives the same ids).

How OpenAI's original differs (Manyfold does NOT do this): before step 1 it runs `ftfy.fix_text` (repairs
mojibake, and its own NFC) and `html.unescape` twice, then strips; so "&amp;" becomes "&" there but stays
"&amp;" in HF's fast tokenizer and here. It also lower-cases with str.lower() (context-sensitive final sigma)
and uses Python's \\s. For ordinary captions the two agree; HF's tokenizer.json is the target because HF
checkpoints are what users bring.

Unicode tables: Python's (here 14.0) and Node's ICU may classify a handful of recently assigned characters
differently (\\p{L}, NFC); the awkward-text list avoids characters assigned after Unicode 14.

Usage: /usr/bin/python3 test/reference/clip_tokenizer_ref.py --dir DIR [--out FILE] [--context-length 77]
  (DIR holds vocab.json, merges.txt and tokenizer.json, e.g. from `npx tsx test/reference/tiny-bpe.ts --out DIR`)
"""

import argparse
import hashlib
import json
import os
import sys
import unicodedata

import regex

# Oniguruma's Unicode \s
WS = "\\t\\n\\x0b\\x0c\\r\\x85\\p{Zs}\\p{Zl}\\p{Zp}"
WS_RUN = regex.compile("[" + WS + "]+")
PIECE = regex.compile("'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^" + WS + "\\p{L}\\p{N}]+")

SUFFIX = "</w>"

AWKWARD_TEXTS = [
    "a photo of a cat",
    "A Photo Of A CAT",
    "A DOG, a cat; and... a bird!?",
    "1234",
    "in 1984 there were 12 chairs",
    "3.14159 and -42 and 1,000,000",
    "don't",
    "it's",
    "we'll",
    "they're here, I've seen 'em, you'd know",
    "DON'T SHOUT, IT'S LOUD",
    "rock'n'roll's",
    "café",
    "naïve",
    "cafe\u0301 with a decomposed accent",
    "q\u0301 has no precomposed form",
    "CAFÉ AU LAIT",
    "ΟΔΟΣ and Σ alone",
    "İstanbul",
    "straße STRASSE",
    "supercalifragilisticexpialidocious",
    "pneumonoultramicroscopicsilicovolcanoconiosis antidisestablishmentarianism",
    "a   man \t riding\n\na   horse",
    "  leading and trailing spaces  ",
    "\t\n\r",
    "nbsp\u00a0between and ideographic\u3000space",
    "nel\u0085between",
    "bom\ufeffbetween and zwsp\u200bbetween",
    "unit\u001fseparator",
    "emoji 🐶🐱 and 👍🏽 and 👨‍👩‍👧",
    "日本語のキャプション",
    "一只猫坐在桌子上",
    "한국어 문장",
    "Ελληνικά και русский текст",
    "مرحبا بالعالم",
    "&amp; html &lt;entities&gt;",
    "e-mail: someone@example.com, url: https://example.com/a?b=c",
    "<|startoftext|>",
    "a <|endoftext|> injected end",
    "<|ENDOFTEXT|> upper case special",
    "<|endoftext|",
    "\u0000nul and \u0007bell",
    "",
    " ",
    "the the the the the the the the the the the the the the the the the the the the the the the the the the "
    "the the the the the the the the the the the the the the the the the the the the the the the the the the "
    "the the the the the the the the the the the the the the the the the the the the the the the the the the end",
    "a man riding a wave on top of a surfboard while a dog is running on the beach near the water and two people "
    "riding horses along the beach watch a surfer riding a large wave in the ocean at sunset with a boat floating "
    "on a calm lake and a bird sitting on a branch of a tree",
    "x" * 300,
]


def bytes_to_unicode():
    """GPT-2 / CLIP table: printable Latin-1 bytes stand for themselves, the others map to U+0100 upwards."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) + list(
        range(ord("\u00ae"), ord("\u00ff") + 1)
    )
    order = keep[:]
    chars = keep[:]
    extra = 0
    for b in range(256):
        if b not in keep:
            order.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(order, [chr(c) for c in chars]))


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class RefClipTokenizer:
    def __init__(self, vocab, merges, added, context_length):
        self.encoder = vocab
        self.ranks = {pair: i for i, pair in enumerate(merges)}
        self.byte_encoder = bytes_to_unicode()
        self.added = added  # content -> id
        self.sot = added["<|startoftext|>"]
        self.eot = added["<|endoftext|>"]
        self.context_length = context_length
        self.cache = {}

    @staticmethod
    def normalize(text):
        text = unicodedata.normalize("NFC", text)
        text = WS_RUN.sub(" ", text)
        return "".join(ch.lower() for ch in text)

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = list(token[:-1]) + [token[-1] + SUFFIX]
        while len(word) > 1:
            best = None
            for pair in zip(word, word[1:]):
                r = self.ranks.get(pair)
                if r is not None and (best is None or r < best[0]):
                    best = (r, pair)
            if best is None:
                break
            first, second = best[1]
            merged = []
            i = 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == first and word[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        self.cache[token] = word
        return word

    def split_added(self, text):
        """Leftmost-longest match of the added tokens; returns [(is_added, str)]."""
        out = []
        i = 0
        start = 0
        contents = sorted(self.added, key=len, reverse=True)
        while i < len(text):
            hit = next((c for c in contents if text.startswith(c, i)), None)
            if hit is None:
                i += 1
                continue
            if start < i:
                out.append((False, text[start:i]))
            out.append((True, hit))
            i += len(hit)
            start = i
        if start < len(text):
            out.append((False, text[start:]))
        return out

    def content_ids(self, text):
        ids = []
        for is_added, segment in self.split_added(self.normalize(text)):
            if is_added:
                ids.append(self.added[segment])
                continue
            for piece in PIECE.findall(segment):
                mapped = "".join(self.byte_encoder[b] for b in piece.encode("utf-8"))
                ids.extend(self.encoder[t] for t in self.bpe(mapped))
        return ids

    def encode(self, text):
        body = self.content_ids(text)[: self.context_length - 2]
        return [self.sot] + body + [self.eot]


def load(dirname):
    with open(os.path.join(dirname, "vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    with open(os.path.join(dirname, "merges.txt"), encoding="utf-8") as f:
        lines = f.read().split("\n")
    if not lines[0].startswith("#version"):
        raise SystemExit("merges.txt: first line must be the #version header")
    merges = [tuple(line.split(" ")) for line in lines[1:] if line]
    with open(os.path.join(dirname, "tokenizer.json"), encoding="utf-8") as f:
        tj = json.load(f)
    # the three files must describe one tokenizer
    if tj["model"]["vocab"] != vocab:
        raise SystemExit("tokenizer.json model.vocab differs from vocab.json")
    if [tuple(m.split(" ")) for m in tj["model"]["merges"]] != merges:
        raise SystemExit("tokenizer.json model.merges differs from merges.txt")
    for tok in tj["added_tokens"]:
        if not tok["normalized"]:
            raise SystemExit("this reference handles normalized added tokens only")
    added = {t["content"]: t["id"] for t in tj["added_tokens"]}
    return vocab, merges, added


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--out")
    ap.add_argument("--context-length", type=int, default=77)
    args = ap.parse_args()
    vocab, merges, added = load(args.dir)
    tok = RefClipTokenizer(vocab, merges, added, args.context_length)
    cases = [{"text": t, "ids": tok.encode(t), "untruncated": len(tok.content_ids(t)) + 2} for t in AWKWARD_TEXTS]
    out = {
        "generator": "test/reference/clip_tokenizer_ref.py",
        "semantics": "Hugging Face tokenizer.json (CLIPTokenizerFast); no ftfy / html unescape",
        "contextLength": args.context_length,
        "vocabSize": len(vocab),
        "sotId": tok.sot,
        "eotId": tok.eot,
        "sha256": {name: sha256(os.path.join(args.dir, name)) for name in ("vocab.json", "merges.txt", "tokenizer.json")},
        "cases": cases,
    }
    # one line per case keeps the fixture readable and its diffs small
    head = json.dumps({k: v for k, v in out.items() if k != "cases"}, ensure_ascii=True, indent=1)
    lines = ",\n".join("  " + json.dumps(c, ensure_ascii=True) for c in cases)
    text = head[:-2] + ',\n "cases": [\n' + lines + "\n ]\n}\n"
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
