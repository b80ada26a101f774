import { Transform } from 'node:stream';

/** Files smaller than this copy without a bar: it would only flash. */
export const PROGRESS_MIN_BYTES = 1024 * 1024;
/** Redraws at most this often, so a fast copy is not slowed by the terminal. */
const REDRAW_MS = 100;
const WIDTH = 30;

function mb(n: number): string {
  return `${(n / 1048576).toFixed(1)} MB`;
}

/**
 * A pass-through stream that draws `label [####----] 42% 12.0/28.6 MB 35.2 MB/s` on stderr as
 * bytes flow through it, then the final line with a newline. Drawn only when stderr is a
 * terminal (a log or a pipe gets nothing) and the size is known and large enough.
 */
export function progress(label: string, total: number | undefined, out: NodeJS.WriteStream = process.stderr): Transform {
  const draw = out.isTTY && total !== undefined && total >= PROGRESS_MIN_BYTES;
  const started = Date.now();
  let done = 0;
  let drawnAt = 0;
  const render = (final: boolean): void => {
    if (!draw) return;
    const now = Date.now();
    if (!final && now - drawnAt < REDRAW_MS) return;
    drawnAt = now;
    const part = Math.min(1, done / total);
    const filled = Math.round(part * WIDTH);
    const rate = done / Math.max(0.001, (now - started) / 1000);
    // \r and erase-line: the bar redraws in place; the final one ends its line.
    out.write(`\r\x1b[2K${label} [${'#'.repeat(filled)}${'-'.repeat(WIDTH - filled)}] ${Math.floor(part * 100)}% ${mb(done)}/${mb(total)} ${mb(rate)}/s${final ? '\n' : ''}`);
  };
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      done += chunk.length;
      render(false);
      cb(null, chunk);
    },
    flush(cb) {
      render(true);
      cb();
    },
  });
}
