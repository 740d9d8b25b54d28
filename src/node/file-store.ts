import { randomBytes } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { FileStore, RangedFile, StreamedFile } from '../ann/storage.ts';

/** Writes to a temp file beside the target, fsyncs it, then renames it over: readers never see half a file. */
export const nodeFileStore: FileStore = {
  async write(path, bytes) {
    await mkdir(dirname(path), { recursive: true });
    const temp = join(dirname(path), `.${randomBytes(6).toString('hex')}.tmp`);
    const handle = await open(temp, 'w');
    try {
      if (bytes instanceof Uint8Array) await handle.writeFile(bytes);
      else await writeStreamed(handle, bytes);
      await handle.sync();
    } catch (error) {
      await handle.close();
      await rm(temp, { force: true });
      throw error;
    }
    await handle.close();
    // A rename that fails (the target a folder, say) must not leave the temp file behind.
    await rename(temp, path).catch(async (error: unknown) => {
      await rm(temp, { force: true });
      throw error;
    });
    // Make the rename itself durable.
    const dir = await open(dirname(path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  },
  async read(path) {
    return new Uint8Array(await readFile(path));
  },
  async open(path) {
    return openRanged(path);
  },
};

/** The parts in order, gathered into writes of about 4 MiB, then the head over the start. */
async function writeStreamed(
  handle: import('node:fs/promises').FileHandle,
  file: StreamedFile,
): Promise<void> {
  const buffer = new Uint8Array(4 << 20);
  let used = 0;
  let position = 0;
  const flush = async () => {
    if (used === 0) return;
    await handle.write(buffer, 0, used, position);
    position += used;
    used = 0;
  };
  for (const part of file.parts) {
    if (part.length >= buffer.length) {
      await flush();
      await handle.write(part, 0, part.length, position);
      position += part.length;
      continue;
    }
    if (used + part.length > buffer.length) await flush();
    buffer.set(part, used);
    used += part.length;
  }
  await flush();
  const head = file.head();
  await handle.write(head, 0, head.length, 0);
}

/** Closes the descriptors of files nobody closed before dropping them. */
const orphans = new FinalizationRegistry<{ fd: number; closed: boolean }>((state) => {
  if (!state.closed) closeSync(state.fd);
});

/**
 * A file read by `pread` (synchronous: one search reads a few rows between computations, and a
 * round trip through the thread pool would cost more than the read). The descriptor stays open until
 * `close`, or until the object is collected.
 */
export function openRanged(path: string): RangedFile {
  const fd = openSync(path, 'r');
  const state = { fd, closed: false };
  const stat = fstatSync(fd, { bigint: true });
  const size = Number(stat.size);
  const file: RangedFile = {
    size,
    identity: `${stat.dev}:${stat.ino}:${stat.size}:${stat.mtimeNs}:${stat.ctimeNs}`,
    read(into, offset) {
      let done = 0;
      while (done < into.length) {
        const n = readSync(fd, into, done, into.length - done, offset + done);
        if (n === 0) throw new RangeError(`${path} ends at ${offset + done}, before ${offset + into.length}`);
        done += n;
      }
    },
    crc32(offset, length) {
      const chunk = Buffer.allocUnsafe(Math.min(length, 4 << 20));
      let crc = 0;
      for (let done = 0; done < length; done += chunk.length) {
        const part = chunk.subarray(0, Math.min(chunk.length, length - done));
        file.read(part, offset + done);
        crc = crc32(part, crc);
      }
      return crc;
    },
    close() {
      if (state.closed) return;
      state.closed = true;
      orphans.unregister(file);
      closeSync(fd);
    },
  };
  orphans.register(file, state, file);
  return file;
}
