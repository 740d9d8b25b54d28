import { readFileSync } from 'node:fs';
import { ArgumentError, describe, ModelError } from '../errors.ts';
import { unescapeHtml } from './html-unescape.ts';

const START = '<|startoftext|>';
const END = '<|endoftext|>';

/**
 * CLIP's tokenizer: OpenAI's byte-level BPE (`simple_tokenizer.py`) over the files of Hugging Face's
 * layout (`vocab.json`, `merges.txt`). `encode` gives the ids with the start and end tokens and no
 * padding; the text tower pads and cuts (see `TextTower`).
 *
 * Text is cleaned as OpenAI's tokenizer cleans it: the parts of ftfy's `fix_text` that are fixed rules
 * (control characters removed; curly quotes, Latin ligatures and full-width forms made plain; NFC),
 * HTML character references unescaped twice, whitespace collapsed, lower case. ftfy's mojibake repair
 * (guessing that UTF-8 was decoded as Windows-1252) is not reproduced: it is a heuristic for scraped
 * text, not for what a user types.
 */
export class ClipTokenizer {
  /** The id of `<|startoftext|>` (49406 in CLIP's vocabulary). */
  readonly startId: number;
  /** The id of `<|endoftext|>` (49407). */
  readonly endId: number;
  private readonly encoder: Map<string, number>;
  private readonly decoder: string[];
  private readonly ranks: Map<string, number>;
  /** Word → ids. Bounded: a server tokenizes whatever its users type. */
  private readonly cache = new Map<string, number[]>();

  private constructor(encoder: Map<string, number>, ranks: Map<string, number>, source: string) {
    this.encoder = encoder;
    this.ranks = ranks;
    const start = encoder.get(START);
    const end = encoder.get(END);
    if (start === undefined || end === undefined) {
      throw new ModelError(
        'INVALID_MODEL',
        `The vocabulary ${source} has no ${START} or ${END} token; use CLIP's vocab.json`,
      );
    }
    this.startId = start;
    this.endId = end;
    this.decoder = [];
    for (const [token, id] of encoder) this.decoder[id] = token;
  }

  /** Reads Hugging Face's `vocab.json` (token → id) and `merges.txt` (one merge a line, by rank). */
  static fromFiles(vocabJsonPath: string, mergesTxtPath: string): ClipTokenizer {
    const read = (path: string) => {
      try {
        return readFileSync(path, 'utf8');
      } catch (error) {
        throw new ModelError(
          'MODEL_NOT_FOUND',
          `Cannot read the tokenizer file ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); check the path`,
        );
      }
    };
    return ClipTokenizer.fromText(read(vocabJsonPath), read(mergesTxtPath), vocabJsonPath, mergesTxtPath);
  }

  /** The same from the files' contents. */
  static fromText(vocabJson: string, mergesTxt: string, vocabName = 'vocab.json', mergesName = 'merges.txt') {
    let vocab: unknown;
    try {
      vocab = JSON.parse(vocabJson);
    } catch (error) {
      throw new ModelError(
        'INVALID_MODEL',
        `The vocabulary ${vocabName} is not valid JSON (${(error as Error).message})`,
      );
    }
    if (typeof vocab !== 'object' || vocab === null || Array.isArray(vocab)) {
      throw new ModelError('INVALID_MODEL', `The vocabulary ${vocabName} is not an object of token → id`);
    }
    const encoder = new Map<string, number>();
    for (const [token, id] of Object.entries(vocab)) {
      if (!Number.isInteger(id) || (id as number) < 0) {
        throw new ModelError(
          'INVALID_MODEL',
          `The vocabulary ${vocabName} gives token ${JSON.stringify(token)} the id ${describe(id)}; ids are non-negative integers`,
        );
      }
      encoder.set(token, id as number);
    }
    const ranks = new Map<string, number>();
    for (const line of mergesTxt.split('\n')) {
      if (line.startsWith('#version') || line.trim() === '') continue;
      const pair = line.trim().split(' ');
      if (pair.length !== 2) {
        throw new ModelError(
          'INVALID_MODEL',
          `${mergesName} has a line that is not two symbols: ${JSON.stringify(line.slice(0, 40))}`,
        );
      }
      const key = `${pair[0]} ${pair[1]}`;
      if (!ranks.has(key)) ranks.set(key, ranks.size);
    }
    return new ClipTokenizer(encoder, ranks, vocabName);
  }

  /** The ids of `text`: start token, the text's tokens, end token. No padding, no length limit. */
  encode(text: string): Int32Array {
    if (typeof text !== 'string') {
      throw new ArgumentError(
        'INVALID_ARGUMENT',
        `Expected text to be a string but received ${describe(text)}`,
      );
    }
    const ids = [this.startId];
    for (const match of cleanText(text).matchAll(WORDS)) {
      const word = match[0];
      let wordIds = this.cache.get(word);
      if (!wordIds) {
        wordIds = this.bpe(word);
        if (this.cache.size >= 50_000) this.cache.clear();
        this.cache.set(word, wordIds);
      }
      for (const id of wordIds) ids.push(id);
    }
    ids.push(this.endId);
    return Int32Array.from(ids);
  }

