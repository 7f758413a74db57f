/**
 * A writer for the journal test, run with a small file size limit (`ulimit -f`): opens the native
 * store on the data folder argv[2] with a small compaction threshold, makes every compaction fail
 * (a folder where its temporary file goes), then puts tags `t0`, `t1`, … printing each index once
 * acknowledged, until a put fails (the limit: a short write, then EFBIG).
 */
import { mkdirSync, rmdirSync } from 'node:fs';
import { NativeMetadataStore, nativeJournal } from '../../infra/local/native-store.js';

const file = nativeJournal(process.argv[2]);
const store = new NativeMetadataStore(file, 1000);
const blocked = [`${file}.tmp`, `${file}.${process.pid}.tmp`];
for (const temporary of blocked) mkdirSync(temporary);
const digest = `sha256:${'a'.repeat(64)}` as const;
const lines: string[] = [];
try {
  for (let i = 0; ; i++) {
    await store.putTag({ repository: 'journal', tag: `t${i}`, digest, mediaType: 'x/y', size: 4, bytes: new Uint8Array(new Uint32Array([i]).buffer), updatedAt: i });
    lines.push(String(i));
  }
} catch (error) {
  lines.push(`failed: ${(error as Error).message}`);
}
for (const temporary of blocked) rmdirSync(temporary);
process.stdout.write(`${lines.join('\n')}\n`);
