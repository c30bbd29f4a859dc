import { expect, test } from "bun:test";
import { onStreamEnd } from "../../src/util/stream-end";

const bytes = (...chunks: string[]) =>
  new ReadableStream<Uint8Array>({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(new TextEncoder().encode(chunk));
      controller.close();
    },
  });

test("the bytes pass unchanged and done is called once, at the end, not before", async () => {
  let calls = 0;
  const reader = onStreamEnd(bytes("ab", "cd"), () => calls++).getReader();
  expect(new TextDecoder().decode((await reader.read()).value)).toBe("ab");
  expect(new TextDecoder().decode((await reader.read()).value)).toBe("cd");
  expect(calls).toBe(0);
  expect((await reader.read()).done).toBe(true);
  expect(calls).toBe(1);
});

test("a failing source calls done and passes its error on", async () => {
  let calls = 0;
  const failing = new ReadableStream<Uint8Array>({
    pull(controller) {
      controller.error(new Error("disk gone"));
    },
  });
  const reader = onStreamEnd(failing, () => calls++).getReader();
  await expect(reader.read()).rejects.toThrow("disk gone");
  expect(calls).toBe(1);
});

test("cancelling calls done and cancels the source with the reason", async () => {
  let calls = 0;
  let cancelled: unknown;
  const source = new ReadableStream<Uint8Array>({
    pull(controller) {
      controller.enqueue(new Uint8Array(1));
    },
    cancel(reason) {
      cancelled = reason;
    },
  });
  const stream = onStreamEnd(source, () => calls++);
  await stream.cancel("client left");
  expect(calls).toBe(1);
  expect(cancelled).toBe("client left");
});

test("nothing is read ahead of the consumer", async () => {
  let pulls = 0;
  const source = new ReadableStream<Uint8Array>({
    pull(controller) {
      pulls++;
      controller.enqueue(new Uint8Array(1));
    },
  }, { highWaterMark: 0 });
  const reader = onStreamEnd(source, () => {}).getReader();
  await Bun.sleep(10);
  expect(pulls).toBe(0);
  await reader.read();
  expect(pulls).toBe(1);
});
