import type { SearchTerm } from './api.ts';

/**
 * What is typed in "Describe it" as a term: rclip's weight prefix ("2:golden retriever" weighs double),
 * as `ris search --text` reads it; null for nothing but spaces.
 */
export function parseTerm(typed: string): SearchTerm | null {
  const match = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+)):(.+)$/s.exec(typed.trim());
  const weight = match ? Number(match[1]) : 1;
  const text = (match ? match[2]! : typed).trim();
  if (text === '' || weight === 0 || !Number.isFinite(weight)) return null;
  return { text, weight };
}

/** "+ golden retriever ×2", "− people". */
export function describeTerm(term: SearchTerm): string {
  const times = Math.abs(term.weight) === 1 ? '' : ` ×${Math.abs(term.weight)}`;
  return `${term.weight > 0 ? '+' : '−'} ${term.text}${times}`;
}

/** The words of a search: the chips, and what is still typed in the field as one more. */
export function queryTerms(chips: SearchTerm[], typed: string): SearchTerm[] {
  const last = parseTerm(typed);
  return last ? [...chips, last] : chips;
}

/** Sentences to try, from the collection's most common labels ("a photo of a leopard"). */
export function exampleSentences(labels: { label: string }[] | undefined): string[] {
  const names = (labels ?? [])
    .map((l) => l.label.replaceAll('_', ' ').trim())
    .filter((l) => l && !/^background/i.test(l))
    .slice(0, 2);
  return [...names.map((name) => `a photo of a ${name}`), 'a dog on a beach'];
}
