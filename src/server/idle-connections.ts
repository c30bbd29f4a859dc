/**
 * Client connections that are not serving a request: deadlines for them,
 * and their end when docxy stops.
 *
 * Deadlines: Bun's node:http accepts `headersTimeout` and `keepAliveTimeout`
 * and ignores them (checked on Bun 1.4.5: a client sending its request head
 * a header at a time, a socket that never sends a byte, and an idle
 * keep-alive connection all stayed open indefinitely), so any anonymous
 * client could hold sockets, and so file descriptors, as long as it liked.
 * - From the connection's start until its first request head is complete:
 *   `headMs`.
 * - Between the end of a response and the next request head: `idleMs` (the
 *   keep-alive period, with that next head inside it).
 * - While a request is being served: none here. A slow download is governed
 *   by the upstream's idle timeout and by backpressure, and a request body by
 *   `[server] request_body_timeout` (node-bridge.ts).
 *
 * Draining: on SIGTERM the server stops accepting, and the connections it
 * has must end for it to close. Idle ones are closed at once, and every
 * other one as soon as its response is out; a keep-alive client finishing a
 * download during the grace period would otherwise keep the process alive
 * until the grace period ends.
 */
import type { Server } from "node:http";
import type { Socket } from "node:net";

export interface IdleDeadlines {
  headMs: number;
  idleMs: number;
}

export interface IdleConnections {
  /** Closes the idle connections now, and each other one once its response is out. */
  drain(): void;
}

/** `secure`: an HTTPS listener, whose client sockets appear at `secureConnection` (after the handshake). */
export function manageIdleConnections(listener: Server, deadlines: IdleDeadlines, secure: boolean): IdleConnections {
  const timers = new Map<Socket, ReturnType<typeof setTimeout>>(); // the idle sockets
  let draining = false;
  const busy = (socket: Socket) => {
    clearTimeout(timers.get(socket));
    timers.delete(socket);
  };
  const idle = (socket: Socket, ms: number) => {
    busy(socket);
    if (draining) return void socket.destroy();
    timers.set(
      socket,
      setTimeout(() => socket.destroy(), ms),
    );
  };
  listener.on(secure ? "secureConnection" : "connection", (socket: Socket) => {
    idle(socket, deadlines.headMs);
    socket.once("close", () => busy(socket));
  });
  listener.on("request", (request, response) => {
    const socket = request.socket as Socket;
    busy(socket);
    // "finish": the whole response has been handed to the operating system.
    response.once("finish", () => {
      if (!socket.destroyed) idle(socket, deadlines.idleMs);
    });
  });
  return {
    drain() {
      draining = true;
      for (const socket of [...timers.keys()]) socket.destroy();
    },
  };
}
