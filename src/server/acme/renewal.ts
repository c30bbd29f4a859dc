/**
 * When to order a certificate. Pure functions, so the policy is testable
 * without a CA.
 *
 * Renewal starts when less than a third of the lifetime is left: 30 days
 * for Let's Encrypt's 90-day certificates (what certbot and Caddy do), 2
 * days for its 6-day ones; the rest of that window leaves room for retries
 * while the CA is down.
 */
import type { X509Certificate } from "node:crypto";
import { isIP } from "node:net";

export const DEFAULT_RENEW_FRACTION = 1 / 3;

/** The moment the certificate is due for renewal. */
export function renewalTime(certificate: X509Certificate, renewFraction = DEFAULT_RENEW_FRACTION): Date {
  const notBefore = certificate.validFromDate.getTime();
  const notAfter = certificate.validToDate.getTime();
  return new Date(notAfter - (notAfter - notBefore) * renewFraction);
}

/** True when the certificate is valid for every name (DNS name or IP address). */
export function coversNames(certificate: X509Certificate, names: readonly string[]): boolean {
  return names.every((name) =>
    isIP(name) ? certificate.checkIP(name) !== undefined : certificate.checkHost(name) !== undefined,
  );
}

export interface Wanted {
  names: readonly string[];
  directoryUrl: string;
}

/**
 * Why a new certificate must be ordered *before* HTTPS can serve, or
 * undefined when the stored one can serve now (renewal, if due, then runs
 * in the background).
 */
export function whyIssueNow(
  stored: { certificate: X509Certificate; directoryUrl: string | undefined } | undefined,
  wanted: Wanted,
  now = new Date(),
): string | undefined {
  if (!stored) return "no certificate stored";
  if (stored.certificate.validToDate <= now) return "the stored certificate has expired";
  if (!coversNames(stored.certificate, wanted.names)) return "the stored certificate does not cover every name in acme_domains";
  // Moving from a staging CA to the real one must not keep serving the staging certificate.
  if (stored.directoryUrl !== wanted.directoryUrl) return "the stored certificate comes from another ACME directory";
  return undefined;
}