  /** The text of `ids` (start and end tokens included as written), words separated by spaces. */
  decode(ids: ArrayLike<number>): string {
    let symbols = '';
    for (let i = 0; i < ids.length; i++) symbols += this.decoder[ids[i]!] ?? '';
    const bytes: number[] = [];
    for (const ch of symbols.replaceAll('</w>', ' ')) {
      const byte = UNICODE_TO_BYTE.get(ch);
      if (byte !== undefined) bytes.push(byte);
      else for (const b of Buffer.from(ch)) bytes.push(b);
    }
    return Buffer.from(bytes).toString('utf8').trim();
  }

  /** One word (a match of the word pattern) → its ids, by merging its bytes' symbols by rank. */
  private bpe(word: string): number[] {
    if (word === START || word === END) return [this.encoder.get(word)!];
    let symbols = Array.from(Buffer.from(word, 'utf8'), (b) => BYTE_TO_UNICODE[b]!);
    symbols[symbols.length - 1] += '</w>';
    while (symbols.length > 1) {
      let best = -1;
      let bestRank = Number.POSITIVE_INFINITY;
      for (let i = 0; i < symbols.length - 1; i++) {
        const rank = this.ranks.get(`${symbols[i]} ${symbols[i + 1]}`);
        if (rank !== undefined && rank < bestRank) {
          bestRank = rank;
          best = i;
        }
      }
      if (best < 0) break;
      // Merge every occurrence of the best pair, left to right, as OpenAI's loop does.
      const first = symbols[best]!;
      const second = symbols[best + 1]!;
      const merged: string[] = [];
      for (let i = 0; i < symbols.length; i++) {
        if (symbols[i] === first && symbols[i + 1] === second && i < symbols.length - 1) {
          merged.push(first + second);
          i++;
        } else merged.push(symbols[i]!);
      }
      symbols = merged;
    }
    return symbols.map((symbol) => {
      const id = this.encoder.get(symbol);
      if (id === undefined) {
        throw new ModelError(
          'INVALID_MODEL',
          `The vocabulary has no entry for the symbol ${JSON.stringify(symbol)}; vocab.json and merges.txt must come from the same model`,
        );
      }
      return id;
    });
  }
}

/**
 * OpenAI's word pattern: the special tokens, English contractions, runs of letters, single digits, runs
 * of anything else but whitespace. `\s` is spelled out as Unicode's White_Space, which is what Python's
 * `regex` module matches (JavaScript's also takes U+FEFF, removed before this as a control character).
 */
const WHITESPACE = '\\t-\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const WORDS = new RegExp(
  `<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|\\p{L}+|\\p{N}|[^${WHITESPACE}\\p{L}\\p{N}]+`,
  'gu',
);
const WHITESPACE_RUNS = new RegExp(`[${WHITESPACE}]+`, 'gu');

/** ftfy's fixed rules, then `basic_clean` and `whitespace_clean` of OpenAI's tokenizer, then lower case. */
export function cleanText(text: string): string {
  // In ftfy's order: ligatures and widths first (ŉ becomes ʼn, whose apostrophe is then uncurled).
  let out = text
    .replace(LIGATURES_PATTERN, (ch) => LIGATURES[ch]!)
    .replace(/[\u3000\uff01-\uffef]/g, (ch) => (ch === '\u3000' ? ' ' : ch.normalize('NFKC')))
    .replace(/[\u02bc\u2018-\u201b]/g, "'")
    .replace(/[\u201c-\u201f]/g, '"')
    .replace(CONTROL_CHARACTERS, '')
    .normalize('NFC');
  out = unescapeHtml(unescapeHtml(out)).trim();
  return out.replace(WHITESPACE_RUNS, ' ').trim().toLowerCase();
}

// ftfy's remove_control_chars: C0 controls but tab and line breaks, DEL, deprecated format characters,
// the byte-order mark, interlinear annotation characters.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is its purpose
const CONTROL_CHARACTERS = /[\x00-\x08\x0b\x0e-\x1f\x7f\u206a-\u206f\ufeff\ufff9-\ufffc]/g;

// ftfy's fix_latin_ligatures.
const LIGATURES: Record<string, string> = {
  Ĳ: 'IJ',
  ĳ: 'ij',
  ŉ: 'ʼn',
  Ǳ: 'DZ',
  ǲ: 'Dz',
  ǳ: 'dz',
  Ǆ: 'DŽ',
  ǅ: 'Dž',
  ǆ: 'dž',
  Ǉ: 'LJ',
  ǈ: 'Lj',
  ǉ: 'lj',
  Ǌ: 'NJ',
  ǋ: 'Nj',
  ǌ: 'nj',
  ﬀ: 'ff',
  ﬁ: 'fi',
  ﬂ: 'fl',
  ﬃ: 'ffi',
  ﬄ: 'ffl',
  ﬅ: 'ſt',
  ﬆ: 'st',
};
const LIGATURES_PATTERN = new RegExp(`[${Object.keys(LIGATURES).join('')}]`, 'g');

/**
 * GPT-2's reversible map from bytes to printable characters: printable Latin-1 bytes stand for
 * themselves, the rest (controls, space, soft hyphen) take the characters from U+0100 on, in byte order.
 */
const BYTE_TO_UNICODE: string[] = (() => {
  const map: string[] = [];
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    map[b] = String.fromCharCode(printable ? b : next++);
  }
  return map;
})();
const UNICODE_TO_BYTE = new Map(BYTE_TO_UNICODE.map((ch, b) => [ch, b]));
