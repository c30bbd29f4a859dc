// docxy binaries as nodes of a fleet (issue 16) on loopback: each with its own cache directory,
// advertising the port it was told to listen on, all with one shared secret.
import { docxyToken, newCacheDir } from "./cache/harness";
import { startDocxy, type Docxy } from "./docxy-process";
import { freePort } from "./ports";

export const FLEET_SECRET = "the-fleet-secret-of-the-fleet-tests-0123";

/** A fleet node on `registry` (a `[registry]` TOML section): it must know its own port beforehand, to advertise it. */
export async function startNode(registry: string, redisUrl: string): Promise<Docxy> {
  const port = await freePort();
  const config = `${registry}[fleet]\nredis_url = "${redisUrl}"\nadvertise_url = "http://127.0.0.1:${port}"\nsecret = "${FLEET_SECRET}"\n`;
  return startDocxy({ config, args: ["--http-port", String(port)], env: { DOCXY_CACHE_DIR: newCacheDir() } });
}

/** A blob GET through `node` with the token its realm hands an anonymous client. */
export async function getBlob(node: Docxy, repository: string, digest: string, headers: Record<string, string> = {}): Promise<Response> {
  const authorization = `Bearer ${await docxyToken(node.url, repository)}`;
  return fetch(`${node.url}/v2/${repository}/blobs/${digest}`, { headers: { authorization, ...headers } });
}

/** The node's /health: its status and, in a fleet, how it coordinates. */
export async function health(node: Docxy): Promise<{ status: string; fleet?: { coordination: string } }> {
  return (await fetch(`${node.url}/health`)).json() as Promise<{ status: string; fleet?: { coordination: string } }>;
}
