/**
 * The usual integration set-up: the real upstream (distribution 2.8 + token
 * server + CDN) with the docxy binary in front of it as its Docker Hub.
 */
import { startDocxy, type Docxy } from "./docxy-process";
import { registryToml, startUpstream, type StartOptions, type Upstream } from "./upstream";

export interface ProxiedUpstream {
  upstream: Upstream;
  docxy: Docxy;
  /** host:port of docxy, as clients write it in image references */
  host: string;
  stop(): Promise<void>;
}

/**
 * `extraConfig` is appended to the generated TOML (sections other than [registry]).
 * The upstream's token service and CDN answer docxy only (`onlyThroughProxy`).
 */
export async function startProxiedUpstream(options: StartOptions = {}, extraConfig = ""): Promise<ProxiedUpstream> {
  const upstream = await startUpstream({ onlyThroughProxy: true, ...options });
  try {
    const docxy = await startDocxy({
      config: `${registryToml(upstream)}${extraConfig}`,
    });
    return {
      upstream,
      docxy,
      host: new URL(docxy.url).host,
      async stop() {
        await docxy.stop();
        await upstream.stop();
      },
    };
  } catch (error) {
    await upstream.stop();
    throw error;
  }
}

export const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

export function sha256(bytes: ArrayBuffer | Uint8Array): string {
  return `sha256:${new Bun.CryptoHasher("sha256").update(bytes).digest("hex")}`;
}

/** Response JSON, untyped: tests assert on its shape. */
export const json = (response: Response): Promise<any> => response.json();
