import { readFileSync } from 'node:fs';
import cac from 'cac';
import { INDEX_KIND_SETTINGS } from '../collection/manifest.ts';
import { parseByteSize } from '../collection/memory-plan.ts';
import { ArgumentError, describe, RisError } from '../errors.ts';
import { collectionsCommand } from './collections-command.ts';
import * as commands from './commands.ts';
import * as storeCommands from './store-commands.ts';

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

// A reader that stops reading (`ris collections | head -1`) ends the command quietly, as Unix tools do.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

/** A whole-number option, checked before any work: "Expected --port to be … but received …". */
function int(value: unknown, flag: string, min: number, max: number): number;
function int(value: unknown, flag: string, min: number, max: number, optional: true): number | undefined;
function int(value: unknown, flag: string, min: number, max: number, optional = false): number | undefined {
  if (value === undefined && optional) return undefined;
  const number = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (typeof number !== 'number' || !Number.isInteger(number) || number < min || number > max) {
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `Expected ${flag} to be a whole number from ${min} to ${max} but received ${describe(value)}`,
    );
  }
  return number;
}

/** A number option in [min, max], checked before any work. */
function number(value: unknown, flag: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const parsed = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (typeof parsed !== 'number' || !(parsed >= min && parsed <= max))
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `Expected ${flag} to be a number from ${min} to ${max} but received ${describe(value)}`,
    );
  return parsed;
}

function list(value: unknown): string[] | undefined {
  if (value === undefined) return undefined;
  return String(value)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** An option given any number of times (cac gives one value, or an array when repeated). */
function repeated(value: unknown): string[] {
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : [value]).map(String);
}

const INDEX_KINDS = INDEX_KIND_SETTINGS;

function indexKind(value: unknown): (typeof INDEX_KINDS)[number] {
  if (!(INDEX_KINDS as readonly unknown[]).includes(value))
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `Expected --index to be one of ${INDEX_KINDS.join(', ')} but received ${describe(value)}`,
    );
  return value as (typeof INDEX_KINDS)[number];
}

const storeOf = (options: { store?: unknown }) =>
  options.store === undefined ? undefined : String(options.store);

const cli = cac('ris');
cli.usage(
  '<command> [options]\n\n  Reverse image search: index an image collection, then search it by image.\n  Collections live in $RIS_HOME (default ~/.local/share/ris).',
);

