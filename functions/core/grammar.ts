/**
 * The spec's grammar for repository names, tags and digests (OCI distribution-spec v1.1,
 * "Pulling manifests"; image-spec "Digests"). Every name, tag and digest is checked here
 * before it reaches a storage key, so a key can never be built from `..`, `%2e` or a slash
 * in the wrong place.
 */
import { fail } from './errors.js';

const NAME = /^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$/;
const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
/** Registered algorithms and their encoded form (image-spec "Registered algorithms"). */
const ALGORITHMS: Record<string, RegExp> = { sha256: /^[a-f0-9]{64}$/, sha512: /^[a-f0-9]{128}$/ };
/** Repository names are limited with their registry host to 255 characters; keep the name alone within it. */
const MAX_NAME_LENGTH = 255;

/** A content digest such as `sha256:<64 hex>`, already validated. */
export type Digest = `${string}:${string}`;

/** Whether `name` is a valid repository name (path components joined by `/`). */
export function isRepositoryName(name: string): boolean {
  return name.length <= MAX_NAME_LENGTH && NAME.test(name);
}

/** @throws RegistryError NAME_INVALID when `name` breaks the repository name grammar. */
export function parseRepositoryName(name: string): string {
  if (!isRepositoryName(name)) throw fail('NAME_INVALID', `invalid repository name: ${clip(name)}`, { name: clip(name) });
  return name;
}

/** Whether `tag` is a valid tag (`[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`). */
export function isTag(tag: string): boolean {
  return TAG.test(tag);
}

/** Whether `value` is a well-formed digest with a registered algorithm and encoding. */
export function isDigest(value: string): value is Digest {
  if (value.length > 256 || !DIGEST.test(value)) return false;
  const [algorithm, encoded] = splitDigest(value);
  return ALGORITHMS[algorithm]?.test(encoded) ?? false;
}

/** @throws RegistryError DIGEST_INVALID when `value` is not a well-formed, registered digest. */
export function parseDigest(value: string): Digest {
  if (!isDigest(value)) throw fail('DIGEST_INVALID', `invalid digest: ${clip(value)}`, { digest: clip(value) });
  return value;
}

/** A manifest reference: a tag or a digest (end-2, end-3, end-7, end-9). */
export type Reference = { kind: 'tag'; tag: string } | { kind: 'digest'; digest: Digest };

/**
 * Parses the `<reference>` of a manifest URL: a digest when it contains `:`, else a tag.
 * @throws RegistryError DIGEST_INVALID for a malformed digest, MANIFEST_INVALID for a malformed tag.
 */
export function parseReference(value: string): Reference {
  if (value.includes(':')) return { kind: 'digest', digest: parseDigest(value) };
  if (!isTag(value)) throw fail('MANIFEST_INVALID', `invalid tag: ${clip(value)}`, { tag: clip(value) });
  return { kind: 'tag', tag: value };
}

/**
 * Parses the `<reference>` of a manifest read or delete: a malformed tag names no manifest, so
 * it is unknown (404) rather than invalid, as in the reference registry.
 * @throws RegistryError DIGEST_INVALID for a malformed digest, MANIFEST_UNKNOWN for a malformed tag.
 */
export function lookupReference(value: string): Reference {
  if (value.includes(':') || isTag(value)) return parseReference(value);
  throw fail('MANIFEST_UNKNOWN', `manifest unknown: ${clip(value)}`, { tag: clip(value) });
}

function splitDigest(value: string): [string, string] {
  const colon = value.indexOf(':');
  return [value.slice(0, colon), value.slice(colon + 1)];
}

/** The algorithm part of a valid digest, e.g. `sha256`. */
export function digestAlgorithm(digest: Digest): string {
  return splitDigest(digest)[0];
}

/** Keeps echoed user input short in error messages. */
function clip(value: string): string {
  return value.length > 100 ? `${value.slice(0, 100)}…` : value;
}
