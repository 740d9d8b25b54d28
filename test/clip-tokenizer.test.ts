import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cleanText } from '../src/embed/clip-tokenizer.ts';
import { unescapeHtml } from '../src/embed/html-unescape.ts';
import { ClipTokenizer, ModelError } from '../src/index.ts';
import { TINY_WORDS, tinyTokenizerFiles } from './fixtures/tiny-clip.ts';
import { sharedData } from './helpers.ts';

const clipDir = join(sharedData, 'clip');
const noClipFiles = existsSync(join(clipDir, 'vocab.json'))
  ? false
  : 'needs ../shared/data/clip/vocab.json and merges.txt (CLIP tokenizer files; development checkout only)';
const ids = (t: ClipTokenizer, text: string) => Array.from(t.encode(text));

describe("CLIP's tokenizer with the real vocabulary", { skip: noClipFiles }, () => {
  let clip: ClipTokenizer;
  before(() => {
    clip = ClipTokenizer.fromFiles(join(clipDir, 'vocab.json'), join(clipDir, 'merges.txt'));
  });

  it('gives the published ids', () => {
    assert.deepEqual(ids(clip, 'a photo of a cat'), [49406, 320, 1125, 539, 320, 2368, 49407]);
    assert.deepEqual(ids(clip, 'a photo of a dog'), [49406, 320, 1125, 539, 320, 1929, 49407]);
    assert.deepEqual(ids(clip, 'Hello World'), [49406, 3306, 1002, 49407]);
    assert.deepEqual(ids(clip, 'How are you doing?'), [49406, 829, 631, 592, 1960, 286, 49407]);
    assert.equal(clip.startId, 49406);
    assert.equal(clip.endId, 49407);
  });

  it('splits words into several tokens where the vocabulary has no whole word, and decodes back', () => {
    const long = ids(clip, 'supercalifragilistic');
    assert.ok(long.length > 4, `several tokens: ${long}`);
    assert.equal(clip.decode(long), '<|startoftext|>supercalifragilistic <|endoftext|>');
  });

  it('cleans as OpenAI does: entities, NFC, whitespace, case, curly quotes', () => {
    const same = (a: string, b: string) => assert.deepEqual(ids(clip, a), ids(clip, b), `${a} ≡ ${b}`);
    same('cats &amp; dogs', 'cats & dogs');
    same('&amp;lt;3', '<3'); // unescaped twice, as basic_clean does
    same('cafe\u0301', 'caf\u00e9'); // decomposed é composes (NFC)
    same('  a\t photo\n\nof  a\u00a0cat ', 'a photo of a cat');
    same('A PHOTO Of A CAT', 'a photo of a cat');
    same('the dog\u2019s ball', "the dog's ball"); // ftfy uncurls quotes, so 's is one token
    same('\ufb01sh', 'fish'); // ftfy's Latin ligatures
    same('\uff28\uff45\uff4c\uff4c\uff4f', 'hello'); // full-width forms
    same('a\u0000 cat\u200b', 'a cat\u200b'); // control characters removed (U+200B is not one)
    assert.deepEqual(ids(clip, "dog's"), [49406, 1929, 568, 49407]);
    assert.deepEqual(ids(clip, ''), [49406, 49407]);
    assert.deepEqual(ids(clip, '   \n '), [49406, 49407]);
  });

  it('keeps digits one by one and punctuation runs together, as the word pattern says', () => {
    assert.equal(ids(clip, '2024').length, 2 + 4);
    assert.equal(clip.decode(ids(clip, '...!?')), '<|startoftext|>...!? <|endoftext|>');
  });

  it('gives every token of a long text, with no limit (the text tower cuts to 77)', () => {
    const text = Array.from({ length: 120 }, () => 'cat').join(' ');
    const out = ids(clip, text);
    assert.equal(out.length, 122);
    assert.equal(out.at(-1), 49407);
  });
});