cli
  .command(
    'index <source>',
    'Embed and index a folder of images, or the caltech101 / voc2012 dataset, as a collection',
  )
  .option('--collection <name>', 'Collection to create or resume (required)')
  .option(
    '--model <model>',
    'resnet50 (default), resnet50-int8, mobilenetv2-int8, or a path to an .onnx file with its .json config',
  )
  .option(
    '--index <kind>',
    'auto (default: exact search below 2,048 images, HNSW up to 1,000,000, IVF-RaBitQ above), flat, hnsw, ivf-pq or ivf-rabitq',
  )
  .option(
    '--memory-budget <size>',
    'With --index auto: the memory the index may hold (2GB, 512MiB): the kind that fits the collection, re-chosen as it grows',
  )
  .option('--partitions <n>', 'IVF partitions, IVF-PQ or IVF-RaBitQ (default about √n at each training)')
  .option('--sub-vectors <m>', 'PQ sub-vectors per vector (default dimension / 32, with exact re-ranking)')
  .option(
    '--projection <file>',
    'A projection learned from labels (ris experiment --preset models writes one), applied before indexing',
  )
  .option('--from <dir>', 'For a dataset: use an existing copy of its images instead of downloading')
  .option(
    '--dir <dir>',
    'For a dataset: where to download it (default $RIS_DATASETS_DIR or $RIS_HOME/datasets)',
  )
  .option('--enqueue', 'With a postgres:// store: only queue the images, for ris worker to embed')
  .option('--images-url <url>', 'With a postgres:// store: an http(s) base URL the images are also read from')
  .example('ris index ~/Pictures --collection photos')
  .example('ris index caltech101 --collection caltech101 --model mobilenetv2-int8')
  .example('ris index caltech101 --collection caltech101 --from ./101_ObjectCategories')
  .action(
    async (
      source: string,
      options: {
        collection?: string;
        model?: string;
        index?: string;
        memoryBudget?: unknown;
        partitions?: unknown;
        subVectors?: unknown;
        from?: string;
        dir?: string;
        store?: string;
        projection?: string;
        enqueue?: boolean;
        imagesUrl?: string;
      },
    ) => {
      if (!options.collection)
        throw new ArgumentError(
          'INVALID_ARGUMENT',
          'ris index needs --collection NAME (the collection to create or resume)',
        );
      const kind = indexKind(options.index ?? 'auto');
      if ((kind === 'flat' || kind === 'hnsw') && (options.partitions ?? options.subVectors) !== undefined)
        throw new ArgumentError(
          'INVALID_ARGUMENT',
          `--partitions and --sub-vectors set an IVF-PQ index; leave them out with --index ${kind}, or use --index ivf-pq`,
        );
      if (kind === 'ivf-rabitq' && options.subVectors !== undefined)
        throw new ArgumentError(
          'INVALID_ARGUMENT',
          '--sub-vectors sets an IVF-PQ index; IVF-RaBitQ keeps one bit per dimension (leave it out)',
        );
      if (options.memoryBudget !== undefined && kind !== 'auto')
        throw new ArgumentError(
          'INVALID_ARGUMENT',
          `--memory-budget chooses the index kind itself; leave out --index ${kind}, or use --index auto`,
        );
      const imagesUrl = options.imagesUrl === undefined ? undefined : String(options.imagesUrl);
      await storeCommands.indexInStore(
        String(source),
        {
          store: storeOf(options),
          collection: String(options.collection),
          model: options.model,
          // Only as typed: an existing collection is told when it keeps other settings.
          index: options.index === undefined ? undefined : (kind as (typeof INDEX_KINDS)[number]),
          memoryBudget:
            options.memoryBudget === undefined ? undefined : parseByteSize(String(options.memoryBudget)),
          partitions: int(options.partitions, '--partitions', 1, 1 << 20, true),
          subVectors: int(options.subVectors, '--sub-vectors', 1, 65536, true),
          from: options.from,
          dir: options.dir,
          projection: options.projection === undefined ? undefined : String(options.projection),
        },
        { enqueue: options.enqueue, imagesUrl },
        commands.indexCommand,
      );
    },
  );

cli
  .command(
    'add <collection> <...paths>',
    'Embed and add images or folders to a collection, without retraining (labels: first folder below the root)',
  )
  .option('--labels <labels>', 'Comma-separated labels for every added image, instead of the folder rule')
  .example('ris add photos ~/Pictures/new/*.jpg')
  .example('ris add photos ~/Pictures/cats --labels cat,pet')
  .action((name: string, paths: string[], options: { labels?: string; store?: string }) =>
    commands.addCommand(String(name), paths.map(String), {
      labels: list(options.labels),
      store: storeOf(options),
    }),
  );

cli
  .command('remove <collection> <...targets>', 'Remove images by id or by path')
  .example('ris remove photos 17 42 ~/Pictures/old.jpg')
  .action((name: string, targets: string[], options: { store?: string }) =>
    commands.removeCommand(String(name), targets.map(String), { store: storeOf(options) }),
  );

cli
  .command('retrain <collection>', 'Rebuild the index from every stored vector (after many additions)')
  .example('ris retrain photos')
  .action((name: string, options: { store?: string }) =>
    commands.retrainCommand(String(name), { store: storeOf(options) }),
  );

cli
  .command(
    'rescan <collection>',
    'Bring a collection in line with its folder: add new files, embed changed ones again, remove gone ones, follow moves',
  )
  .example('ris rescan photos')
  .action((name: string, options: { store?: string }) =>
    commands.rescanCommand(String(name), { store: storeOf(options) }),
  );

