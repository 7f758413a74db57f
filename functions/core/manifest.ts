/**
 * Manifest parsing and validation (image-spec v1.1 "Image Manifest", "Image Index";
 * Docker "Image Manifest V2, Schema 2" and "Manifest List"). The registry stores the exact
 * bytes it received; this module only decides whether they are acceptable and what they
 * reference.
 */
import * as z from '../zod.js';
import { fail } from './errors.js';
import { isDigest, type Digest } from './grammar.js';

export const MediaTypes = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  dockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
} as const;

/** Image config media types whose `config.Labels` may carry a description. */
export const IMAGE_CONFIG_TYPES = new Set(['application/vnd.oci.image.config.v1+json', 'application/vnd.docker.container.image.v1+json']);

/** The annotation and label that describe an image (image-spec "Pre-Defined Annotation Keys"). */
export const DESCRIPTION_KEY = 'org.opencontainers.image.description';

/** OCI and Docker limit for a manifest body (distribution-spec "Pushing Manifests"): 4 MiB. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** RFC 6838 media type, as image-spec "Descriptor" requires. */
const MEDIA_TYPE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;

const mediaType = z.string().check(z.regex(MEDIA_TYPE, 'not a media type'));
const digest = z.pipe(z.string().check(z.refine(isDigest, 'not a valid digest')), z.transform((d: string) => d as Digest));
const annotations = z.record(z.string(), z.string());

const descriptor = z.object({
  mediaType,
  digest,
  size: z.int().check(z.nonnegative()),
  urls: z.optional(z.array(z.string())),
  annotations: z.optional(annotations),
  artifactType: z.optional(mediaType),
  platform: z.optional(z.looseObject({ architecture: z.string(), os: z.string() })),
});

const imageManifest = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.optional(z.string()),
  artifactType: z.optional(mediaType),
  config: descriptor,
  layers: z.array(descriptor),
  subject: z.optional(descriptor),
  annotations: z.optional(annotations),
});

const imageIndex = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.optional(z.string()),
  artifactType: z.optional(mediaType),
  manifests: z.array(descriptor),
  subject: z.optional(descriptor),
  annotations: z.optional(annotations),
});

export type ManifestDescriptor = z.infer<typeof descriptor>;

/** What the registry needs to know of an accepted manifest. */
export interface ParsedManifest {
  mediaType: string;
  /** The config descriptor of an image manifest. */
  config?: ManifestDescriptor;
  /** Blobs that must be linked to the repository (config and layers), excluding foreign layers. */
  blobs: Digest[];
  /** Manifests that must exist in the repository (index children). */
  manifests: Digest[];
  subject?: Digest;
  /** `artifactType`, else the config media type, as the referrers API reports it. */
  artifactType?: string;
  annotations?: Record<string, string>;
}

const IMAGE_TYPES = new Set<string>([MediaTypes.ociManifest, MediaTypes.dockerManifest]);
const INDEX_TYPES = new Set<string>([MediaTypes.ociIndex, MediaTypes.dockerManifestList]);
/** Layers whose bytes live elsewhere (`urls`); registries need not hold them (image-spec "Non-distributable"). */
const FOREIGN_LAYER = /(\.foreign\.|\.nondistributable\.)/;

/**
 * Parses manifest bytes sent with `contentType` (the request's `Content-Type`, possibly empty).
 * @throws RegistryError MANIFEST_INVALID for bad JSON, an unsupported or schema 1 media type, a
 *   `mediaType` field that contradicts `Content-Type`, a document that is both manifest and index,
 *   or a shape that breaks the schema.
 */
export function parseManifest(bytes: Uint8Array, contentType: string | undefined): ParsedManifest {
  const json = parseJson(bytes);
  const declared = typeof json.mediaType === 'string' ? json.mediaType : undefined;
  const header = contentType?.split(';')[0].trim().toLowerCase() || undefined;
  if (header && declared && header !== declared) {
    throw fail('MANIFEST_INVALID', `manifest mediaType ${declared} does not match Content-Type ${header}`);
  }
  const type = header ?? declared ?? inferType(json);
  if (type === MediaTypes.dockerSchema1 || type === MediaTypes.dockerSchema1Signed || json.schemaVersion === 1) {
    throw fail('MANIFEST_INVALID', 'Docker schema 1 manifests are not supported; push with a current client (schema 2 or OCI)');
  }
  if ('manifests' in json && ('layers' in json || 'config' in json)) {
    throw fail('MANIFEST_INVALID', 'ambiguous manifest: it has both "manifests" and "layers"/"config"');
  }
  if (IMAGE_TYPES.has(type)) return parseImageManifest(json, type);
  if (INDEX_TYPES.has(type)) return parseImageIndex(json, type);
  throw fail('MANIFEST_INVALID', `unsupported manifest media type: ${type.slice(0, 100)}`);
}

