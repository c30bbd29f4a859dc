/**
 * `Range: bytes=…` for cached blobs (RFC 9110 §14). One range only: registry
 * clients never ask for several, and a multipart answer would break them.
 */
export type ByteRange = [start: number, end: number];

/** undefined: serve the whole blob (no header, or one we do not understand, which RFC 9110 lets us ignore). */
export function parseRange(header: string | null, size: number): ByteRange | "unsatisfiable" | undefined {
  if (header === null) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match || (match[1] === "" && match[2] === "")) return undefined;
  if (match[1] === "") {
    const suffix = Number(match[2]);
    if (suffix === 0) return "unsatisfiable";
    return [Math.max(0, size - suffix), size - 1];
  }
  const start = Number(match[1]);
  const end = match[2] === "" ? size - 1 : Math.min(Number(match[2]), size - 1);
  if (start >= size || end < start) return "unsatisfiable";
  return [start, end];
}
