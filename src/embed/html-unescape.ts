import { DROPPED_NUMERIC, NAMED_REFERENCES_JSON, REPLACED_NUMERIC_JSON } from './html-entities.ts';

// Parsed on first use: most texts hold no '&' and never need the 2,231 names.
let tables: { named: Map<string, string>; replaced: Map<number, string>; dropped: Set<number> } | undefined;

function load() {
  tables ??= {
    named: new Map(Object.entries(JSON.parse(NAMED_REFERENCES_JSON) as Record<string, string>)),
    replaced: new Map(
      Object.entries(JSON.parse(REPLACED_NUMERIC_JSON) as Record<string, string>).map(([k, v]) => [
        Number(k),
        v,
      ]),
    ),
    dropped: new Set(DROPPED_NUMERIC),
  };
  return tables;
}

// A reference as HTML5's tokenizer sees one: numeric, or up to 32 name characters; ';' optional.
const REFERENCE = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/g;

/**
 * Replaces HTML character references (`&amp;`, `&eacute;`, `&#233;`, `&#xE9;`) with the characters they
 * stand for, by HTML5's rules as Python's `html.unescape` applies them: names from the WHATWG list (the
 * longest known prefix for legacy names written without ';'), numeric references past Unicode or in the
 * surrogate range become U+FFFD, Windows-1252's C1 range maps to its characters, control characters and
 * noncharacters are dropped, and anything else is left as written.
 */
export function unescapeHtml(text: string): string {
  if (!text.includes('&')) return text;
  const { named, replaced, dropped } = load();
  return text.replace(REFERENCE, (whole, body: string) => {
    if (body[0] === '#') {
      const hex = body[1] === 'x' || body[1] === 'X';
      const digits = body.slice(hex ? 2 : 1).replace(/;$/, '');
      // BigInt: a reference may have more digits than a double holds exactly.
      const value = BigInt(hex ? `0x${digits}` : digits);
      if (value > 0x10ffffn) return '\ufffd';
      const code = Number(value);
      const replacement = replaced.get(code);
      if (replacement !== undefined) return replacement;
      if (code >= 0xd800 && code <= 0xdfff) return '\ufffd';
      if (dropped.has(code)) return '';
      return String.fromCodePoint(code);
    }
    const exact = named.get(body);
    if (exact !== undefined) return exact;
    // Legacy names may end without ';' and run into the next word ("&copy2024"): longest known prefix.
    for (let end = body.length - 1; end > 1; end--) {
      const prefix = named.get(body.slice(0, end));
      if (prefix !== undefined) return prefix + body.slice(end);
    }
    return whole;
  });
}
