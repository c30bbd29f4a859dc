/**
 * Deadlines on client connections, which Bun's node:http accepts as
 * `headersTimeout` and `keepAliveTimeout` and then ignores (checked on Bun
 * 1.4.5: a client sending its request head a header at a time, a socket that
 * never sends a byte, and an idle keep-alive connection all stayed open
 * indefinitely). Without them any anonymous client can hold sockets, and so
 * file descriptors, for as long as it likes.
 *
 * - From the connection's start until its first request head is complete:
 *   `headMs`.
 * - Between the end of a response and the next request head: `idleMs` (the
 *   keep-alive period, with that next head inside it).
 * - While a request is being served: none here. A slow download is governed
 *   by the upstream's idle timeout and by backpressure, and a request body by
 *   `[server] request_body_timeout` (node-bridge.ts).
 */
import type { Server } from "node:http";
import type { Socket } from "node:net";

export interface ConnectionDeadlines {
  headMs: number;
  idleMs: number;
}

/** `secure`: an HTTPS listener, whose client sockets appear at `secureConnection` (after the handshake). */
export function enforceConnectionDeadlines(listener: Server, deadlines: ConnectionDeadlines, secure: boolean): void {
  const timers = new WeakMap<Socket, ReturnType<typeof setTimeout>>();
  const disarm = (socket: Socket) => clearTimeout(timers.get(socket));
  const arm = (socket: Socket, ms: number) => {
    disarm(socket);
    timers.set(
      socket,
      setTimeout(() => socket.destroy(), ms),
    );
  };
  listener.on(secure ? "secureConnection" : "connection", (socket: Socket) => {
    arm(socket, deadlines.headMs);
    socket.once("close", () => disarm(socket));
  });
  listener.on("request", (request, response) => {
    const socket = request.socket as Socket;
    disarm(socket);
    response.once("finish", () => {
      if (!socket.destroyed) arm(socket, deadlines.idleMs);
    });
  });
}
