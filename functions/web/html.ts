/**
 * HTML built from tagged templates: every interpolated value is escaped unless it is already
 * {@link Html} (made by this module), so a pusher's `<script>` in a label stays text. Values are
 * only ever placed in element content or in double-quoted attribute values, where escaping
 * `& < > " '` suffices (HTML Living Standard, 13.1.2.3 and 13.1.2.6).
 */

/** Markup that is safe to emit as it is. */
export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

/** What a template accepts: text (escaped), markup, lists of either, or nothing (omitted). */
export type Part = string | number | Html | undefined | null | false | readonly Part[];

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** `text` with the characters that could end content or an attribute value escaped. */
export function escape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c]);
}

function render(part: Part): string {
  if (part === undefined || part === null || part === false) return '';
  if (part instanceof Html) return part.text;
  if (Array.isArray(part)) return part.map(render).join('');
  return escape(String(part));
}

/** A template whose values are escaped: html`<b>${name}</b>`. */
export function html(strings: TemplateStringsArray, ...values: Part[]): Html {
  let out = strings[0];
  values.forEach((value, i) => (out += render(value) + strings[i + 1]));
  return new Html(out);
}

/** Path segments percent-encoded, slashes kept (repository names contain them). */
export function pathOf(...segments: string[]): string {
  return segments.map((s) => s.split('/').map(encodeURIComponent).join('/')).join('/');
}
