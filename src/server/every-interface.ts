/**
 * Listening on every interface when `server.bind` is empty: one dual-stack
 * socket on `::`, or `0.0.0.0` where the host has no IPv6.
 */
export async function onEveryInterface<T>(listen: (host: string) => T | Promise<T>): Promise<T> {
  try {
    return await listen("::");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== "EAFNOSUPPORT" && code !== "EADDRNOTAVAIL") throw error;
    return listen("0.0.0.0");
  }
}
