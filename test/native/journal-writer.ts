/**
 * A writer for the journal test: opens the native store on the data folder argv[2] and puts tags
 * `t0`, `t1`, … (each with its index as manifest bytes) one after the other, printing each index
 * once its put is acknowledged, until it is killed.
 */
import { once } from 'node:events';
import { NativeMetadataStore, nativeJournal } from '../../infra/local/native-store.js';

const store = new NativeMetadataStore(nativeJournal(process.argv[2]));
const digest = `sha256:${'a'.repeat(64)}` as const;
for (let i = 0; ; i++) {
  await store.putTag({ repository: 'journal', tag: `t${i}`, digest, mediaType: 'x/y', size: 4, bytes: new Uint8Array(new Uint32Array([i]).buffer), updatedAt: i });
  // The puts never wait for I/O: without this the event loop would never run to send the indexes.
  if (!process.stdout.write(`${i}\n`)) await once(process.stdout, 'drain');
}
