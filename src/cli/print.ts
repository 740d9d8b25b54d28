import stringWidth from 'string-width';

/** Pads to `width` terminal columns: CJK and emoji take two each, combining marks none. */
export function padColumns(text: string, width: number): string {
  return text + ' '.repeat(Math.max(0, width - stringWidth(text)));
}

/** Results go to stdout; a reader that stopped reading (| head) ends the command quietly in main.ts. */
export function print(line: string): void {
  process.stdout.write(`${line}\n`);
}
