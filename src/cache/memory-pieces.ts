/**
 * A fill's bytes kept in memory: the chunks as the upstream sent them, in
 * order, each at its offset in the blob. Readers get views into them
 * (`subarray`), so every client following a fill shares one copy.
 */
export interface Piece {
  offset: number;
  bytes: Uint8Array;
}

export class MemoryPieces {
  private pieces: Piece[] = [];
  private held = 0;

  /** Bytes held. */
  get size(): number {
    return this.held;
  }

  /** Where the bytes held begin (undefined when none is held): earlier ones are gone. */
  get from(): number | undefined {
    return this.pieces[0]?.offset;
  }

  /** Appends the chunk at `offset` (the end of the previous one). */
  push(offset: number, bytes: Uint8Array): void {
    this.pieces.push({ offset, bytes });
    this.held += bytes.length;
  }

  /** Up to `length` bytes at `position`, a view into the piece holding it; undefined when none does. */
  slice(position: number, length: number): Uint8Array | undefined {
    const piece = this.pieces.find((p) => position >= p.offset && position < p.offset + p.bytes.length);
    if (!piece) return undefined;
    const from = position - piece.offset;
    return piece.bytes.subarray(from, Math.min(piece.bytes.length, from + length));
  }

  /** Drops the oldest pieces for as long as `drop` says so (given the oldest, the bytes held and the pieces left). */
  dropOldestWhile(drop: (oldest: Piece, held: number, count: number) => boolean): void {
    while (this.pieces.length > 0 && drop(this.pieces[0]!, this.held, this.pieces.length)) {
      this.held -= this.pieces.shift()!.bytes.length;
    }
  }

  /** Drops every piece that ends at or before `position` (nobody needs bytes before it). */
  dropBefore(position: number): void {
    this.dropOldestWhile((oldest) => oldest.offset + oldest.bytes.length <= position);
  }

  clear(): void {
    this.pieces = [];
    this.held = 0;
  }
}