cli
  .command(
    'search <collection> [image]',
    'Find the images most like an image file or an http(s) URL, words (--text, CLIP collections), or both',
  )
  .option('-k <k>', 'Number of results (1 to 1000)', { default: 5 })
  .option('--text <words>', 'Search by words (repeatable; "2:golden retriever" weighs them double)')
  .option('--not <words>', 'Search away from words (repeatable; weights as --text)')
  .option('--crop <box>', 'Search with a crop of the image: x,y,width,height in pixels')
  .option(
    '--nprobes <n>',
    'IVF-PQ and IVF-RaBitQ collections: partitions to visit (more: better recall, slower; default 16, IVF-RaBitQ 1.2·√partitions past 177)',
  )
  .option(
    '--ef-search <n>',
    'HNSW collections: breadth of the search (more: better recall, slower; default 64)',
  )
  .option(
    '--min-similarity <s>',
    'Answer only images at least this similar (-1 to 1; ImageNet models: unrelated photos score about 0.3–0.5)',
  )
  .option('--json', 'Print the results as JSON')
  .example('ris search photos cat.jpg -k 10')
  .example('ris search caltech101 https://example.com/plane.jpg --crop 0,0,400,300 --json')
  .example('ris search photos --text "a dog on a beach"')
  .example('ris search photos pool.jpg --text "2:golden retriever" --not people')
  .action(
    (
      name: string,
      image: string | undefined,
      options: {
        k: unknown;
        crop?: string;
        nprobes?: unknown;
        efSearch?: unknown;
        minSimilarity?: unknown;
        json?: boolean;
        store?: string;
        text?: unknown;
        not?: unknown;
      },
    ) =>
      commands.searchCommand(String(name), image === undefined ? undefined : String(image), {
        text: repeated(options.text),
        not: repeated(options.not),
        store: storeOf(options),
        k: int(options.k, '-k', 1, 1000),
        crop: options.crop === undefined ? undefined : String(options.crop),
        nprobes: int(options.nprobes, '--nprobes', 1, 1 << 20, true),
        efSearch: int(options.efSearch, '--ef-search', 1, 1 << 20, true),
        minSimilarity: number(options.minSimilarity, '--min-similarity', -1, 1),
        json: options.json,
      }),
  );

cli
  .command(
    'duplicates <collection>',
    'Find copies of one picture (resized, cropped, mirrored, re-encoded, lighter or darker, grayscale) and the one to keep of each',
  )
  .option(
    '--threshold <similarity>',
    "Embedding similarity from which pixels are compared (default: the model's own)",
  )
  .option(
    '--neighbours <n>',
    'Nearest neighbours compared per image (default 8; more finds copies among many look-alikes, slower)',
  )
  .option('--json', 'Print only the groups as JSON')
  .example('ris duplicates photos')
  .example('ris duplicates photos --threshold 0.8 --json')
  .action(
    async (
      name: string,
      options: { threshold?: unknown; neighbours?: unknown; json?: boolean; store?: string },
    ) => {
      const { duplicatesCommand } = await import('./duplicates.ts');
      await duplicatesCommand(String(name), {
        threshold: number(options.threshold, '--threshold', -1, 1),
        neighbours: int(options.neighbours, '--neighbours', 1, 100, true),
        json: options.json,
        store: storeOf(options),
      });
    },
  );

cli
  .command(
    'collections [action] [name]',
    'List collections, show one (info NAME), repair one (repair NAME), delete one (delete NAME), or copy one to PostgreSQL (copy NAME --to postgres://…)',
  )
  .example('ris collections')
  .example('ris collections info caltech101')
  .example('ris collections repair caltech101')
  .example('ris collections create holiday --model mobilenetv2-int8')
  .example('ris collections delete old-photos')
  .example('ris collections copy photos --to postgres://ris@db.internal/ris')
  .option('--to <store>', 'For copy: the postgres:// database to copy the collection into')
  .option('--images-url <url>', 'For copy: an http(s) base URL the images are also read from')
  .option('--model <model>', 'For create: the model (default resnet50)')
  .option('--index <kind>', 'For create: auto (default), flat, hnsw, ivf-pq or ivf-rabitq')
  .option('--folder <dir>', 'For create: a folder the collection follows (ris rescan, ris serve --watch)')
  .action(
    (
      action: string | undefined,
      name: string | undefined,
      options: {
        store?: string;
        to?: string;
        imagesUrl?: string;
        model?: string;
        index?: string;
        folder?: string;
      },
    ) =>
      collectionsCommand(action, name === undefined ? undefined : String(name), {
        store: storeOf(options),
        to: options.to === undefined ? undefined : String(options.to),
        imagesUrl: options.imagesUrl === undefined ? undefined : String(options.imagesUrl),
        model: options.model === undefined ? undefined : String(options.model),
        index: options.index === undefined ? undefined : indexKind(options.index),
        folder: options.folder === undefined ? undefined : String(options.folder),
      }),
  );

