import { useState } from 'preact/hooks';

/** useState kept in localStorage, so the theme and the result settings survive a reload. */
export function useStoredState<T>(key: string, initial: T) {
  const [value, setValue] = useState<T>(() => {
    try {
      const stored = localStorage.getItem(key);
      return stored === null ? initial : (JSON.parse(stored) as T);
    } catch {
      return initial;
    }
  });
  // Stored at once, not in an effect: a reload right after a click must find it.
  const store = (next: T) => {
    setValue(next);
    try {
      localStorage.setItem(key, JSON.stringify(next));
    } catch {
      // Private windows may refuse storage; the setting then lasts for this page only.
    }
  };
  return [value, store] as const;
}
