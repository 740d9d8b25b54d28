/** Public images to try, as the reference app offered: a Caltech101 class and a VOC2012 one. */
const EXAMPLE_URLS = [
  {
    label: 'a sunflower (Wikimedia Commons)',
    url: 'https://upload.wikimedia.org/wikipedia/commons/4/40/Sunflower_sky_backdrop.jpg',
  },
  {
    label: 'a cat (Wikimedia Commons)',
    url: 'https://upload.wikimedia.org/wikipedia/commons/3/3a/Cat03.jpg',
  },
];

interface UrlFormProps {
  text: string;
  error: string | null;
  onText: (text: string) => void;
  /** Puts the address in To search (after a first check of its form). */
  onUse: (text: string) => void;
}

/** The Image URL field: the server fetches the address when searching, and its refusal shows here. */
export function UrlForm({ text, error, onText, onUse }: UrlFormProps) {
  return (
    <form
      class="url-form"
      onSubmit={(event) => {
        event.preventDefault();
        onUse(text);
      }}
    >
      <label for="image-url">
        <strong>Image URL</strong>
      </label>
      <div class="url-row">
        <input
          id="image-url"
          type="url"
          inputMode="url"
          placeholder="https://example.com/picture.jpg"
          value={text}
          aria-invalid={error ? true : undefined}
          aria-describedby={error ? 'image-url-error' : undefined}
          onInput={(event) => onText(event.currentTarget.value)}
        />
        <button type="submit">Use this URL</button>
      </div>
      {error && (
        <p id="image-url-error" class="field-error">
          {error}
        </p>
      )}
      <p class="hint">A public address of an image; the server fetches it when you search.</p>
      <p class="hint">
        Try{' '}
        {EXAMPLE_URLS.map((example, i) => (
          <span key={example.url}>
            {i > 0 && ' or '}
            <button type="button" class="link-button" onClick={() => onUse(example.url)}>
              {example.label}
            </button>
          </span>
        ))}
        .
      </p>
    </form>
  );
}
