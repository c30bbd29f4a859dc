/**
 * One certificate order (RFC 8555 §7.4), HTTP-01 only, on acme-client's
 * protocol layer.
 *
 * acme-client's `auto()` is not used because it declares every identifier
 * as `dns` (an IP address needs `ip`, RFC 8738) and, unless told otherwise,
 * first fetches the challenge itself from port 80 of the name, which fails
 * behind NAT without hairpinning and in tests. The steps are few, and here
 * each failure names the identifier and the CA's reason.
 *
 * Tested against a real ACME CA (Pebble): tests/server/acme/pebble.test.ts.
 */
import * as acme from "acme-client";
import { isIP } from "node:net";
import type { Http01Challenges } from "./challenges";

export interface Issued {
  /** PEM chain, leaf first. */
  cert: string;
  /** PEM private key of the leaf (EC P-256, fresh for every order). */
  key: string;
}

export async function orderCertificate(client: acme.Client, names: readonly string[], challenges: Http01Challenges): Promise<Issued> {
  const identifiers = names.map((value) => ({ type: isIP(value) ? "ip" : "dns", value }));
  const order = await client.createOrder({ identifiers });
  const authorizations = await client.getAuthorizations(order);
  // In parallel: the CA validates each name independently.
  await Promise.all(authorizations.map((authz) => authorize(client, authz, challenges)));
  await client.waitForValidStatus(order); // "ready": every authorization is valid

  // A fresh key per certificate: a leaked old key dies with its certificate.
  const key = await acme.crypto.createPrivateEcdsaKey();
  // No commonName: it is optional, limited to 64 characters, and not allowed for IP-only certificates.
  const [, csr] = await acme.crypto.createCsr({ altNames: [...names] }, key);
  const finalized = await client.finalizeOrder(order, csr);
  const cert = await client.getCertificate(finalized);
  return { cert, key: key.toString() };
}

async function authorize(client: acme.Client, authz: acme.Authorization, challenges: Http01Challenges): Promise<void> {
  const name = `${authz.identifier.type}:${authz.identifier.value}`;
  if (authz.status === "valid") return; // the CA reused an earlier authorization
  const challenge = authz.challenges.find((c) => c.type === "http-01");
  if (!challenge || !("token" in challenge)) throw new Error(`ACME: the CA offers no http-01 challenge for ${name}`);
  const keyAuthorization = await client.getChallengeKeyAuthorization(challenge);
  challenges.add(challenge.token, keyAuthorization);
  let completed = false;
  try {
    await client.completeChallenge(challenge);
    completed = true;
    await client.waitForValidStatus(challenge);
  } catch (error) {
    if (!completed) {
      // Best effort: a pending authorization that we gave up on should not linger at the CA.
      await client.deactivateAuthorization(authz).catch(() => undefined);
    }
    throw new Error(`ACME: http-01 validation of ${name} failed: ${(error as Error).message}`);
  } finally {
    challenges.remove(challenge.token);
  }
}
