import { useEffect, useState } from 'preact/hooks';
import {
  createCollection,
  type IndexChoice,
  isTokenRefused,
  listModels,
  type ModelChoice,
} from '../library-api.ts';

/** As the server names collections (src/collection/home.ts): a folder name, a URL segment, a key. */
const NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/i;

const INDEXES: { value: IndexChoice; name: string; about: string }[] = [
  {
    value: 'auto',
    name: 'Automatic',
    about: 'Exact search below 2,048 images, then HNSW; IVF-RaBitQ past a million.',
  },
  { value: 'flat', name: 'Exact (flat)', about: 'Every image compared: best recall, slow when large.' },
  { value: 'hnsw', name: 'HNSW', about: 'A graph: fast, with high recall; takes more memory.' },
  {
    value: 'ivf-pq',
    name: 'IVF-PQ',
    about: 'Compressed codes with a float16 copy in memory (exact search below 256 images).',
  },
  {
    value: 'ivf-rabitq',
    name: 'IVF-RaBitQ',
    about: 'A fifth of HNSW’s memory: 1-bit codes, full vectors read from disk to re-rank.',
  },
];

interface LibraryCreateProps {
  existing: string[];
  onCreated: (name: string) => void;
  onRefused: () => void;
}

/** Makes an empty collection: a name, the model that embeds its images, the index that searches them. */
export function LibraryCreate({ existing, onCreated, onRefused }: LibraryCreateProps) {
  const [models, setModels] = useState<ModelChoice[] | null>(null);
  const [name, setName] = useState('');
  const [model, setModel] = useState('');
  const [index, setIndex] = useState<IndexChoice>('auto');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    listModels()
      .then((list) => {
        setModels(list);
        setModel((list.find((m) => m.default) ?? list[0])?.name ?? '');
      })
      .catch((failure: Error) => setError(`The models could not be listed: ${failure.message}`));
  }, []);

  const submit = async (event: Event) => {
    event.preventDefault();
    const wanted = name.trim();
    if (!NAME.test(wanted))
      return setError(
        "Use letters, digits, '.', '_' or '-' (at most 64, starting with a letter or digit) for the name.",
      );
    if (existing.includes(wanted))
      return setError(`There is a collection "${wanted}" already: add images to it, or choose another name.`);
    setBusy(true);
    setError(null);
    try {
      await createCollection({ name: wanted, model: model || undefined, index });
      setName('');
      onCreated(wanted);
    } catch (failure) {
      if (isTokenRefused(failure)) onRefused();
      else setError((failure as Error).message);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="library-create" onSubmit={submit} aria-labelledby="create-heading" noValidate>
      <h3 id="create-heading">New collection</h3>
      <div class="field">
        <label for="new-collection-name">Name</label>
        <input
          id="new-collection-name"
          type="text"
          value={name}
          maxLength={64}
          autoComplete="off"
          spellcheck={false}
          aria-describedby="new-collection-name-hint"
          aria-invalid={error !== null && !NAME.test(name.trim())}
          onInput={(event) => setName(event.currentTarget.value)}
        />
        <span id="new-collection-name-hint" class="hint">
          Letters, digits, '.', '_' or '-'
        </span>
      </div>
      <div class="field">
        <label for="new-collection-model">Model</label>
        <select
          id="new-collection-model"
          value={model}
          disabled={!models}
          onChange={(event) => setModel(event.currentTarget.value)}
        >
          {models?.map((m) => (
            <option key={m.name} value={m.name}>
              {m.default ? `${m.label} (default)` : m.label}
            </option>
          ))}
        </select>
      </div>
      <div class="field">
        <label for="new-collection-index">Index</label>
        <select
          id="new-collection-index"
          value={index}
          aria-describedby="new-collection-index-hint"
          onChange={(event) => setIndex(event.currentTarget.value as IndexChoice)}
        >
          {INDEXES.map((choice) => (
            <option key={choice.value} value={choice.value}>
              {choice.name}
            </option>
          ))}
        </select>
        <span id="new-collection-index-hint" class="hint">
          {INDEXES.find((choice) => choice.value === index)?.about}
        </span>
      </div>
      {error && (
        <p class="field-error" role="alert">
          {error}
        </p>
      )}
      <button type="submit" class="primary" disabled={busy || !models} aria-busy={busy}>
        {busy ? 'Creating…' : 'Create collection'}
      </button>
    </form>
  );
}
