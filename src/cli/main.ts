import { readFileSync } from 'node:fs';
import cac from 'cac';
import { RisError } from '../errors.ts';
import * as commands from './commands.ts';

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

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
  .option('--partitions <n>', 'IVF partitions (default about √n)')
  .option('--sub-vectors <m>', 'PQ sub-vectors per vector (default dimension / 16)')
  .option('--from <dir>', 'For a dataset: use an existing copy of its images instead of downloading')
  .option(
    '--dir <dir>',
    'For a dataset: where to download it (default $RIS_DATASETS_DIR or $RIS_HOME/datasets)',
  )
  .example('ris index ~/Pictures --collection photos')
  .example('ris index caltech101 --collection caltech101 --model mobilenetv2-int8')
  .example('ris index caltech101 --collection caltech101 --from ./101_ObjectCategories')
  .action(
    async (
      source: string,
      options: {
        collection?: string;
        model?: string;
        partitions?: number;
        subVectors?: number;
        from?: string;
        dir?: string;
      },
    ) => {
      if (!options.collection)
        throw new RisError(
          'INVALID_ARGUMENT',
          'ris index needs --collection NAME (the collection to create or resume)',
        );
      await commands.indexCommand(source, { ...options, collection: String(options.collection) });
    },
  );

cli
  .command(
    'add <collection> <...paths>',
    'Embed and add images or folders to a collection, without retraining',
  )
  .example('ris add photos ~/Pictures/new/*.jpg')
  .action((name: string, paths: string[]) => commands.addCommand(name, paths));

cli
  .command('remove <collection> <...targets>', 'Remove images by id or by path')
  .example('ris remove photos 17 42 ~/Pictures/old.jpg')
  .action((name: string, targets: string[]) => commands.removeCommand(name, targets.map(String)));

cli
  .command('retrain <collection>', 'Rebuild the index from every stored vector (after many additions)')
  .example('ris retrain photos')
  .action((name: string) => commands.retrainCommand(name));

cli
  .command('search <collection> <image>', 'Find the images most similar to an image file or an http(s) URL')
  .option('-k <k>', 'Number of results', { default: 5 })
  .option('--crop <box>', 'Search with a crop of the image: x,y,width,height in pixels')
  .option('--nprobes <n>', 'IVF partitions to visit (more: better recall, slower)')
  .option('--json', 'Print the results as JSON')
  .example('ris search photos cat.jpg -k 10')
  .example('ris search caltech101 https://example.com/plane.jpg --crop 0,0,400,300 --json')
  .action(
    (name: string, image: string, options: { k: number; crop?: string; nprobes?: number; json?: boolean }) =>
      commands.searchCommand(name, image, { ...options, k: Number(options.k) }),
  );

cli
  .command(
    'collections [action] [name]',
    'List collections, show one (info NAME), or delete one (delete NAME)',
  )
  .example('ris collections')
  .example('ris collections info caltech101')
  .example('ris collections delete old-photos')
  .action((action?: string, name?: string) => commands.collectionsCommand(action, name));

cli
  .command('datasets <action> <dataset>', 'Download a dataset: ris datasets download caltech101|voc2012|all')
  .option('--dir <dir>', 'Where to put it (default $RIS_DATASETS_DIR or $RIS_HOME/datasets)')
  .example('ris datasets download caltech101')
  .action((action: string, dataset: string, options: { dir?: string }) => {
    if (action !== 'download')
      throw new RisError(
        'INVALID_ARGUMENT',
        `Unknown action "${action}"; use ris datasets download caltech101|voc2012|all`,
      );
    return commands.datasetsDownloadCommand(dataset, options);
  });

cli
  .command('start', 'Prepare the caltech101 collection if there is none, then serve the web page (npm start)')
  .option('--from <dir>', 'An existing copy of Caltech101 (101_ObjectCategories) instead of downloading')
  .option('--model <model>', 'Model for the new collection (default resnet50)')
  .option('--port <port>', 'Port of the web page', { default: 7860 })
  .option('--host <host>', 'Address to listen on', { default: '127.0.0.1' })
  .example('ris start')
  .example('ris start --from ./101_ObjectCategories --model mobilenetv2-int8')
  .action((options: { from?: string; model?: string; port: number; host: string }) =>
    commands.startCommand({ ...options, port: Number(options.port), host: String(options.host) }),
  );

cli
  .command('serve', 'Serve the web page and the HTTP API over the collections')
  .option('--port <port>', 'Port', { default: 7860 })
  .option('--host <host>', 'Address to listen on (0.0.0.0: every interface)', { default: '127.0.0.1' })
  .option(
    '--collections <names>',
    'Comma-separated collections to serve, the first one shown first (default: all)',
  )
  .option('--max-upload-mb <mb>', 'Largest upload or fetched image, in MB', { default: 20 })
  .example('ris serve')
  .example('ris serve --port 8080 --collections caltech101,photos')
  .action((options: { port: number; host: string; collections?: string; maxUploadMb: number }) =>
    commands.serveCommand({
      port: Number(options.port),
      host: String(options.host),
      collections: options.collections ? String(options.collections).split(',') : undefined,
      maxUploadBytes: Number(options.maxUploadMb) * 1e6,
    }),
  );

cli
  .command('index-info <file>', 'Describe a saved vector index file (kind, dimension, size, parameters)')
  .example('ris index-info ~/.local/share/ris/collections/caltech101/index.ris')
  .action(async (file: string) => console.log(await commands.describeIndexFile(file)));

cli.option('--verbose', 'Show stack traces of errors');
cli.help();
cli.version(version);

try {
  cli.parse(process.argv, { run: false });
  if (!cli.matchedCommand && cli.args.length > 0) {
    throw new RisError('INVALID_ARGUMENT', `Unknown command "${cli.args[0]}"; run ris --help for the list`);
  }
  if (!cli.matchedCommand && !cli.options.help && !cli.options.version) cli.outputHelp();
  await cli.runMatchedCommand();
} catch (error) {
  if (cli.options.verbose || !(error instanceof Error)) console.error(error);
  else console.error(`ris: ${error.message}`);
  process.exitCode = error instanceof RisError ? 2 : 1;
}
