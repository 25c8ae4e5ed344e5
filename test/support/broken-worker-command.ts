/**
 * Run by test/relay-worker-errors.test.ts in a child process, because `bun test` ends a Worker
 * on an uncaught error before the worker's own handler runs. Starts the real relay worker
 * module, sends it a command that makes its message handler throw, then asks it to `sync`, and
 * prints each event the worker sends and `closed` if the thread ends.
 */
const worker = new Worker(new URL("../../src/relay-worker.ts", import.meta.url).href);
worker.addEventListener("close", () => console.log("closed"));
worker.onmessage = (event: MessageEvent<{ type: string }>) => console.log(event.data.type);
// A "set" without its backends, as a bug in the main thread's message would be.
worker.postMessage({ type: "set", backends: null, slots: {}, health: null, slowStart: null });
worker.postMessage({ type: "sync" });
await Bun.sleep(500);
worker.postMessage({ type: "sync" });
await Bun.sleep(500);
process.exit(0);
