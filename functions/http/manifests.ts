/** Manifest endpoints: HEAD and GET (end-3), PUT (end-7), DELETE (end-9). */
import { readLimited } from '../core/body.js';
import { fail } from '../core/errors.js';
import { isTag, lookupReference, parseReference } from '../core/grammar.js';
import { MAX_MANIFEST_BYTES } from '../core/manifest.js';
import type { Registry } from '../core/registry.js';
import { empty, type HttpRequest, type HttpResponse, type RouteParams } from './types.js';

/** HEAD /v2/<name>/manifests/<reference> (a cached repository's tag may be resolved upstream first). */
export async function headManifest(registry: Registry, _request: HttpRequest, { name, reference }: RouteParams): Promise<HttpResponse> {
  const parsed = lookupReference(reference);
  const manifest = (await registry.cache.manifest(name, parsed)) ?? (await registry.manifests.stat(name, parsed));
  return { status: 200, headers: manifestHeaders(manifest) };
}

/** GET /v2/<name>/manifests/<reference> — the exact bytes that were pushed (or fetched upstream), with their media type. */
export async function getManifest(registry: Registry, _request: HttpRequest, { name, reference }: RouteParams): Promise<HttpResponse> {
  const parsed = lookupReference(reference);
  const manifest = (await registry.cache.manifest(name, parsed)) ?? (await registry.manifests.get(name, parsed));
  return { status: 200, headers: manifestHeaders(manifest), body: manifest.bytes };
}

/** PUT /v2/<name>/manifests/<reference>[?tag=…] — at most 4 MiB (413 above); `OCI-Tag` lists the `tag` parameters applied. */
export async function putManifest(registry: Registry, request: HttpRequest, { name, reference }: RouteParams): Promise<HttpResponse> {
  const parsed = parseReference(reference);
  const tags = [...new Set(request.query.getAll('tag'))];
  for (const tag of tags) if (!isTag(tag)) throw fail('MANIFEST_INVALID', `invalid tag parameter: ${tag.slice(0, 130)}`);
  const bytes = await readLimited(request.body, MAX_MANIFEST_BYTES, 'manifest');
  const { digest, subject } = await registry.manifests.put(name, parsed, request.headers['content-type'], bytes, tags);
  return empty(201, {
    Location: `/v2/${name}/manifests/${digest}`,
    'Docker-Content-Digest': digest,
    ...(subject ? { 'OCI-Subject': subject } : {}),
    ...(tags.length > 0 ? { 'OCI-Tag': tags.join(', ') } : {}),
  });
}

/** DELETE /v2/<name>/manifests/<reference> — by digest the manifest, by tag the tag. */
export async function deleteManifest(registry: Registry, _request: HttpRequest, { name, reference }: RouteParams): Promise<HttpResponse> {
  await registry.manifests.delete(name, lookupReference(reference));
  return empty(202);
}

function manifestHeaders(manifest: { digest: string; mediaType: string; size: number }): Record<string, string> {
  return {
    'Content-Type': manifest.mediaType,
    'Content-Length': String(manifest.size),
    'Docker-Content-Digest': manifest.digest,
  };
}
