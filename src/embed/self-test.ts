import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { arch, hostname, platform } from 'node:os';
import { basename } from 'node:path';
import * as ort from 'onnxruntime-node';
import { ModelError } from '../errors.ts';
import type { ClipTokenizer } from './clip-tokenizer.ts';
import type { ModelConfig, SelfTestSpec } from './config.ts';
import { fillTensor, prepareImage } from './image.ts';
import type { ResolvedModel } from './resolve-model.ts';

/** What the self-test needs of an embedder. */
export interface SelfTestSubject {
  readonly config: ModelConfig;
  readonly tokenizer: ClipTokenizer | undefined;
  embed(image: string): Promise<Float32Array>;
  embedTexts(texts: readonly string[]): Promise<{ vectors: Float32Array }>;
}

/** Each part of the self-test, checked apart so a failure names what differs. */
export interface SelfTestReport {
  passed: boolean;
  tokenizer: { passed: boolean; found: number[][] };
  /** Mean absolute difference of the input tensor's block means from the reference's. */
  preprocessing: { passed: boolean; difference: number };
  /** softmax(100 · cos) over the texts. */
  probabilities: { passed: boolean; found: number[] };
}

/** Runs OpenAI's example through the model: the tokens, the image's input tensor, and the answer. */
export async function runSelfTest(
  subject: SelfTestSubject,
  spec: SelfTestSpec,
  image: string,
): Promise<SelfTestReport> {
  if (!subject.tokenizer) throw new Error('the self-test needs a model with a text tower');
  const tokenizer = subject.tokenizer;
  const found = spec.texts.map((text) => Array.from(tokenizer.encode(text)));
  const tokensPassed = found.every((ids, i) => ids.join(' ') === spec.tokens[i]?.join(' '));

  const config = subject.config;
  const prepared = await prepareImage(image, config);
  const tensor = new Float32Array(3 * config.input.size ** 2);
  fillTensor(prepared, config, tensor, 0);
  const means = blockMeans(tensor, config.input.size, spec.preprocessing.grid);
  let difference = 0;
  for (const [i, mean] of means.entries()) difference += Math.abs(mean - (spec.preprocessing.means[i] ?? 0));
  difference /= means.length;

  const imageVector = await subject.embed(image);
  const { vectors } = await subject.embedTexts(spec.texts);
  const d = imageVector.length;
  const logits = spec.texts.map((_, t) => {
    let dot = 0;
    for (let j = 0; j < d; j++) dot += imageVector[j]! * vectors[t * d + j]!;
    return 100 * dot;
  });
  const probabilities = softmax(logits);
  const probabilitiesPassed = probabilities.every(
    (p, i) => Math.abs(p - (spec.probabilities[i] ?? 0)) <= spec.tolerance,
  );
  const preprocessingPassed = difference <= spec.preprocessing.tolerance;
  return {
    passed: tokensPassed && preprocessingPassed && probabilitiesPassed,
    tokenizer: { passed: tokensPassed, found },
    preprocessing: { passed: preprocessingPassed, difference },
    probabilities: { passed: probabilitiesPassed, found: probabilities },
  };
}

/** The refusal of a model that failed its self-test, naming each part that differs. */
export function selfTestError(model: string, spec: SelfTestSpec, report: SelfTestReport): ModelError {
  const parts: string[] = [];
  if (!report.tokenizer.passed) {
    const i = report.tokenizer.found.findIndex((ids, k) => ids.join(' ') !== spec.tokens[k]?.join(' '));
    parts.push(
      `the tokenizer differs ("${spec.texts[i]}" gives ${report.tokenizer.found[i]?.join(' ')}, expected ${spec.tokens[i]?.join(' ')})`,
    );
  }
  if (!report.preprocessing.passed) {
    parts.push(
      `the preprocessing differs (the image's input tensor is ${report.preprocessing.difference.toFixed(3)} from Pillow's on average, at most ${spec.preprocessing.tolerance} allowed)`,
    );
  }
  if (!report.probabilities.passed) {
    const answer = `softmax(100·cos) ${report.probabilities.found.map((p) => p.toFixed(4)).join(', ')} instead of ${spec.probabilities.join(', ')} ±${spec.tolerance}`;
    parts.push(
      report.tokenizer.passed && report.preprocessing.passed
        ? `the model's answer differs (${answer}) though its tokens and input are right: onnxruntime computes this model differently on this machine`
        : `so the answer differs (${answer})`,
    );
  }
  return new ModelError(
    'INVALID_MODEL',
    `${model} failed its self-test on OpenAI's example (${basename(spec.image.fileName)} with ${spec.texts.map((t) => `"${t}"`).join(', ')}): ${parts.join('; ')}. ` +
      'ris refuses to embed with it rather than fill a collection with wrong vectors; please report this with the line above',
  );
}

/**
 * What a passed self-test vouches for: the files (by checksum), the config, the code that tokenizes and
 * preprocesses (ris's version), onnxruntime's version, and this machine. Any change runs the test again.
 */
export function selfTestKey(resolved: ResolvedModel): string {
  return createHash('sha256')
    .update(
      JSON.stringify({
        ris: RIS_VERSION,
        onnxruntime: ort.env.versions.node ?? ort.env.versions.common,
        machine: [hostname(), platform(), arch()],
        model: resolved.sha256,
        text: resolved.text && [resolved.text.sha256, resolved.text.tokenizerSha256],
        config: resolved.config,
      }),
    )
    .digest('hex');
}

/** Whether the record beside the model says the test passed for exactly these files on this machine. */
export async function selfTestPassed(resolved: ResolvedModel): Promise<boolean> {
  if (!resolved.selfTest) return true;
  try {
    const record = JSON.parse(await readFile(resolved.selfTest.record, 'utf8')) as { key?: unknown };
    return record.key === selfTestKey(resolved);
  } catch {
    return false; // no record, or a damaged one: run the test again
  }
}

/** Writes the record of a passed test (whole or not at all: temp file, fsync, rename). */
export async function recordSelfTest(resolved: ResolvedModel, report: SelfTestReport): Promise<void> {
  const target = resolved.selfTest!.record;
  const temp = `${target}.${process.pid}.tmp`;
  const body = {
    key: selfTestKey(resolved),
    passedAt: new Date().toISOString(),
    host: hostname(),
    probabilities: report.probabilities.found,
    preprocessingDifference: report.preprocessing.difference,
  };
  const file = await open(temp, 'w');
  try {
    await file.writeFile(`${JSON.stringify(body, null, 2)}\n`);
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(temp, target).catch(async (error) => {
    await rm(temp, { force: true });
    throw error;
  });
}

/** Means of a [3, side, side] tensor over grid × grid blocks, channel by channel. */
export function blockMeans(tensor: Float32Array, side: number, grid: number): number[] {
  const out: number[] = [];
  for (let c = 0; c < 3; c++) {
    for (let by = 0; by < grid; by++) {
      for (let bx = 0; bx < grid; bx++) {
        const y0 = Math.floor((by * side) / grid);
        const y1 = Math.floor(((by + 1) * side) / grid);
        const x0 = Math.floor((bx * side) / grid);
        const x1 = Math.floor(((bx + 1) * side) / grid);
        let sum = 0;
        for (let y = y0; y < y1; y++)
          for (let x = x0; x < x1; x++) sum += tensor[c * side * side + y * side + x]!;
        out.push(sum / ((y1 - y0) * (x1 - x0)));
      }
    }
  }
  return out;
}

export function softmax(logits: number[]): number[] {
  const top = Math.max(...logits);
  const exps = logits.map((l) => Math.exp(l - top));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

const RIS_VERSION = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
