// A minimal POSIX ustar writer: enough for image layers that docker, containerd and podman
// unpack (regular files and directories, fixed owner and mtime so digests are reproducible).

export interface TarEntry {
  /** relative path, "/"-separated; a directory entry should end with "/" */
  path: string;
  /** file content; omit for a directory */
  content?: Uint8Array | string;
  mode?: number;
}

const BLOCK = 512;
const MTIME = 1_700_000_000; // fixed: the same content always gives the same digest
const encoder = new TextEncoder();

function writeString(buf: Uint8Array, offset: number, length: number, value: string): void {
  const bytes = encoder.encode(value);
  if (bytes.length > length) throw new Error(`tar field too long: ${value}`);
  buf.set(bytes, offset);
}

/** Octal numeric field: zero-padded digits followed by NUL, as ustar wants. */
function writeOctal(buf: Uint8Array, offset: number, length: number, value: number): void {
  writeString(buf, offset, length, value.toString(8).padStart(length - 1, "0") + "\0");
}

/** The 512-byte header of one entry. */
export function tarHeader(path: string, size: number, type: "file" | "dir", mode?: number): Uint8Array {
  const h = new Uint8Array(BLOCK);
  // Names over 100 bytes go in the 155-byte prefix field, split at a "/".
  let name = path;
  let prefix = "";
  if (encoder.encode(path).length > 100) {
    const cut = path.lastIndexOf("/", 155);
    prefix = path.slice(0, cut);
    name = path.slice(cut + 1);
  }
  writeString(h, 0, 100, name);
  writeOctal(h, 100, 8, mode ?? (type === "dir" ? 0o755 : 0o644));
  writeOctal(h, 108, 8, 0); // uid
  writeOctal(h, 116, 8, 0); // gid
  writeOctal(h, 124, 12, size);
  writeOctal(h, 136, 12, MTIME);
  h.fill(0x20, 148, 156); // checksum is computed with its own field as spaces
  h[156] = type === "dir" ? 0x35 : 0x30; // '5' directory, '0' regular file
  writeString(h, 257, 6, "ustar\0");
  writeString(h, 263, 2, "00");
  writeString(h, 265, 32, "root");
  writeString(h, 297, 32, "root");
  writeString(h, 345, 155, prefix);
  const sum = h.reduce((a, b) => a + b, 0);
  writeString(h, 148, 8, sum.toString(8).padStart(6, "0") + "\0 ");
  return h;
}

/** Zero bytes that pad `size` bytes of content to a whole block. */
export function tarPadding(size: number): Uint8Array {
  return new Uint8Array((BLOCK - (size % BLOCK)) % BLOCK);
}

/** Two zero blocks end an archive. */
export const TAR_END = new Uint8Array(2 * BLOCK);

/** A whole archive in memory (small layers only; big ones are streamed, see images.ts). */
export function tar(entries: TarEntry[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const entry of entries) {
    if (entry.content === undefined) {
      parts.push(tarHeader(entry.path, 0, "dir", entry.mode));
      continue;
    }
    const data = typeof entry.content === "string" ? encoder.encode(entry.content) : entry.content;
    parts.push(tarHeader(entry.path, data.length, "file", entry.mode), data, tarPadding(data.length));
  }
  parts.push(TAR_END);
  return Buffer.concat(parts);
}
