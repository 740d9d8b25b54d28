import type { SearchTerm } from '../api.ts';
import { describeTerm, parseTerm } from '../terms.ts';

/**
 * "Describe it": words to search by, alone or with the To search image. What is typed counts as one more
 * term when searching; + and − turn it into a chip (toward it, away from it), so several can be combined
 * ("2:golden retriever" weighs double). Enter searches.
 */
export function DescribeIt(props: {
  /** The collection's model has a text tower. */
  enabled: boolean;
  model: string | undefined;
  text: string;
  onText: (text: string) => void;
  terms: SearchTerm[];
  onTerms: (terms: SearchTerm[]) => void;
  onSearch: () => void;
  examples: string[];
}) {
  const { enabled, text, terms } = props;
  const add = (sign: 1 | -1) => {
    const term = parseTerm(text);
    if (!term) return;
    props.onTerms([...terms, { text: term.text, weight: sign * term.weight }]);
    props.onText('');
  };
  return (
    <div class="describe">
      <label id="describe-label" for="describe-text">
        <strong>Describe it</strong>
      </label>
      <div class="describe-row">
        <input
          id="describe-text"
          type="text"
          maxLength={1000}
          placeholder={enabled ? 'a dog on a beach' : 'this collection searches by image only'}
          aria-describedby="describe-hint"
          disabled={!enabled}
          value={text}
          onInput={(event) => props.onText(event.currentTarget.value)}
          onKeyDown={(event) => {
            if (event.key === 'Enter') {
              event.preventDefault();
              props.onSearch();
            }
          }}
        />
        <button type="button" disabled={!enabled || !parseTerm(text)} onClick={() => add(1)}>
          + Add
        </button>
        <button type="button" disabled={!enabled || !parseTerm(text)} onClick={() => add(-1)}>
          − Not
        </button>
      </div>
      {terms.length > 0 && (
        <ul class="chips" aria-label="Words of the query">
          {terms.map((term, i) => (
            <li key={`${i}:${term.text}`} class={term.weight > 0 ? 'chip plus' : 'chip minus'}>
              <span>{describeTerm(term)}</span>
              <button
                type="button"
                aria-label={`Remove ${describeTerm(term)}`}
                onClick={() => props.onTerms(terms.filter((_, j) => j !== i))}
              >
                ×
              </button>
            </li>
          ))}
        </ul>
      )}
      <p id="describe-hint" class="hint">
        {enabled ? (
          <>
            Words alone, or with the image. + adds a word to look for, − one to avoid; "2:words" weighs
            double. Try{' '}
            {props.examples.map((example, i) => (
              <span key={example}>
                {i > 0 && ', '}
                <button type="button" class="link-button" onClick={() => props.onText(example)}>
                  {example}
                </button>
              </span>
            ))}
            .
          </>
        ) : (
          `The model of this collection (${props.model ?? 'unknown'}) sees images only; index it with clip-vit-b32 to search by words.`
        )}
      </p>
    </div>
  );
}
