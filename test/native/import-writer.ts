/**
 * A writer for the import test: opens the native store on the data folder argv[2] as a first
 * native start of a folder the DynamoDB emulator served does, with argv[3] tags of repository
 * `imported` as the emulator's items; prints `opened` once the store is open.
 */
import { NativeMetadataStore, nativeJournal } from '../../infra/local/native-store.js';
import { importedTags } from './imported-tags.js';

const { store } = await NativeMetadataStore.openOrImport(nativeJournal(process.argv[2]), async () => importedTags(Number(process.argv[3])));
NativeMetadataStore.close(store);
process.stdout.write('opened\n');