cli
  .command('datasets <action> <dataset>', 'Download a dataset: ris datasets download caltech101|voc2012|all')
  .option('--dir <dir>', 'Where to put it (default $RIS_DATASETS_DIR or $RIS_HOME/datasets)')
  .example('ris datasets download caltech101')
  .action((action: string, dataset: string, options: { dir?: string }) => {
    if (action !== 'download')
      throw new ArgumentError(
        'INVALID_ARGUMENT',
        `Unknown action "${action}"; use ris datasets download caltech101|voc2012|all`,
      );
    return commands.datasetsDownloadCommand(String(dataset), options);
  });

cli
  .command(
    'start',
    'Prepare the caltech101 collection if there is none, serve the web page, and prepare voc2012 meanwhile (npm start)',
  )
  .option('--from <dir>', 'An existing copy of Caltech101 (101_ObjectCategories) instead of downloading')
  .option('--model <model>', 'Model for new collections (default resnet50)')
  .option('--datasets <names>', 'Datasets to prepare: caltech101,voc2012 (default both)')
  .option('--port <port>', 'Port of the web page', { default: 7860 })
  .option('--host <host>', 'Address to listen on', { default: '127.0.0.1' })
  .example('ris start')
  .example('ris start --from ./101_ObjectCategories --model mobilenetv2-int8 --datasets caltech101')
  .action(
    (options: {
      from?: string;
      model?: string;
      datasets?: string;
      port: unknown;
      host: string;
      store?: string;
    }) =>
      commands.startCommand({
        store: storeOf(options),
        from: options.from,
        model: options.model,
        datasets: list(options.datasets),
        port: int(options.port, '--port', 0, 65535),
        host: String(options.host),
      }),
  );

cli
  .command('serve', 'Serve the web page and the HTTP API over the collections')
  .option('--port <port>', 'Port', { default: 7860 })
  .option('--host <host>', 'Address to listen on (0.0.0.0: every interface)', { default: '127.0.0.1' })
  .option(
    '--collections <names>',
    'Comma-separated collections to serve, the first one shown first (default: all)',
  )
  .option('--max-upload-mb <mb>', 'Largest search image or fetched image, in MB', { default: 20 })
  .option('--max-upload-files <n>', 'Files one upload to a collection may send', { default: 100 })
  .option('--max-upload-request-mb <mb>', 'Bytes one upload to a collection may send, in MB', {
    default: 200,
  })
  .option(
    '--token-file <file>',
    'The write token every change needs (else $RIS_TOKEN, else one made and kept in $RIS_HOME/server-token)',
  )
  .option('--read-token', 'Searching and viewing need a token too ($RIS_READ_TOKEN, else one made and kept)')
  .option(
    '--allowed-host <names>',
    "Host names to answer to besides this machine's addresses (a proxy's or a LAN name; name or name:port)",
  )
  .option(
    '--watch',
    "Follow the folders of the served collections (each one's own folder): changes are searchable within seconds",
  )
  .option(
    '--sweep-minutes <n>',
    'With --watch: minutes between full rescans, which catch what watching misses (network drives); 0: none (default 10)',
  )
  .example('ris serve')
  .example('ris serve --watch')
  .example('ris serve --port 8080 --collections caltech101,photos')
  .example('ris serve --host 0.0.0.0 --allowed-host photos.lan:7860')
  .action(
    (options: {
      port: unknown;
      host: string;
      collections?: string;
      maxUploadMb: unknown;
      maxUploadFiles: unknown;
      maxUploadRequestMb: unknown;
      tokenFile?: string;
      readToken?: boolean;
      allowedHost?: string | string[];
      watch?: boolean;
      sweepMinutes?: unknown;
      store?: string;
    }) => {
      if (options.sweepMinutes !== undefined && !options.watch)
        throw new ArgumentError('INVALID_ARGUMENT', '--sweep-minutes goes with --watch');
      return commands.serveCommand({
        watch: Boolean(options.watch),
        sweepMinutes: int(options.sweepMinutes, '--sweep-minutes', 0, 10_080, true),
        storeLocation: storeOf(options),
        port: int(options.port, '--port', 0, 65535),
        host: String(options.host),
        collections: list(options.collections),
        maxUploadBytes: int(options.maxUploadMb, '--max-upload-mb', 1, 10_000) * 1e6,
        maxUploadFiles: int(options.maxUploadFiles, '--max-upload-files', 1, 100_000),
        maxUploadRequestBytes: int(options.maxUploadRequestMb, '--max-upload-request-mb', 1, 100_000) * 1e6,
        tokenFile: options.tokenFile === undefined ? undefined : String(options.tokenFile),
        readToken: Boolean(options.readToken),
        allowedHosts: [options.allowedHost ?? []].flat().flatMap((v) => list(v) ?? []),
      });
    },
  );

