import type { Item } from '../../functions/storage/dynamodb.js';

/** `count` tag items of the repository `imported`, as the DynamoDB table holds them. */
export function importedTags(count: number): Item[] {
  return Array.from({ length: count }, (_, i) => ({ pk: 'REPO#imported', sk: `TAG#t${i}`, digest: `sha256:${'c'.repeat(64)}`, mediaType: 'x/y', size: 4, updatedAt: i }));
}
