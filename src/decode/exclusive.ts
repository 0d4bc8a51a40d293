/**
 * One generation at a time per model. A Llama holds one KV cache, so two generation loops
 * interleaving their forwards on it would each read the other's cache (silently wrong
 * tokens). Every loop runs its whole generation inside `exclusive(model, ...)`: calls made at
 * once (Promise.all, two requests to one server) queue up and run in call order, each with the
 * whole cache to itself, so each returns exactly what it returns alone.
 */
const tails = new WeakMap<object, Promise<unknown>>();

export function exclusive<T>(model: object, body: () => Promise<T>): Promise<T> {
  const before = tails.get(model) ?? Promise.resolve();
  const run = before.then(body, body); // after the previous call settles, whatever its outcome
  tails.set(model, run.catch(() => undefined));
  return run;
}
