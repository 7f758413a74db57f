/**
 * User data through the native store's encoding (journal lines and the RPC endpoint): annotation
 * keys that look like the encoding's own markers (`$bytes`, `$undefined`, `$$x`) come back as they
 * went in; and the endpoint's secret file is the server user's only (mode 0600) even when an older
 * one was readable by others.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Descriptor } from '../../functions/storage/ports.js';
import { NativeMetadataStore, nativeJournal } from '../../infra/local/native-store.js';
import { remoteStore, serveStore } from '../../infra/local/store-rpc.js';

let dataDir: string;
before(async () => (dataDir = await mkdtemp(join(tmpdir(), 'berth-encoding-'))));
after(() => rm(dataDir, { recursive: true, force: true }));

const subject = `sha256:${'1'.repeat(64)}` as const;
const referrer: Descriptor = {
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  digest: `sha256:${'2'.repeat(64)}`,
  size: 10,
  annotations: { $bytes: 'aGVsbG8=', $undefined: '1', $$x: 'two dollars', $: 'one', plain: 'p' },
};

/** The digests and annotations of the referrers listed (what a client sees of them). */
const seen = (descriptors: Descriptor[]) => descriptors.map(({ digest, annotations }) => ({ digest, annotations }));

test('annotation keys starting with $ come back as they went in: from the store, after a restart, and over the endpoint', async () => {
  const file = nativeJournal(dataDir);
  let store = new NativeMetadataStore(file);
  await store.putReferrer('enc', subject, referrer);
  assert.deepEqual(seen(await store.listReferrers('enc', subject)), seen([referrer]), 'from the store');
  NativeMetadataStore.close(store);
  store = new NativeMetadataStore(file);
  const endpoint = await serveStore(store, dataDir);
  try {
    assert.deepEqual(seen(await store.listReferrers('enc', subject)), seen([referrer]), 'after a restart (the journal replayed)');
    const remote = await remoteStore(endpoint.url, dataDir);
    assert.deepEqual(seen(await remote.listReferrers('enc', subject)), seen([referrer]), 'over the endpoint');
    const other = { ...referrer, digest: `sha256:${'3'.repeat(64)}` as const };
    await remote.putReferrer('enc', subject, other);
    assert.deepEqual(seen(await store.listReferrers('enc', subject)), seen([referrer, other]), 'sent over the endpoint');
  } finally {
    await endpoint.close();
    NativeMetadataStore.close(store);
  }
});

test('the endpoint\'s secret file is mode 0600 even when an older one was readable by others', async () => {
  const secret = join(dataDir, 'metadata-secret');
  await writeFile(secret, 'old', { mode: 0o644 });
  const store = new NativeMetadataStore(nativeJournal(dataDir));
  const endpoint = await serveStore(store, dataDir);
  try {
    assert.equal((await stat(secret)).mode & 0o777, 0o600);
  } finally {
    await endpoint.close();
    NativeMetadataStore.close(store);
  }
});
