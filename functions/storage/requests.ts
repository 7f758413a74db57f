/** Request counting for the storage clients (the garbage collector's report). */
/**
 * Counts the requests a client sends (every attempt, retries included, as AWS bills them); returns
 * the running total. A middleware at the finalize step sees each attempt once.
 */
export function countRequests(client: { middlewareStack: { add: (m: never, o: { step: 'finalizeRequest'; name: string }) => void } }): () => number {
  let count = 0;
  const middleware = (next: (args: unknown) => Promise<unknown>) => (args: unknown) => {
    count++;
    return next(args);
  };
  client.middlewareStack.add(middleware as never, { step: 'finalizeRequest', name: 'berthCountRequests' });
  return () => count;
}
