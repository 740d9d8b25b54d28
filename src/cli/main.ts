import { readFileSync } from 'node:fs';
import cac from 'cac';
import { RisError } from '../errors.ts';

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

const cli = cac('ris');
cli.usage(
  '<command> [options]\n\n  Reverse image search: index an image collection, then search it by image.',
);
cli
  .command('index-info <file>', 'Describe a saved vector index file (kind, dimension, size, parameters)')
  .example('ris index-info ~/.local/share/ris/caltech101/index.ris')
  .action(async (file: string) => {
    const { describeIndexFile } = await import('./commands.ts');
    console.log(await describeIndexFile(file));
  });
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
