/**
 * `WWW-Authenticate` challenges (RFC 7235): `Bearer realm="https://r/token",service="r",scope="…"`
 * or `Basic realm="…"`. Only the first challenge of the header is used.
 */

export interface Challenge {
  /** Lower-case scheme: `bearer`, `basic`, … */
  scheme: string;
  /** Parameters by lower-case name (`realm`, `service`, `scope`, `error`). */
  params: Record<string, string>;
}

/** Parses a `WWW-Authenticate` value; undefined when there is none or it has no scheme. */
export function parseChallenge(header: string | undefined | null): Challenge | undefined {
  const text = header?.trim();
  if (!text) return undefined;
  const scheme = /^([A-Za-z][\w-]*)/.exec(text)?.[1];
  if (!scheme) return undefined;
  const params: Record<string, string> = {};
  let i = scheme.length;
  while (i < text.length) {
    const match = /^[\s,]*([A-Za-z][\w-]*)\s*=\s*/.exec(text.slice(i));
    if (!match) break;
    i += match[0].length;
    let value = '';
    if (text[i] === '"') {
      for (i++; i < text.length && text[i] !== '"'; i++) value += text[i] === '\\' ? text[++i] ?? '' : text[i];
      i++;
    } else {
      const token = /^[^\s,]*/.exec(text.slice(i))![0];
      value = token;
      i += token.length;
    }
    const name = match[1].toLowerCase();
    if (!(name in params)) params[name] = value;
    // A second challenge (`, Basic realm=…`) starts with a scheme, not a parameter: stop there.
    if (/^\s*,\s*[A-Za-z][\w-]*\s+[A-Za-z]/.test(text.slice(i))) break;
  }
  return { scheme: scheme.toLowerCase(), params };
}

/** The scope string of `repository:<name>:<actions>`. */
export function repositoryScope(name: string, actions: readonly string[]): string {
  return `repository:${name}:${actions.join(',')}`;
}
