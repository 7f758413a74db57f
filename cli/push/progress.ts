/**
 * Per-layer progress like docker's: `<12-char id>: <status>` lines, with a bar for byte counts
 * (`Pushing [=====>          ]  12.3MB/45.6MB`). On a terminal the block of lines is redrawn in
 * place with ANSI escapes (cursor up, erase line) at most every 100 ms; otherwise one line is
 * printed per change of status (bars are left out).
 */

const BAR_WIDTH = 50;

/** docker's sizes: 3 significant digits, decimal units (`12.3MB`). */
export function humanSize(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${Number(value.toPrecision(3))}${units[unit]}`;
}

/** `[=====>     ]  12.3MB/45.6MB` for `current` of `total` bytes. */
export function bar(current: number, total: number): string {
  const filled = total > 0 ? Math.min(BAR_WIDTH, Math.floor((current / total) * BAR_WIDTH)) : BAR_WIDTH;
  const arrow = filled >= BAR_WIDTH ? '='.repeat(BAR_WIDTH) : `${'='.repeat(filled)}>${' '.repeat(BAR_WIDTH - filled - 1)}`;
  return `[${arrow}]  ${humanSize(current)}/${humanSize(total)}`;
}

export interface Output {
  write(text: string): unknown;
  isTTY?: boolean;
}

export class Progress {
  private readonly lines: LayerLine[] = [];
  private drawn = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly out: Output = process.stdout,
    readonly tty = Boolean(out.isTTY),
  ) {}

  /** A new line for layer `id` (or the existing one). */
  line(id: string): LayerLine {
    const existing = this.lines.find((line) => line.id === id);
    if (existing) return existing;
    const line = new LayerLine(id, this);
    this.lines.push(line);
    return line;
  }

  /** Drops the line of `id` (an entry that turned out not to be a layer). */
  remove(id: string): void {
    const index = this.lines.findIndex((line) => line.id === id);
    if (index < 0) return;
    this.lines.splice(index, 1);
    if (this.tty) {
      this.erase();
      this.draw();
    }
  }

  /** Prints `text` as a line of its own, above the layer block on a terminal. */
  note(text: string): void {
    if (!this.tty) return void this.out.write(`${text}\n`);
    this.erase();
    this.out.write(`${text}\n`);
    this.draw();
  }

  /** Draws the final state; later output goes below the block. */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.tty) this.draw();
    this.drawn = 0;
    this.lines.length = 0;
  }

  /** @internal a line changed; `statusChanged` when its status word did. */
  changed(line: LayerLine, statusChanged: boolean): void {
    if (!this.tty) {
      if (statusChanged) this.out.write(`${line.id}: ${line.status}\n`);
      return;
    }
    if (statusChanged) return void this.draw();
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.draw();
    }, 100);
  }

  private erase(): void {
    if (this.drawn > 0) this.out.write(`\x1b[${this.drawn}A\x1b[J`);
    this.drawn = 0;
  }

  private draw(): void {
    let text = this.drawn > 0 ? `\x1b[${this.drawn}A` : '';
    for (const line of this.lines) text += `\x1b[2K${line.render()}\n`;
    this.out.write(text);
    this.drawn = this.lines.length;
  }
}

export class LayerLine {
  status = 'Waiting';
  private current = 0;
  private total = 0;
  private showBar = false;

  constructor(
    readonly id: string,
    private readonly progress: Progress,
  ) {}

  /** A status without a bar (`Preparing`, `Pushed`, `Layer already exists`, …). */
  set(status: string): void {
    const changed = status !== this.status || this.showBar;
    this.status = status;
    this.showBar = false;
    if (changed) this.progress.changed(this, true);
  }

  /** A status with a bar: `current` of `total` bytes. */
  count(status: string, current: number, total: number): void {
    const changed = status !== this.status;
    this.status = status;
    this.current = current;
    this.total = total;
    this.showBar = true;
    this.progress.changed(this, changed);
  }

  render(): string {
    return `${this.id}: ${this.status}${this.showBar ? ` ${bar(this.current, this.total)}` : ''}`;
  }
}
