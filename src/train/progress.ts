/**
 * A one-line training progress bar, runtime-neutral: it writes through a sink.
 *
 *   [#########...........] 1200/8000 15% | 812 tok/s | loss 3.412 | val 3.520 | lr 2.8e-3 | 41m12s left
 *
 * On a terminal the line is redrawn in place with "\r" (at most every MIN_REDRAW_MS);
 * anywhere else (a log file, CI) a plain line is printed every `every` steps and at the
 * last step, so logs stay readable.
 */
export interface ProgressSink {
  write(s: string): void;
  /** true on an interactive terminal: redraw in place */
  readonly isTTY: boolean;
}

export interface ProgressInfo {
  step: number; // optimizer steps done
  total: number; // optimizer steps planned
  tokensPerSecond: number; // training tokens per second since this process started (a resumed run counts afresh)
  loss: number; // the last step's training loss
  valLoss?: number; // the last validation loss, if any
  lr: number;
  /** seconds until `total`, at the speed since this process started */
  etaSeconds: number;
}

/** characters inside the bar's [...] */
const BAR_WIDTH = 20;
/** a terminal's bar is redrawn at most this often */
const MIN_REDRAW_MS = 100;

export interface ProgressOptions {
  every?: number; // non-TTY: a line every N steps (default 50)
  now?: () => number; // clock in ms (default Date.now)
}

export class ProgressBar {
  private readonly every: number;
  private readonly now: () => number;
  private lastDraw = -Infinity;
  private drawn = 0; // characters of the bar now on screen (TTY)

  constructor(
    private readonly sink: ProgressSink,
    opts: ProgressOptions = {},
  ) {
    this.every = opts.every ?? 50;
    this.now = opts.now ?? Date.now;
  }

  update(info: ProgressInfo): void {
    const last = info.step >= info.total;
    if (!this.sink.isTTY) {
      if (info.step % this.every === 0 || last) this.sink.write(formatProgress(info) + '\n');
      return;
    }
    const t = this.now();
    if (!last && t - this.lastDraw < MIN_REDRAW_MS) return;
    this.lastDraw = t;
    const line = formatProgress(info);
    this.sink.write('\r' + line.padEnd(this.drawn));
    this.drawn = line.length;
  }

  /** Print a message on its own line (the bar is redrawn by the next update). */
  log(message: string): void {
    this.clear();
    this.sink.write(message + '\n');
  }

  /** End the bar's line, leaving it on screen. */
  finish(): void {
    if (this.sink.isTTY && this.drawn > 0) this.sink.write('\n');
    this.drawn = 0;
  }

  private clear(): void {
    if (this.sink.isTTY && this.drawn > 0) this.sink.write('\r' + ' '.repeat(this.drawn) + '\r');
    this.drawn = 0;
    this.lastDraw = -Infinity;
  }
}

export function formatProgress(info: ProgressInfo, barWidth = BAR_WIDTH): string {
  const frac = info.total > 0 ? Math.min(1, info.step / info.total) : 1;
  const filled = Math.round(frac * barWidth);
  const parts = [
    `[${'#'.repeat(filled)}${'.'.repeat(barWidth - filled)}] ${info.step}/${info.total} ${Math.floor(frac * 100)}%`,
    `${info.tokensPerSecond.toFixed(0)} tok/s`,
    `loss ${info.loss.toFixed(3)}`,
  ];
  if (info.valLoss !== undefined) parts.push(`val ${info.valLoss.toFixed(3)}`);
  parts.push(`lr ${info.lr.toExponential(1)}`);
  parts.push(info.step >= info.total ? 'done' : `${formatDuration(info.etaSeconds)} left`);
  return parts.join(' | ');
}

/** 3725 -> "1h02m", 185 -> "3m05s", 7.2 -> "7s"; non-finite -> "?" */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m${String(sec).padStart(2, '0')}s`;
  return `${sec}s`;
}
