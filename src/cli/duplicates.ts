import cliProgress from 'cli-progress';
import stringWidth from 'string-width';
import { openStore } from '../collection/stores.ts';
import { type DuplicatesProgress, type DuplicatesReport, findDuplicates } from '../duplicates/find.ts';
import { matchThreads } from '../node/match-threads.ts';
import { progressBars } from './progress.ts';

export interface DuplicatesCommandOptions {
  store?: string;
  /** The embedding similarity from which pixels are compared; default the model's own. */
  threshold?: number;
  neighbours?: number;
  json?: boolean;
}

/** `ris duplicates NAME`: groups of copies, the one to keep first in each. */
export async function duplicatesCommand(name: string, options: DuplicatesCommandOptions): Promise<void> {
  const threshold = options.threshold;
  const started = performance.now();
  const store = await openStore(options.store);
  try {
    const collection = await store.open(name, { onProgress: progressBars().onProgress });
    const bars = duplicateBars();
    let report: DuplicatesReport;
    let unreadable = 0;
    try {
      report = await findDuplicates(collection, {
        threshold,
        neighbours: options.neighbours,
        matcher: matchThreads,
        onProgress: (event) => {
          if (event.type === 'compare') unreadable = event.unreadable;
          bars.onProgress(event);
        },
      });
    } finally {
      bars.stop();
      await collection.close();
    }
    if (options.json) {
      // The JSON of `ris duplicates --json` as documented: the threshold and the groups, nothing else.
      print(JSON.stringify({ threshold: report.threshold, groups: report.groups }, null, 2));
      return;
    }
    printReport(name, report, (performance.now() - started) / 1000);
    if (unreadable > 0)
      console.error(
        `ris: ${unreadable} image${unreadable === 1 ? '' : 's'} could not be read (moved, deleted or damaged) and ${unreadable === 1 ? 'was' : 'were'} left out; ris collections repair ${name} reports which`,
      );
  } finally {
    await store.close();
  }
}

function thresholdInWords(report: DuplicatesReport): string {
  const from = {
    given: '',
    model: ", the model's",
    calibrated: ', calibrated on this collection',
    none: report.threshold === 1 ? ': no image could be read to calibrate one on; give --threshold' : '',
  }[report.thresholdSource];
  return `threshold ${report.threshold}${from}`;
}

function printReport(name: string, report: DuplicatesReport, seconds: number): void {
  const images = report.groups.reduce((sum, group) => sum + group.images.length, 0);
  if (report.groups.length === 0) {
    print(`no copies found in ${name} (${thresholdInWords(report)}, ${seconds.toFixed(1)} s)`);
    return;
  }
  print(
    `${plural(report.groups.length, 'group')} of copies in ${name}: ${images} images, ${images - report.groups.length} of them could go ` +
      `(${thresholdInWords(report)}, ${seconds.toFixed(1)} s)`,
  );
  const idWidth = Math.max(...report.groups.flatMap((g) => g.images.map((i) => String(i.id).length))) + 1;
  const sizeWidth = Math.max(
    ...report.groups.flatMap((g) => g.images.map((i) => `${i.width}×${i.height}`.length)),
  );
  for (const [index, group] of report.groups.entries()) {
    print(`\ngroup ${index + 1}, ${plural(group.images.length, 'image')}:`);
    for (const image of group.images) {
      const size = `${image.width}×${image.height}`;
      print(
        `  ${image.keep ? 'keep' : '    '}  ${`#${image.id}`.padEnd(idWidth)}  ${pad(size, sizeWidth)}  ${formatBytes(image.bytes).padStart(8)}  ` +
          `${image.keep ? '     ' : image.similarity.toFixed(3)}  ${image.identical ? 'same bytes ' : '           '}${image.path}`,
      );
    }
  }
}

/** Bars on stderr for a terminal (nothing in pipes and logs): calibration, neighbours, pixel comparison. */
function duplicateBars(): { onProgress: (event: DuplicatesProgress) => void; stop: () => void } {
  let bar: cliProgress.SingleBar | undefined;
  let kind: string | undefined;
  const labels: Record<DuplicatesProgress['type'], string> = {
    calibrate: 'calibrating the threshold on edited copies of',
    neighbours: 'nearest neighbours of',
    compare: 'comparing pixels of',
  };
  const stop = () => {
    bar?.stop();
    bar = undefined;
    kind = undefined;
  };
  return {
    stop,
    onProgress(event) {
      if (!process.stderr.isTTY) return;
      if (kind !== event.type) {
        stop();
        kind = event.type;
        bar = new cliProgress.SingleBar(
          {
            format: `${labels[event.type]} {total} ${event.type === 'compare' ? 'pairs' : 'images'} {bar} {value}/{total}`,
            hideCursor: true,
            clearOnComplete: true,
            stream: process.stderr,
          },
          cliProgress.Presets.shades_classic,
        );
        bar.start(event.total, 0);
      }
      bar!.update(event.done);
    },
  };
}

function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  if (bytes < 1e6) return `${(bytes / 1e3).toFixed(0)} kB`;
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

function pad(text: string, width: number): string {
  return text + ' '.repeat(Math.max(0, width - stringWidth(text)));
}

/** Results go to stdout; a reader that stopped reading (| head) ends the command quietly in main.ts. */
function print(line: string): void {
  process.stdout.write(`${line}\n`);
}