cli
  .command(
    'watch <...collections>',
    'Follow the folders of collections without a server: new, changed, deleted and moved images are taken in as they settle (Ctrl-C stops)',
  )
  .option(
    '--sweep-minutes <n>',
    'Minutes between full rescans, which catch what watching misses (network drives); 0: none',
    { default: 10 },
  )
  .example('ris watch photos')
  .example('ris watch photos holiday --sweep-minutes 60')
  .action(async (names: string[], options: { sweepMinutes: unknown; store?: string }) => {
    const sweepMinutes = int(options.sweepMinutes, '--sweep-minutes', 0, 10_080);
    const { watchCommand } = await import('./watch.ts');
    await watchCommand(names.map(String), { store: storeOf(options), sweepMinutes });
  });

cli
  .command(
    'experiment [collection]',
    'Measure index types, parameters and models on a collection or a .fvecs file (the reference notebooks): report.md, results.json and plots',
  )
  .option(
    '--preset <preset>',
    'seed (default: the notebook table), sweep (parameter curves), models, runtime',
  )
  .option(
    '--vectors <file>',
    'Instead of a collection: a .fvecs file, or synthetic:N[xD] for seeded clustered vectors',
  )
  .option('--queries-file <file>', 'With --vectors: queries in their own .fvecs (else some are held out)')
  .option('--labels <file>', 'With --vectors: one label per line (same-label P@5)')
  .option('--query-labels <file>', 'With --queries-file: one label per query')
  .option('--images <dir>', 'For --preset models without a collection: images in one sub-folder per label')
  .option('--queries <n>', 'Queries held out of the database (default 1000)')
  .option('--seed <n>', 'Seed of every split, sample and k-means (default 1)')
  .option('--out <dir>', 'Report folder (default <collection>/experiments/<time>, or ./experiments/<time>)')
  .option('--json', 'Print results.json on stdout instead of the summary')
  .option(
    '--models <list>',
    'For --preset models: comma-separated built-in names or .onnx paths (default: those in the cache)',
  )
  .option('--split <split>', 'For --preset models: leave-one-out (default) or held-out')
  .option('--per-label <n>', 'For --preset models: at most n images per label (seeded)')
  .option('--limit <n>', 'For --preset models: at most n images in all (seeded)')
  .option('--distance-type <type>', 'l2 (default, as the notebook), cosine or dot')
  .option('--pca <d>', 'PCA output dimension of the seed preset (default 128)')
  .option('--threads <n>', 'onnxruntime threads for --preset models (default: every core)')
  .example('ris experiment caltech101')
  .example('ris experiment caltech101 --preset sweep --queries 500')
  .example('ris experiment --vectors base.fvecs --labels labels.txt --out ./report')
  .example('ris experiment --vectors synthetic:1000000x128 --preset runtime')
  .example(
    'ris experiment --preset models --images ./101_ObjectCategories --per-label 20 --models mobilenetv2-int8',
  )
  .action(
    async (collection: string | undefined, options: import('./experiment.ts').ExperimentCommandOptions) => {
      // Loaded on use: the plotting libraries would slow every other command's start.
      const { experimentCommand } = await import('./experiment.ts');
      await experimentCommand(collection, options);
    },
  );

