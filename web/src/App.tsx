import { useCallback, useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import {
  ApiError,
  type CollectionEntry,
  type CollectionInfo,
  type CropBox,
  type ImageRef,
  listCollections,
  type SearchResponse,
  type SearchTerm,
  search,
} from './api.ts';
import { openingCollection } from './collection-choice.ts';
import { DescribeIt } from './components/DescribeIt.tsx';
import { Duplicates } from './components/Duplicates.tsx';
import { Examples } from './components/Examples.tsx';
import { Experiments } from './components/Experiments.tsx';
import { Explore } from './components/Explore.tsx';
import { Gallery } from './components/Gallery.tsx';
import { ImageDialog } from './components/ImageDialog.tsx';
import { ImagePane } from './components/ImagePane.tsx';
import { AccessNotice, LockedPage } from './components/LibraryAccess.tsx';
import { LibraryPanel } from './components/LibraryPanel.tsx';
import { LibraryUndo } from './components/LibraryUndo.tsx';
import { Results } from './components/Results.tsx';
import { SimilarityCutoff } from './components/SimilarityCutoff.tsx';
import { Tabs } from './components/Tabs.tsx';
import { UrlForm } from './components/UrlForm.tsx';
import { Webcam } from './components/Webcam.tsx';
import { kindOf, useCutoffs } from './cutoffs.ts';
import { DEFAULT_UPLOAD_LIMITS } from './library-api.ts';
import { type Activity, type StreamEvent, useActivity, useLibraryEvents } from './library-events.ts';
import {
  checkImageUrl,
  type Query,
  queryFromCollection,
  queryFromFile,
  queryFromUrl,
  searchInputFor,
} from './query.ts';
import { useRemovals } from './removals.ts';
import { useSession } from './session.ts';
import { useStoredState } from './stored-state.ts';
import { describeTerm, exampleSentences, queryTerms } from './terms.ts';
import { useUploads } from './uploads.ts';

/** The reference app shows 1–5 results; the setting raises the slider's end to 20. */
const USUAL_MAX_RESULTS = 5;
const LARGE_MAX_RESULTS = 20;
const URL_ERRORS = new Set([
  'URL_NOT_ALLOWED',
  'URL_FETCH_FAILED',
  'URL_TIMEOUT',
  'UPLOAD_TOO_LARGE',
  'UNSUPPORTED_IMAGE',
  'INVALID_ARGUMENT',
]);

const errorText = (error: unknown) => (error instanceof Error ? error.message : String(error));

function collectionFromAddress(): string | null {
  return new URLSearchParams(location.search).get('collection');
}

export function App() {
  const [theme, setTheme] = useStoredState<'dark' | 'light'>('ris.theme', 'dark');
  const [collections, setCollections] = useState<CollectionEntry[] | null>(null);
  const [collection, setCollection] = useState('');
  const [toSearch, setToSearch] = useState<Query | null>(null);
  const [lastSearched, setLastSearched] = useState<Query | null>(null);
  // "Describe it": what is typed, the + and − chips, and the words of the last search.
  const [describeText, setDescribeText] = useState('');
  const [chips, setChips] = useState<SearchTerm[]>([]);
  const [lastTerms, setLastTerms] = useState<SearchTerm[]>([]);
  const [webcamOn, setWebcamOn] = useState(false);
  const [tab, setTab] = useState<'examples' | 'url'>('examples');
  const [view, setView] = useState<'search' | 'library' | 'duplicates' | 'explore' | 'experiments'>('search');
  const [urlText, setUrlText] = useState('');
  const [urlError, setUrlError] = useState<string | null>(null);
  const [allowMore, setAllowMore] = useStoredState('ris.allowMoreResults', false);
  const [count, setCount] = useStoredState('ris.resultCount', 3);
  const [response, setResponse] = useState<{ k: number; body: SearchResponse; serial: number } | null>(null);
  const [searching, setSearching] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [enlarged, setEnlarged] = useState<ImageRef | null>(null);
  const pendingSearch = useRef<AbortController | null>(null);
  /** What the latest search asked for (it may still be on its way): a lower cutoff must ask again. */
  const lastAsked = useRef<{ collection: string; minSimilarity: number | null } | null>(null);
  // The library: what this page may do, the changes it makes, and what every page hears.
  const { access, notice, dismissNotice, tokenRefused } = useSession();
  const session = access.state === 'ready' ? access.session : null;
  const canWrite = session?.write ?? false;
  const [generations, setGenerations] = useState<Map<string, number>>(new Map());
  const [activity, hearActivity] = useActivity();
  /** The progress of the duplicates search each collection's Duplicates view waits for. */
  const [duplicateProgress, setDuplicateProgress] = useState<Map<string, Activity>>(new Map());
  const { scaleOf, cutoffFor, setCutoffFor } = useCutoffs(collections);

  const maxResults = allowMore ? LARGE_MAX_RESULTS : USUAL_MAX_RESULTS;
  const shownCount = Math.min(count, maxResults);
  const showError = useCallback((message: string) => setError(message), []);
  const current = collections?.find((c): c is CollectionInfo => c.name === collection && c.state === 'ready');
  const preparing = collections?.some((c) => c.state === 'preparing') ?? false;
  const removals = useRemovals({ onRefused: tokenRefused, onError: showError });
  const uploads = useUploads({ limits: session?.uploads ?? DEFAULT_UPLOAD_LIMITS, onRefused: tokenRefused });
  // The slider shows the scale of the last search's kind.
  const shownKind = kindOf(lastTerms);

  // Before the first paint, so a light page does not flash dark.
  useLayoutEffect(() => {
    document.documentElement.dataset.theme = theme;
  }, [theme]);

  useEffect(() => {
    if (access.state !== 'ready') return;
    listCollections()
      .then((list) => {
        setCollections(list);
        const { name, problem } = openingCollection(list, collectionFromAddress());
        setCollection(name);
        if (problem) showError(problem);
      })
      .catch((failure) => showError(`The collections could not be listed: ${errorText(failure)}`));
  }, [showError, access.state]);

  /** Lists the collections again (one made, deleted or changed here or elsewhere). */
  const refreshCollections = async () => {
    const list = await listCollections();
    setCollections(list);
    return list;
  };

  // What every open page hears: collections made or deleted, sizes changing, work in progress.
  useLibraryEvents(access.state === 'ready', (event: StreamEvent) => {
    if (event.type === 'connected' || event.type === 'collections')
      refreshCollections()
        .then((list) => {
          if (!collection || list.some((c) => c.name === collection)) return;
          // The collection shown was deleted (here or elsewhere): show another.
          const next = list.find((c) => c.state === 'ready')?.name ?? '';
          showError(`The collection ${collection} was deleted${next ? `; showing ${next} instead` : ''}.`);
          showCollection(next);
          setResponse(null);
        })
        .catch(() => undefined);
    else if (event.type === 'changed') {
      setCollections(
        (list) =>
          list?.map((c) =>
            c.name === event.collection && c.state === 'ready' ? { ...c, size: event.size } : c,
          ) ?? list,
      );
      setGenerations((now) => new Map(now).set(event.collection, event.generation));
    } else if (event.type === 'progress' && event.operation === 'duplicates') {
      setDuplicateProgress((now) => new Map(now).set(event.collection, event));
    } else if (event.type === 'progress') {
      uploads.onEvent(event);
      if (!uploads.isMine(event.id)) hearActivity(event);
    }
  });

  // While a dataset is being prepared, follow its progress; it becomes choosable once ready.
  useEffect(() => {
    if (!preparing) return;
    const timer = setInterval(() => {
      listCollections()
        .then((list) => {
          setCollections(list);
          setCollection((name) => name || (list.find((c) => c.state === 'ready')?.name ?? ''));
        })
        .catch(() => undefined);
    }, 2000);
    return () => clearInterval(timer);
  }, [preparing]);

  /**
   * Searches `target` with `query` and the words of "Describe it"; the results and Last searched change
   * only when it succeeds.
   */
  const runSearch = async (
    query: Query | null,
    target = collection,
    k = maxResults,
    cutoff?: number | null,
    terms = queryTerms(chips, describeText),
  ) => {
    const minSimilarity = cutoff === undefined ? cutoffFor(target, kindOf(terms)) : cutoff;
    if (!query && terms.length === 0) {
      showError(
        'Choose an image to search first (upload, drop or paste one, capture it, or pick an example), or describe what you look for.',
      );
      return;
    }
    const targetInfo = collections?.find(
      (c): c is CollectionInfo => c.name === target && c.state === 'ready',
    );
    if (terms.length > 0 && targetInfo && !targetInfo.searchByText) {
      showError(
        `The collection ${target} cannot be searched by words: its model (${targetInfo.model}) sees images only.`,
      );
      return;
    }
    pendingSearch.current?.abort();
    const controller = new AbortController();
    pendingSearch.current = controller;
    lastAsked.current = { collection: target, minSimilarity };
    setSearching(true);
    setError(null);
    try {
      const input = query && (await searchInputFor(query, target));
      const body = await search(target, input, {
        k,
        crop: query?.crop,
        minSimilarity: minSimilarity ?? undefined,
        terms,
        signal: controller.signal,
      });
      if (controller.signal.aborted) return;
      setResponse((previous) => ({ k, body, serial: (previous?.serial ?? 0) + 1 }));
      setLastSearched(query);
      setLastTerms(terms);
      if (body.truncatedTexts?.length)
        showError(
          `Only the first 77 tokens (about 60 words) of "${body.truncatedTexts[0]!.slice(0, 40)}…" were read.`,
        );
      // On a narrow screen the results are below the examples: bring them into view.
      const heading = document.getElementById('results-heading');
      if (
        matchMedia('(max-width: 900px)').matches &&
        heading &&
        heading.getBoundingClientRect().top > innerHeight
      )
        heading.scrollIntoView({ behavior: 'smooth', block: 'start' });
      if (query?.source.kind === 'url') setUrlError(null);
    } catch (failure) {
      if (controller.signal.aborted) return;
      const message = errorText(failure);
      showError(`The search failed: ${message}`);
      if (query?.source.kind === 'url' && failure instanceof ApiError && URL_ERRORS.has(failure.code)) {
        setUrlError(message);
        setTab('url');
      }
    } finally {
      if (pendingSearch.current === controller) setSearching(false);
    }
  };

  /** Shows `name` in the header, the address, the examples and the gallery. */
  const showCollection = (name: string) => {
    setCollection(name);
    const address = new URL(location.href);
    if (name) address.searchParams.set('collection', name);
    else address.searchParams.delete('collection');
    history.replaceState(null, '', address);
  };
  const chooseCollection = (name: string) => {
    showCollection(name);
    if (lastSearched || lastTerms.length > 0)
      void runSearch(lastSearched, name, maxResults, undefined, lastTerms);
    else setResponse(null);
  };

  /** A new cutoff: the results follow at once; a lower one than the last search had asks again. */
  const setCutoff = (value: number | null) => {
    setCutoffFor(collection, shownKind, value);
    const asked = lastAsked.current;
    if (
      (lastSearched || lastTerms.length > 0) &&
      asked?.collection === collection &&
      asked.minSimilarity !== null &&
      (value === null || value < asked.minSimilarity)
    )
      void runSearch(lastSearched, collection, response?.k ?? maxResults, value, lastTerms);
  };

  /** Every way into To search ends here: a new image there replaces the live camera. */
  const putQuery = (query: Query) => {
    setToSearch(query);
    setWebcamOn(false);
  };
  const putFile = (file: Blob, name: string) => putQuery(queryFromFile(file, name));
  /** An address typed, pasted or dropped: shown in the Image URL field, checked, then put in To search. */
  const putUrl = (text: string) => {
    setUrlText(text);
    const problem = checkImageUrl(text);
    setUrlError(problem);
    if (!problem) putQuery(queryFromUrl(text.trim()));
  };
  const searchWith = (image: ImageRef) => {
    const query = queryFromCollection(collection, image);
    putQuery(query);
    setEnlarged(null);
    void runSearch(query);
  };

  // Paste an image (or an image address) anywhere on the page, except into a text field.
  useEffect(() => {
    const onPaste = (event: ClipboardEvent) => {
      const data = event.clipboardData;
      const file = Array.from(data?.files ?? []).find((f) => f.type.startsWith('image/'));
      if (file) {
        event.preventDefault();
        putFile(file, file.name || 'pasted image');
        return;
      }
      const target = event.target as HTMLElement | null;
      if (target?.closest('input, textarea')) return;
      const text = data?.getData('text/plain').trim() ?? '';
      if (/^https?:\/\//i.test(text)) {
        event.preventDefault();
        putUrl(text);
      }
    };
    document.addEventListener('paste', onPaste);
    return () => document.removeEventListener('paste', onPaste);
  });

  // Object URLs of uploaded images are released once neither pane shows them.
  const objectUrls = useRef(new Set<string>());
  useEffect(() => {
    const inUse = new Set([toSearch?.previewUrl, lastSearched?.previewUrl]);
    for (const query of [toSearch, lastSearched])
      if (query?.source.kind === 'file') objectUrls.current.add(query.previewUrl);
    for (const url of objectUrls.current)
      if (!inUse.has(url)) {
        URL.revokeObjectURL(url);
        objectUrls.current.delete(url);
      }
  }, [toSearch, lastSearched]);

  const setCrop = (setter: typeof setToSearch) => (crop: CropBox | null) =>
    setter((query) => (query ? { ...query, crop } : query));

  return (
    <>
      <header class="topbar">
        <h1>
          ris <span class="muted">reverse image search</span>
        </h1>
        <div class="collection-picker">
          <label for="collection">
            <strong>Collection</strong>
          </label>
          <select
            id="collection"
            value={collection}
            disabled={!collections?.length}
            onChange={(event) => chooseCollection(event.currentTarget.value)}
          >
            {collections?.map((c) => (
              <option
                key={c.name}
                value={c.name}
                disabled={c.state !== 'ready'}
                title={c.state === 'broken' || c.state === 'failed' ? c.reason : undefined}
              >
                {c.state === 'ready'
                  ? c.name
                  : c.state === 'preparing'
                    ? `${c.name} (preparing: ${c.phase} ${c.percent}%)`
                    : `${c.name} (${c.state === 'broken' ? 'broken' : 'preparation failed'})`}
              </option>
            ))}
          </select>
          {current && (
            <span class="muted">
              {current.size.toLocaleString('en')} images · {current.model}
              {current.work && ` · ${current.work.message}`}
              {current.index?.outdated && ` · index outdated: ${current.index.outdated}`}
            </span>
          )}
        </div>
        <button
          type="button"
          class="theme-toggle"
          aria-pressed={theme === 'light'}
          onClick={() => setTheme(theme === 'dark' ? 'light' : 'dark')}
        >
          Light theme
        </button>
      </header>
      <AccessNotice notice={notice} onDismiss={dismissNotice} />

      {access.state === 'locked' && (
        <main>
          <LockedPage />
        </main>
      )}
      <main hidden={access.state !== 'ready'}>
        <Tabs
          label="Views"
          selected={view}
          onSelect={setView}
          tabs={[
            {
              id: 'search',
              title: 'Search',
              panel: (
                <>
                  <div class="layout">
                    <section class="column" aria-labelledby="query-heading">
                      <h2 id="query-heading">Image to search</h2>
                      <p class="hint">
                        Upload, drop or paste an image, capture one, or pick an example. Crop to search part
                        of it{current?.searchByText ? ', or describe what you look for in words' : ''}.
                      </p>
                      <div class="panes">
                        <ImagePane
                          title="To search"
                          query={toSearch}
                          onCropChange={setCrop(setToSearch)}
                          onFile={putFile}
                          onUrl={putUrl}
                          emptyText="Drop, paste or click to upload an image"
                          live={
                            webcamOn ? (
                              <Webcam
                                onCapture={(frame) => putFile(frame, 'webcam capture')}
                                onError={(message) => {
                                  setWebcamOn(false);
                                  showError(message);
                                }}
                              />
                            ) : undefined
                          }
                        />
                        <ImagePane
                          title="Last searched"
                          query={lastSearched}
                          onCropChange={setCrop(setLastSearched)}
                          emptyText="The image of the last search shows here."
                        />
                      </div>
                      {lastTerms.length > 0 && (
                        <p class="last-words">
                          <strong>Last searched words:</strong> {lastTerms.map(describeTerm).join(', ')}
                        </p>
                      )}
                      <DescribeIt
                        enabled={current?.searchByText ?? false}
                        model={current?.model}
                        text={describeText}
                        onText={setDescribeText}
                        terms={chips}
                        onTerms={setChips}
                        onSearch={() => runSearch(toSearch)}
                        examples={exampleSentences(current?.labels)}
                      />
                      <div class="copy-buttons">
                        <button type="button" disabled={!toSearch} onClick={() => setLastSearched(toSearch)}>
                          Copy To search → Last searched
                        </button>
                        <button
                          type="button"
                          disabled={!lastSearched}
                          onClick={() => setToSearch(lastSearched)}
                        >
                          Copy Last searched → To search
                        </button>
                      </div>
                      <label class="switch">
                        <input
                          type="checkbox"
                          role="switch"
                          aria-checked={webcamOn}
                          checked={webcamOn}
                          onChange={(event) => setWebcamOn(event.currentTarget.checked)}
                        />
                        <strong>Use webcam</strong>
                      </label>
                      <button
                        type="button"
                        class="primary search-button"
                        disabled={!collection}
                        aria-busy={searching}
                        onClick={() => runSearch(toSearch)}
                      >
                        {searching ? 'Searching…' : 'Search'}
                      </button>
                      {error && (
                        <div class="error-banner" role="alert">
                          <p>{error}</p>
                          <button type="button" onClick={() => setError(null)}>
                            Dismiss
                          </button>
                        </div>
                      )}

                      <Tabs
                        label="Ways to choose an image"
                        selected={tab}
                        onSelect={setTab}
                        tabs={[
                          {
                            id: 'examples',
                            title: 'Examples',
                            panel: collection && (
                              <Examples
                                key={collection}
                                collection={collection}
                                onPick={(image) => putQuery(queryFromCollection(collection, image))}
                                onError={showError}
                              />
                            ),
                          },
                          {
                            id: 'url',
                            title: 'Image URL',
                            panel: (
                              <UrlForm text={urlText} error={urlError} onText={setUrlText} onUse={putUrl} />
                            ),
                          },
                        ]}
                      />
                    </section>

                    <section class="column" aria-labelledby="results-heading">
                      <h2 id="results-heading">Similar images</h2>
                      <div class="result-settings">
                        <label for="result-count">
                          <strong>Number of results</strong>
                        </label>
                        <input
                          id="result-count"
                          type="range"
                          min={1}
                          max={maxResults}
                          value={shownCount}
                          onInput={(event) => {
                            const wanted = Number(event.currentTarget.value);
                            setCount(wanted);
                            // More results than the last search asked for: ask again, up to the slider's end.
                            if (response && (lastSearched || lastTerms.length > 0) && wanted > response.k)
                              void runSearch(
                                lastSearched,
                                response.body.collection,
                                maxResults,
                                undefined,
                                lastTerms,
                              );
                          }}
                        />
                        <output for="result-count">{shownCount}</output>
                        <label class="inline-check">
                          <input
                            type="checkbox"
                            checked={allowMore}
                            onChange={(event) => setAllowMore(event.currentTarget.checked)}
                          />
                          Allow up to {LARGE_MAX_RESULTS} results
                        </label>
                        {current && (
                          <SimilarityCutoff
                            scale={scaleOf(collection, shownKind)}
                            value={cutoffFor(collection, shownKind)}
                            onChange={setCutoff}
                          />
                        )}
                      </div>
                      <Results
                        response={response?.body ?? null}
                        serial={response?.serial ?? 0}
                        count={shownCount}
                        loading={searching}
                        minSimilarity={response ? cutoffFor(response.body.collection, shownKind) : null}
                        onEnlarge={setEnlarged}
                        onSearch={searchWith}
                        onRemove={
                          canWrite && response
                            ? (hit) => removals.remove(response.body.collection, hit)
                            : undefined
                        }
                        isRemoved={(id) => !!response && removals.isRemoved(response.body.collection, id)}
                      />
                    </section>
                  </div>

                  <section class="gallery" aria-labelledby="gallery-heading">
                    <h2 id="gallery-heading">Gallery</h2>
                    {current && (
                      <Gallery
                        key={collection}
                        collection={collection}
                        total={current.size}
                        generation={generations.get(collection)}
                        onEnlarge={setEnlarged}
                        onError={showError}
                        onRemove={canWrite ? (image) => removals.remove(collection, image) : undefined}
                        isRemoved={(id) => removals.isRemoved(collection, id)}
                        removalsSent={() => removals.sentTo(collection)}
                      />
                    )}
                  </section>
                </>
              ),
            },
            {
              id: 'library',
              title: 'Library',
              panel: session && collections && (
                <LibraryPanel
                  session={session}
                  collections={collections}
                  collection={collection}
                  activity={activity}
                  uploads={uploads}
                  onChoose={chooseCollection}
                  onRefused={tokenRefused}
                  onCreated={(name) =>
                    void refreshCollections()
                      .then(() => chooseCollection(name))
                      .catch((failure) => showError(errorText(failure)))
                  }
                  onDeleted={(name) =>
                    void refreshCollections()
                      .then((list) => {
                        if (name !== collection) return;
                        showCollection(list.find((c) => c.state === 'ready')?.name ?? '');
                        setResponse(null);
                      })
                      .catch((failure) => showError(errorText(failure)))
                  }
                />
              ),
            },
            {
              id: 'duplicates',
              title: 'Duplicates',
              // Finding the groups costs the server seconds on a large collection: only when asked.
              panel: view === 'duplicates' && current && (
                <Duplicates
                  key={collection}
                  collection={collection}
                  scale={scaleOf(collection, 'image')}
                  generation={generations.get(collection)}
                  progress={duplicateProgress.get(collection)}
                  removals={removals}
                  canWrite={canWrite}
                />
              ),
            },
            {
              id: 'explore',
              title: 'Explore',
              panel: view === 'explore' && collection && (
                <Explore
                  key={collection}
                  collection={collection}
                  query={lastSearched}
                  onEnlarge={setEnlarged}
                />
              ),
            },
            {
              id: 'experiments',
              title: 'Experiments',
              panel: view === 'experiments' && collection && (
                <Experiments key={collection} collection={collection} onError={showError} />
              ),
            },
          ]}
        />
      </main>

      <ImageDialog image={enlarged} onClose={() => setEnlarged(null)} onSearch={searchWith} />
      <LibraryUndo removals={removals} />
    </>
  );
}
