// The files of a drop or a picker, whole folders included, each with its path under the folder it came
// in (for its label and for the lists of what failed).
import type { Picked } from './upload-plan.ts';

/**
 * Every file of a drop: files as they are, folders walked to their last file (DataTransferItem's
 * webkitGetAsEntry, in Chromium, Firefox and Safari). The entries must be taken while the drop event is
 * dispatched, so this is called from the handler itself; the walk goes on after it.
 */
export function filesFromDrop(transfer: DataTransfer): Promise<Picked[]> {
  const entries: FileSystemEntry[] = [];
  const loose: File[] = [];
  for (const item of Array.from(transfer.items)) {
    if (item.kind !== 'file') continue;
    const entry = item.webkitGetAsEntry?.();
    if (entry) entries.push(entry);
    else {
      const file = item.getAsFile();
      if (file) loose.push(file);
    }
  }
  if (entries.length === 0 && loose.length === 0) loose.push(...Array.from(transfer.files)); // a browser without items
  return (async () => {
    const picked: Picked[] = loose.map((file) => ({ file, path: file.name }));
    for (const entry of entries) await walk(entry, picked);
    return picked;
  })();
}

async function walk(entry: FileSystemEntry, out: Picked[]): Promise<void> {
  const path = (entry.fullPath.replace(/^\/+/, '') || entry.name).normalize('NFC');
  if (entry.isFile) {
    const file = await new Promise<File>((resolve, reject) =>
      (entry as FileSystemFileEntry).file(resolve, reject),
    );
    out.push({ file, path });
    return;
  }
  if (!entry.isDirectory) return;
  const reader = (entry as FileSystemDirectoryEntry).createReader();
  const children: FileSystemEntry[] = [];
  // readEntries answers in slices (100 at a time in Chromium) until it answers none.
  for (;;) {
    const slice = await new Promise<FileSystemEntry[]>((resolve, reject) =>
      reader.readEntries(resolve, reject),
    );
    if (slice.length === 0) break;
    children.push(...slice);
  }
  children.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const child of children) await walk(child, out);
}

/** The files of an <input type=file> (a folder picker gives each its path under the folder). */
export function filesFromInput(list: FileList | null): Picked[] {
  return Array.from(list ?? []).map((file) => ({
    file,
    path: (file.webkitRelativePath || file.name).normalize('NFC'),
  }));
}
