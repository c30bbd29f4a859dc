/**
 * Presigned GET URLs for the fleet's bucket (`[cache.s3] presigned_redirect`, issue 16): AWS
 * Signature Version 4 in the query string, as specified in
 * https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html.
 *
 * Why not Bun's `S3Client.presign`: it leaves the `:` of an access key unencoded in
 * X-Amz-Credential, yet signs as if it were encoded (oven-sh/bun#24422, open). Swift's s3api
 * keys are `account:user` (`test:tester`), and Swift answers every such URL with 403
 * SignatureDoesNotMatch (checked here with Bun 1.4.5). Bun's client still signs the requests
 * docxy itself makes: only the URLs handed to clients are signed here.
 *
 * Only `host` is signed and the payload is UNSIGNED-PAYLOAD: a client may then add any other
 * header, as Docker does with `Range` when it resumes a layer.
 */
import { createHash, createHmac } from "node:crypto";

export interface PresignOptions {
  /** The store's origin, e.g. http://127.0.0.1:8080. */
  endpoint: string;
  /** The object's path, not encoded: `/<bucket>/<key>` path-style, as S3Storage addresses the bucket. */
  path: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** 1 s to 7 days: S3 refuses a longer X-Amz-Expires. */
  expiresInSeconds: number;
  /** The signing time (the URL is valid from then for `expiresInSeconds`). */
  now?: Date;
}

/** A URL that lets anyone holding it GET the object at `path` until it expires. */
export function presignGet(options: PresignOptions): string {
  const { endpoint, region, accessKeyId, secretAccessKey, expiresInSeconds } = options;
  const { origin, host } = new URL(endpoint);
  const timestamp = (options.now ?? new Date()).toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, ""); // 20130524T000000Z
  const date = timestamp.slice(0, 8);
  const scope = `${date}/${region}/s3/aws4_request`;
  // The canonical query string is sorted by name; these names are already in that order.
  const query = [
    ["X-Amz-Algorithm", "AWS4-HMAC-SHA256"],
    ["X-Amz-Credential", `${accessKeyId}/${scope}`],
    ["X-Amz-Date", timestamp],
    ["X-Amz-Expires", String(Math.floor(expiresInSeconds))],
    ["X-Amz-SignedHeaders", "host"],
  ]
    .map(([name, value]) => `${uriEncode(name!)}=${uriEncode(value!)}`)
    .join("&");
  // S3 encodes the object key once, each segment apart: the `/` between them stays.
  const path = options.path.split("/").map(uriEncode).join("/");
  const canonicalRequest = ["GET", path, query, `host:${host}`, "", "host", "UNSIGNED-PAYLOAD"].join("\n");
  const stringToSign = ["AWS4-HMAC-SHA256", timestamp, scope, createHash("sha256").update(canonicalRequest).digest("hex")].join("\n");
  let signingKey: Buffer = hmac(`AWS4${secretAccessKey}`, date);
  for (const part of [region, "s3", "aws4_request"]) signingKey = hmac(signingKey, part);
  const signature = createHmac("sha256", signingKey).update(stringToSign).digest("hex");
  return `${origin}${path}?${query}&X-Amz-Signature=${signature}`;
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac("sha256", key).update(data).digest();
}

/**
 * RFC 3986 percent-encoding of everything but the unreserved characters (A-Z a-z 0-9 - . _ ~),
 * as SigV4 requires: encodeURIComponent leaves `!'()*` as they are, so they are added here.
 */
function uriEncode(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}
