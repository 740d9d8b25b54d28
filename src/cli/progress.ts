import cliProgress from 'cli-progress';
import type { BuildProgress } from '../collection/build.ts';

/** Draws the library's progress events as bars on stderr (only the CLI draws; the library reports). */
export function progressBars(): { onProgress: (event: BuildProgress) => void; stop: () => void } {
  let bar: cliProgress.SingleBar | undefined;
  let kind: string | undefined;
  let started = 0;
  const stop = () => {
    bar?.stop();
    bar = undefined;
    kind = undefined;
  };
  const start = (type: string, format: string, total: number) => {
    stop();
    kind = type;
    started = performance.now();
    bar = new cliProgress.SingleBar(
      { format, hideCursor: true, clearOnComplete: false, etaBuffer: 50, stream: process.stderr },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0, { rate: '0', failed: 0 });
  };
  return {
    stop,
    onProgress(event) {
      if (
        !process.stderr.isTTY &&
        event.type !== 'scan' &&
        event.type !== 'train' &&
        event.type !== 'rebuild' &&
        event.type !== 'extract'
      ) {
        return; // no bars in logs and pipes
      }
      switch (event.type) {
        case 'download':
          if (kind !== 'download') {
            start(
              'download',
              'downloading {bar} {percentage}% | {value}/{total} MB | {rate} MB/s | ETA {eta_formatted}',
              Math.max(1, Math.round(event.totalBytes / 1e6)),
            );
          }
          bar!.update(Math.round(event.receivedBytes / 1e6), {
            rate: (event.receivedBytes / 1e6 / Math.max((performance.now() - started) / 1000, 1e-3)).toFixed(
              1,
            ),
          });
          break;
        case 'extract':
          stop();
          console.error(`extracting ${event.dataset}…`);
          break;
        case 'scan':
          console.error(`${event.images} images found`);
          break;
        case 'embed': {
          if (kind !== 'embed')
            start(
              'embed',
              'embedding {bar} {value}/{total} | {rate} img/s | {failed} failed | ETA {eta_formatted}',
              event.total ?? event.done,
            );
          const seconds = (performance.now() - started) / 1000;
          bar!.update(event.done, {
            rate: (event.done / Math.max(seconds, 1e-3)).toFixed(1),
            failed: event.failed,
          });
          break;
        }
        case 'train':
          stop();
          console.error(`indexing ${event.images} images…`);
          break;
        case 'rebuild':
          stop();
          console.error(
            `rebuilding the index of ${event.collection} from its ${event.images} stored vectors: ${event.reason}`,
          );
          break;
      }
    },
  };
}
