// A real S3-compatible server (s3rver) on a loopback port of its own, for the model store and cache-tier
// tests, with the S3 options that reach it.
import type { Server } from "node:http";
// @ts-expect-error s3rver ships no type declarations
import S3rver from "s3rver";

export interface LocalS3 {
  port: number;
  /** Options for the project's S3 clients: path-style, s3rver's built-in account (it checks SigV4 against it). */
  options: { endpoint: string; region: string; forcePathStyle: true; credentials: { accessKeyId: string; secretAccessKey: string } };
  /** s3rver's HTTP server, to watch the requests it receives. */
  httpServer: Server;
  close(): Promise<void>;
}

/** Starts s3rver storing into `directory` with `buckets` created. */
export async function startS3rver(directory: string, buckets: string[]): Promise<LocalS3> {
  const server = new S3rver({ port: 0, address: "127.0.0.1", silent: true, directory, configureBuckets: buckets.map((name) => ({ name })) }) as {
    run(): Promise<{ port: number }>;
    close(): Promise<void>;
    httpServer: Server;
  };
  const { port } = await server.run();
  return {
    port,
    options: { endpoint: `http://127.0.0.1:${port}`, region: "auto", forcePathStyle: true, credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" } },
    httpServer: server.httpServer,
    close: () => server.close(),
  };
}
