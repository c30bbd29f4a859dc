/**
 * Cache hits sent to the fleet's bucket (`[cache.s3] presigned_redirect`, issue 16): a GET of a
 * blob this node would stream from the bucket answers 307 to a short-lived presigned URL of its
 * object instead, as CNCF distribution does with S3 storage (unless `storage.redirect.disable`),
 * so the bytes go from the bucket to the client and not through the node. Docker, containerd and
 * skopeo follow a blob GET's redirect and resend `Range` there.
 *
 * The access checks run first, here, as for any hit; the URL then is a bearer credential for the
 * blob until it expires, so it is short-lived and never logged. A blob on this node's disk (a hot
 * tier copy) is still served by the node: that is faster than a round trip to the bucket.
 */

/** The bucket that signs (S3Storage.presign). */
export interface Presigner {
  presign(digest: string, expiresInSeconds: number): string;
}

export class PresignedRedirects {
  private readonly ttlSeconds: number;

  constructor(
    private readonly bucket: Presigner,
    /** `[cache.s3] presigned_ttl`, in milliseconds (1 s to 7 days, config/validate.ts). */
    ttlMs: number,
  ) {
    this.ttlSeconds = Math.floor(ttlMs / 1000);
  }

  /** Where a client that passed the access checks reads `digest` (a fresh URL on every call). */
  location(digest: string): string {
    return this.bucket.presign(digest, this.ttlSeconds);
  }
}