function parseImageManifest(json: Record<string, unknown>, type: string): ParsedManifest {
  if ('manifests' in json) throw fail('MANIFEST_INVALID', `an image index cannot be pushed as ${type}`);
  const manifest = validate(imageManifest, json);
  if (type === MediaTypes.dockerManifest && manifest.mediaType !== type) {
    throw fail('MANIFEST_INVALID', `a Docker schema 2 manifest must declare mediaType ${type}`);
  }
  const layers = manifest.layers.filter((layer) => !(layer.urls?.length && FOREIGN_LAYER.test(layer.mediaType)));
  return {
    mediaType: type,
    config: manifest.config,
    blobs: [manifest.config.digest, ...layers.map((layer) => layer.digest)],
    manifests: [],
    subject: manifest.subject?.digest,
    artifactType: manifest.artifactType ?? manifest.config.mediaType,
    annotations: manifest.annotations,
  };
}

function parseImageIndex(json: Record<string, unknown>, type: string): ParsedManifest {
  if ('layers' in json || 'config' in json) throw fail('MANIFEST_INVALID', `an image manifest cannot be pushed as ${type}`);
  const index = validate(imageIndex, json);
  return {
    mediaType: type,
    blobs: [],
    manifests: index.manifests.map((child) => child.digest),
    subject: index.subject?.digest,
    artifactType: index.artifactType,
    annotations: index.annotations,
  };
}

function parseJson(bytes: Uint8Array): Record<string, unknown> {
  const text = Buffer.from(bytes).toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw fail('MANIFEST_INVALID', `manifest is not valid JSON: ${(error as Error).message.slice(0, 200)}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw fail('MANIFEST_INVALID', 'manifest must be a JSON object');
  }
  // JSON.parse keeps the last of duplicate keys, other parsers the first: a manifest that means
  // one thing to Berth and another to a client or scanner is refused (RFC 8259 §4 "SHOULD be unique").
  const duplicate = duplicateKey(text);
  if (duplicate !== undefined) throw fail('MANIFEST_INVALID', `manifest has a duplicate key: ${JSON.stringify(duplicate.slice(0, 100))}`);
  return json as Record<string, unknown>;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * The first object key that occurs twice in one object of `text`, at any depth, or undefined.
 * `text` must be valid JSON (checked by JSON.parse first): this only tracks structure. Keys are
 * compared after unescaping, so `"a"` and `"\u0061"` are the same key. One pass, no allocation
 * but the key sets: a 4 MiB manifest takes milliseconds.
 */
export function duplicateKey(text: string): string | undefined {
  // One entry per open container: the keys seen so far of an object, null for an array.
  const open: (Set<string> | null)[] = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const start = i;
      let escaped = false;
      for (i++; text.charCodeAt(i) !== QUOTE; i++) {
        if (text.charCodeAt(i) === BACKSLASH) {
          escaped = true;
          i++;
        }
      }
      if (!expectKey) continue;
      const key = escaped ? (JSON.parse(text.slice(start, i + 1)) as string) : text.slice(start + 1, i);
      const keys = open[open.length - 1]!;
      if (keys.has(key)) return key;
      keys.add(key);
      expectKey = false;
    } else if (c === 0x7b /* { */) {
      open.push(new Set());
      expectKey = true;
    } else if (c === 0x5b /* [ */) {
      open.push(null);
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      open.pop();
    } else if (c === 0x2c /* , */) {
      expectKey = open[open.length - 1] !== null;
    }
  }
  return undefined;
}

/** Without `Content-Type` or `mediaType`, the shape decides (as image-spec allows for OCI types). */
function inferType(json: Record<string, unknown>): string {
  return 'manifests' in json ? MediaTypes.ociIndex : MediaTypes.ociManifest;
}

function validate<T>(schema: z.ZodMiniType<T>, json: unknown): T {
  const result = schema.safeParse(json);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  throw fail('MANIFEST_INVALID', `manifest invalid at ${issue.path.join('.') || '(root)'}: ${issue.message}`, {
    issues: result.error.issues.slice(0, 5).map((i) => ({ path: i.path.join('.'), message: i.message })),
  });
}
