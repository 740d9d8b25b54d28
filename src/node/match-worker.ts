// The worker side of createMatchThreads: the second look's pixel comparisons (src/duplicates) off the
// event loop. Keeps the planes of each search's images as they arrive, until the search releases them.
import { parentPort } from 'node:worker_threads';
import { PLANE_RECORD, readPlaneRecord } from '../collection/plane-record.ts';
import type { ImagePlanes } from '../collection/planes.ts';
import { judgeCopy } from '../duplicates/copies.ts';

export type MatchRequest =
  | {
      type: 'compare';
      id: number;
      session: number;
      /** Images new to this thread, and their plane records one after the other. */
      images: Uint32Array;
      records: Uint8Array;
      first: Uint32Array;
      second: Uint32Array;
    }
  | { type: 'release'; session: number };

export type MatchReply = 'loaded' | { id: number; copies: Uint8Array } | { id: number; error: string };

const sessions = new Map<number, Map<number, ImagePlanes>>();

parentPort!.on('message', (request: MatchRequest) => {
  if (request.type === 'release') {
    sessions.delete(request.session);
    return;
  }
  try {
    const images = sessions.get(request.session) ?? new Map<number, ImagePlanes>();
    sessions.set(request.session, images);
    for (const [i, image] of request.images.entries())
      images.set(image, readPlaneRecord(request.records, i * PLANE_RECORD));
    const planes = (image: number) => {
      const found = images.get(image);
      if (!found) throw new Error(`The planes of image ${image} were never sent to this thread`);
      return found;
    };
    const copies = new Uint8Array(request.first.length);
    for (let i = 0; i < copies.length; i++)
      copies[i] = judgeCopy(planes(request.first[i]!), planes(request.second[i]!)) ? 1 : 0;
    parentPort!.postMessage({ id: request.id, copies } satisfies MatchReply, [copies.buffer]);
  } catch (error) {
    parentPort!.postMessage({
      id: request.id,
      error: error instanceof Error ? error.message : String(error),
    } satisfies MatchReply);
  }
});
parentPort!.postMessage('loaded' satisfies MatchReply);
