// docxy binaries as nodes of a fleet (issue 16) on loopback: each with its own cache directory
// (its store, or with a bucket its spool), advertising the port it was told to listen on, all
// with one shared secret.
import { docxyToken, newCacheDir } from "./cache/harness";
import { startDocxy, type Docxy } from "./docxy-process";
import { freePort } from "./ports";
import type { Swift } from "./swift";

export const FLEET_SECRET = "the-fleet-secret-of-the-fleet-tests-0123";

/** Where a node's blobs live: its own directory (the default) or one bucket of a real Swift shared by the nodes given the same. */
export interface NodeStorage {
  swift: Swift;
  bucket: string;
}

/**
 * A fleet node on `registry` (a `[registry]` TOML section): it must know its own port beforehand,
 * to advertise it. `fleet` adds lines to its `[fleet]` section (e.g. `on_unreachable = "exit"`).
 */
export async function startNode(registry: string, redisUrl: string, options: { storage?: NodeStorage; fleet?: string } = {}): Promise<Docxy> {
  const port = await freePort();
  const config = `${registry}${s3Toml(options.storage)}[fleet]\nredis_url = "${redisUrl}"\nadvertise_url = "http://127.0.0.1:${port}"\nsecret = "${FLEET_SECRET}"\n${options.fleet ?? ""}`;
  const keys: Record<string, string> = options.storage
    ? { AWS_ACCESS_KEY_ID: options.storage.swift.accessKeyId, AWS_SECRET_ACCESS_KEY: options.storage.swift.secretAccessKey }
    : {};
  return startDocxy({ config, args: ["--http-port", String(port)], env: { DOCXY_CACHE_DIR: newCacheDir(), ...keys } });
}

/** The `[cache]` lines of a node on a bucket (keys from the environment, as in production); none on its own disk. */
function s3Toml(storage: NodeStorage | undefined): string {
  if (!storage) return "";
  const { swift, bucket } = storage;
  return `[cache]\nstorage = "s3"\n[cache.s3]\nendpoint = "${swift.endpoint}"\nbucket = "${bucket}"\nregion = "${swift.region}"\n`;
}

/** A blob GET through `node` with the token its realm hands an anonymous client. */
export async function getBlob(node: Docxy, repository: string, digest: string, headers: Record<string, string> = {}): Promise<Response> {
  const authorization = `Bearer ${await docxyToken(node.url, repository)}`;
  return fetch(`${node.url}/v2/${repository}/blobs/${digest}`, { headers: { authorization, ...headers } });
}

export interface NodeHealth {
  status: string;
  fleet?: { coordination: string };
  cache?: { storage: string; state: string; reason?: string };
}

/** The node's /health: its status, its storage and, in a fleet, how it coordinates. */
export async function health(node: Docxy): Promise<NodeHealth> {
  return (await fetch(`${node.url}/health`)).json() as Promise<NodeHealth>;
}
