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
    </form>
  );
}
