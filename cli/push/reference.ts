/**
 * Image references of `berth push`: `<registry>/<repository>[:<tag>]`, where the registry is
 * a host name with a dot or a port, `localhost`, or an IPv6 literal in brackets
 * (`127.0.0.1:5000/team/app:1.0`, `registry.example.com/app`). The tag defaults to `latest`.
 */
import { isRepositoryName, isTag } from '../../functions/core/grammar.js';

export interface ImageReference {
  /** `host[:port]` as written (credentials and tokens are looked up under it). */
  registry: string;
  repository: string;
  tag: string;
}

/** A mistake in what the user typed: printed without a stack. */
export class PushUsageError extends Error {}

/**
 * Parses `text`.
 * @throws PushUsageError without a registry host, with a digest, or with an invalid name or tag.
 */
export function parseImageReference(text: string): ImageReference {
  const slash = text.indexOf('/');
  const first = slash < 0 ? '' : text.slice(0, slash);
  if (!first || !(first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('['))) {
    throw new PushUsageError(`name the registry in the image reference, e.g. localhost:5000/${text || 'team/app:1.0'}`);
  }
  let rest = text.slice(slash + 1);
  if (rest.includes('@')) throw new PushUsageError('push by tag, not by digest (the digest is printed after the push)');
  let tag = 'latest';
  const colon = rest.lastIndexOf(':');
  if (colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  if (!isRepositoryName(rest)) throw new PushUsageError(`invalid repository name: ${rest}`);
  if (!isTag(tag)) throw new PushUsageError(`invalid tag: ${tag}`);
  return { registry: first, repository: rest, tag };
}

/** Whether `registry` (`host[:port]`) is this machine: plain HTTP is then used by default. */
export function isLoopback(registry: string): boolean {
  const host = registry.startsWith('[') ? registry.slice(0, registry.indexOf(']') + 1) : registry.replace(/:\d+$/, '');
  return host === 'localhost' || /^127\.\d+\.\d+\.\d+$/.test(host) || host === '[::1]';
}

/** `http://<registry>` for loopback registries or with `insecure`, else `https://<registry>`. */
export function registryBaseUrl(registry: string, insecure = false): string {
  return `${insecure || isLoopback(registry) ? 'http' : 'https'}://${registry}`;
}

/** `registry/repository:tag`. */
export function formatReference(ref: ImageReference): string {
  return `${ref.registry}/${ref.repository}:${ref.tag}`;
}