describe('CLIP tokenizer rules (tiny vocabulary, no shared files needed)', () => {
  let dir: string;
  let tiny: ClipTokenizer;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ris-tokenizer-'));
    const files = tinyTokenizerFiles();
    await writeFile(join(dir, 'vocab.json'), files.vocab);
    await writeFile(join(dir, 'merges.txt'), files.merges);
    tiny = ClipTokenizer.fromFiles(join(dir, 'vocab.json'), join(dir, 'merges.txt'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('merges each word of the vocabulary into one token, and bytes otherwise', () => {
    for (const word of TINY_WORDS) assert.equal(tiny.encode(word).length, 3, word);
    // "zebra" has no merges: one symbol per byte, the last marked as the word's end.
    assert.equal(tiny.encode('zebra').length, 2 + 5);
    assert.equal(tiny.decode(tiny.encode('a red zebra')), '<|startoftext|>a red zebra <|endoftext|>');
    // Bytes of any script survive the round trip.
    assert.equal(tiny.decode(tiny.encode('żółw 🐢')), '<|startoftext|>żółw 🐢 <|endoftext|>');
  });

  it('returns an Int32Array with the start and end ids', () => {
    const out = tiny.encode('red');
    assert.ok(out instanceof Int32Array);
    assert.equal(out[0], tiny.startId);
    assert.equal(out.at(-1), tiny.endId);
  });

  it('refuses files that are not a CLIP vocabulary, naming the file', async () => {
    await writeFile(join(dir, 'bad.json'), '{"a": 1');
    assert.throws(
      () => ClipTokenizer.fromFiles(join(dir, 'bad.json'), join(dir, 'merges.txt')),
      (e: unknown) =>
        e instanceof ModelError &&
        e.code === 'INVALID_MODEL' &&
        /bad\.json is not valid JSON/.test(e.message),
    );
    await writeFile(join(dir, 'nostart.json'), '{"a": 1}');
    assert.throws(
      () => ClipTokenizer.fromFiles(join(dir, 'nostart.json'), join(dir, 'merges.txt')),
      /no <\|startoftext\|> or <\|endoftext\|> token/,
    );
    assert.throws(
      () => ClipTokenizer.fromFiles(join(dir, 'missing.json'), join(dir, 'merges.txt')),
      (e: unknown) =>
        e instanceof ModelError && e.code === 'MODEL_NOT_FOUND' && /missing\.json \(ENOENT\)/.test(e.message),
    );
    assert.throws(
      () => tiny.encode(42 as unknown as string),
      /Expected text to be a string but received number 42/,
    );
  });
});

describe('HTML unescaping', () => {
  it("matches Python's html.unescape, invalid and legacy references included", () => {
    // Expected values printed by Python 3.11's html.unescape.
    const cases: [string, string][] = [
      ['cats &amp; dogs', 'cats & dogs'],
      ['&amp;lt;b&amp;gt;', '&lt;b&gt;'],
      ['caf&eacute;', 'caf\u00e9'],
      ['&#233;t&#xE9;', '\u00e9t\u00e9'],
      ['&copy2024', '\u00a92024'],
      ['&notit; &notin;', '\u00acit; \u2209'],
      ['&#0;&#13;&#128;&#x9F;', '\ufffd\r\u20ac\u0178'],
      ['&#xD800;&#1114112;&#99999999999999999999;', '\ufffd\ufffd\ufffd'],
      ['&#1;&#x7f;&#xFDD0;', ''],
      ['AT&T &unknown; &', 'AT&T &unknown; &'],
      ['&AMP &amp &lt3', '& & <3'],
      ['&NotNestedGreaterGreater;', '\u2aa2\u0338'],
      ['&#X41;&#x1F600;', 'A\ud83d\ude00'],
    ];
    for (const [input, expected] of cases) assert.equal(unescapeHtml(input), expected, input);
  });

  it('cleans text in the order of OpenAI and ftfy', () => {
    assert.equal(cleanText('  Caf&amp;eacute;  AU   LAIT '), 'café au lait');
    assert.equal(cleanText('\u0149'), "'n"); // ligature first, then its apostrophe uncurled
  });
});