cli
  .command(
    'worker',
    'Embed and store the images queued by ris index --enqueue (PostgreSQL store), until stopped',
  )
  .option('--collections <names>', 'Comma-separated collections to work for (default: all)')
  .option('--model <model>', 'Work only for collections of this model (others are refused: MODEL_MISMATCH)')
  .option('--batch <n>', 'Images claimed at once (default 32)')
  .option(
    '--lease <seconds>',
    'How long a claim holds without a heartbeat before another worker takes it over (default 120)',
  )
  .option('--threads <n>', 'onnxruntime threads (default: every core)')
  .option('--until-done', 'Stop once the queue is empty instead of waiting for more work')
  .example('ris worker --store postgres://ris@db.internal/ris')
  .example('ris worker --collections photos --model mobilenetv2-int8 --until-done')
  .action(
    (options: {
      store?: string;
      collections?: string;
      model?: string;
      batch?: unknown;
      lease?: unknown;
      threads?: unknown;
      untilDone?: boolean;
    }) =>
      storeCommands.workerCommand({
        store: storeOf(options),
        collections: list(options.collections),
        model: options.model === undefined ? undefined : String(options.model),
        batchSize: int(options.batch, '--batch', 1, 4096, true),
        leaseSeconds: int(options.lease, '--lease', 1, 86_400, true),
        threads: int(options.threads, '--threads', 1, 1024, true),
        untilDone: options.untilDone,
      }),
  );

cli
  .command('migrate', 'Create or upgrade the schema of a postgres:// store (also done on first use)')
  .example('ris migrate --store postgres://ris@db.internal/ris')
  .action((options: { store?: string }) => storeCommands.migrateCommand({ store: storeOf(options) }));

cli
  .command('index-info <file>', 'Describe a saved vector index file (kind, dimension, size, parameters)')
  .example('ris index-info ~/.local/share/ris/collections/caltech101/index.ris')
  .action(async (file: string) => console.log(await commands.describeIndexFile(String(file))));

cli.option(
  '--store <location>',
  'Where collections are kept: a postgres:// URL (PostgreSQL with pgvector) or a folder (default $RIS_DATABASE_URL, else $RIS_HOME)',
);
cli.option('--verbose', 'Show stack traces of errors');
cli.help();
cli.version(version);

try {
  cli.parse(process.argv, { run: false });
  // cac has printed the help or the version: a command's defaults (serve's --port) are not unknown options.
  const answered = Boolean(cli.options.help || cli.options.version);
  if (!answered && !cli.matchedCommand && cli.args.length > 0) {
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `Unknown command "${cli.args[0]}"; run ris --help for the list`,
    );
  }
  if (!answered) {
    if (!cli.matchedCommand) cli.globalCommand.checkUnknownOptions(); // `ris --bogus`: a refusal, not help
    if (!cli.matchedCommand) cli.outputHelp();
    await cli.runMatchedCommand();
  }
} catch (error) {
  // cac's own refusals (an unknown option, a missing argument) are refusals like ris's: exit code 2.
  const usage = error instanceof Error && error.name === 'CACError';
  if (cli.options.verbose || !(error instanceof Error)) console.error(error);
  else if (usage) {
    const command = cli.matchedCommand?.name;
    console.error(`ris: ${error.message}; run ris ${command ? `${command} ` : ''}--help for the usage`);
  } else console.error(`ris: ${error.message}`);
  process.exitCode = error instanceof RisError || usage ? 2 : 1;
}
