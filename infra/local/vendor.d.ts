// The embedded emulators ship no type declarations; these cover what the local stack uses.
declare module 'dynalite' {
  import type { Server } from 'node:http';
  export default function dynalite(options?: Record<string, unknown>): Server;
}
declare module 's3rver' {
  import type { AddressInfo } from 'node:net';
  import type { IncomingMessage } from 'node:http';
  /** The part of a Koa context the local stack's s3rver middleware uses. */
  export interface S3rverContext {
    req: IncomingMessage;
    method: string;
    status: number;
    length: number | undefined;
    body: unknown;
    params?: { bucket?: string; key?: string; queryMethod?: string };
    store: { getResourcePath(bucket: string, key: string, resource: 'object'): string };
    set(name: string, value: string): void;
  }
  export default class S3rver {
    constructor(options: Record<string, unknown>);
    /** Koa's middleware, in order; the last is s3rver's router. */
    middleware: Array<(ctx: S3rverContext, next: () => Promise<void>) => Promise<void> | void>;
    run(): Promise<AddressInfo>;
    close(): Promise<void>;
  }
}
