/**
 * The native metadata store's journal (infra/local/native-store.ts): a process killed with SIGKILL
 * in the middle of writes loses none it acknowledged; a torn last line (a write cut off) is
 * ignored; byte strings survive a restart; compaction keeps the state; a short write after failed
 * compactions loses no acknowledged change; the copy of the DynamoDB emulator's items is all or nothing.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { NativeMetadataStore, nativeJournal } from '../../infra/local/native-store.js';
import { run } from '../e2e/helpers.js';
import { importedTags } from './imported-tags.js';

let dataDir: string;
before(async () => (dataDir = await mkdtemp(join(tmpdir(), 'berth-journal-'))));
after(() => rm(dataDir, { recursive: true, force: true }));

/** Every tag of the test repository, in lexical order. */
async function tags(store: NativeMetadataStore) {
  return (await store.listTags('journal', 1_000_000)).items;
}

/** Asserts that the tags are exactly t0 … t(n-1), each with its index as bytes; returns n. */
async function assertPrefix(store: NativeMetadataStore): Promise<number> {
  const found = await tags(store);
  const indexes = found.map((tag) => Number(tag.tag.slice(1))).sort((a, b) => a - b);
  indexes.forEach((index, position) => assert.equal(index, position, `no gap before t${position}`));
  for (const tag of found) assert.equal(Buffer.from(tag.bytes!).readUInt32LE(0), Number(tag.tag.slice(1)), `bytes of ${tag.tag}`);
  return found.length;
}

test('killed with SIGKILL mid-writes: after a restart the state is a prefix holding every acknowledged write', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/native/journal-writer.ts', dataDir], { stdio: ['ignore', 'pipe', 'inherit'] });
  let acknowledged = -1;
  const killed = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.stdout.setEncoding('utf8').on('data', (text: string) => {
    const lines = text.split('\n').filter(Boolean);
    acknowledged = Math.max(acknowledged, Number(lines.at(-1)));
    if (acknowledged >= 2000 && child.exitCode === null) child.kill('SIGKILL');
  });
  await killed;
  assert.equal(child.signalCode, 'SIGKILL');
  const store = new NativeMetadataStore(nativeJournal(dataDir));
  try {
    const count = await assertPrefix(store);
    assert.ok(count >= acknowledged + 1, `${count} tags, ${acknowledged + 1} acknowledged`);
  } finally {
    NativeMetadataStore.close(store);
  }
});

test('a torn last line is ignored, the journal is compacted, and writes go on after it', async () => {
  const file = nativeJournal(dataDir);
  let store = new NativeMetadataStore(file);
  const before = await assertPrefix(store);
  NativeMetadataStore.close(store);
  await appendFile(file, '{"p":{"pk":"REPO#journal","sk":"TAG#torn","digest":');
  store = new NativeMetadataStore(file);
  assert.equal(await assertPrefix(store), before, 'the torn line changed nothing');
  assert.equal(await store.getTag('journal', 'torn'), undefined);
  await store.putTag({ repository: 'journal', tag: `t${before}`, digest: `sha256:${'b'.repeat(64)}`, mediaType: 'x/y', size: 4, bytes: Buffer.from(new Uint32Array([before]).buffer), updatedAt: 1 });
  await store.deleteTag('journal', 't0');
  NativeMetadataStore.close(store);
  const text = await readFile(file, 'utf8');
  assert.ok(text.endsWith('\n') && !text.includes('"torn"'), 'compaction dropped the torn line');
  store = new NativeMetadataStore(file);
  try {
    const found = await tags(store);
    assert.equal(found.length, before, 'one put and one delete after the compaction');
    assert.equal(await store.getTag('journal', 't0'), undefined);
    assert.equal(Buffer.from((await store.getTag('journal', `t${before}`))!.bytes!).readUInt32LE(0), before);
  } finally {
    NativeMetadataStore.close(store);
  }
});

test('a damaged line before the last one stops the store with a message naming the file', async () => {
  const file = nativeJournal(dataDir);
  await appendFile(file, 'not json\n{"d":["REPO#journal","TAG#t1"]}\n');
  assert.throws(() => new NativeMetadataStore(file), /metadata\.journal is damaged at line \d+/);
});

test('a running store compacts its journal once it has grown: rewrites of one item stay one line', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'berth-compact-'));
  try {
    const file = nativeJournal(dir);
    let store = new NativeMetadataStore(file, 10_000);
    const session = { id: 'u1', repository: 'r', dataKey: 'blobs/u1', offset: 0, parts: [], tailSize: 0, version: 0, createdAt: 1, expiresAt: 2 };
    await store.createUpload(session);
    for (let version = 1; version <= 2000; version++) {
      await store.leaseUpload('u1', 'me', 0, 1);
      await store.commitUpload({ ...session, offset: version, hashState: 'x'.repeat(200), version }, 'me');
    }
    assert.ok((await stat(file)).size < 20_000, `the journal holds ${(await stat(file)).size} bytes`);
    NativeMetadataStore.close(store);
    store = new NativeMetadataStore(file);
    assert.equal((await store.getUpload('u1'))!.offset, 2000, 'the last commit');
    NativeMetadataStore.close(store);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('opening the journal removes compaction files a killed process left', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'berth-leftover-'));
  try {
    const leftover = `${nativeJournal(dir)}.999999.tmp`;
    await writeFile(leftover, 'half a snapshot');
    NativeMetadataStore.close(new NativeMetadataStore(nativeJournal(dir)));
    assert.equal(existsSync(leftover), false);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a short write after failed compactions cuts off only the torn change: every acknowledged put survives', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'berth-short-'));
  try {
    // ulimit -f: 24 KiB at most per file, so a write crossing it is short (Node ignores SIGXFSZ).
    const result = await run('bash', ['-c', `ulimit -f 24; exec "${process.execPath}" --import tsx test/native/short-write-writer.ts "${dir}"`]);
    const lines = result.stdout.trim().split('\n');
    assert.match(lines.at(-1)!, /^failed: /, result.output);
    const acknowledged = lines.length - 1;
    assert.ok(acknowledged > 50, `${acknowledged} puts before the limit`);
    const store = new NativeMetadataStore(nativeJournal(dir));
    try {
      assert.equal(await assertPrefix(store), acknowledged, 'each acknowledged put, and nothing else');
    } finally {
      NativeMetadataStore.close(store);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/** Runs the import writer on `dir` with `count` tags and kills it with SIGKILL the moment `file` exists; asserts that it was killed. */
async function importKilledAt(dir: string, count: number, file: string): Promise<void> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/native/import-writer.ts', dir, String(count)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const watch = setInterval(() => existsSync(file) && child.kill('SIGKILL'), 1);
  await exited;
  clearInterval(watch);
  assert.equal(child.signalCode, 'SIGKILL', `killed once ${file} existed`);
}

test('the copy of the DynamoDB emulator\'s items is all or nothing: killed while copying, the next start copies again', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'berth-import-'));
  const count = 100_000;
  try {
    const file = nativeJournal(dir);
    await importKilledAt(dir, count, `${file}.import`);
    assert.equal(existsSync(file), false, 'no journal while the copy is not whole');
    await importKilledAt(dir, count, file);
    const { store, imported } = await NativeMetadataStore.openOrImport(file, async () => importedTags(count));
    try {
      assert.equal(imported, 0, 'the journal, once there, is whole: not copied again');
      assert.equal((await store.listTags('imported', count + 1)).items.length, count, 'every item');
    } finally {
      NativeMetadataStore.close(store);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
