/**
 * Node 20 lacks Promise.withResolvers, which libp2p's dependencies call on first start. Imported first by
 * swarm/node.ts, so anything that creates a libp2p node has it.
 */
const PromiseWithResolvers = Promise as unknown as { withResolvers?: unknown };
if (typeof PromiseWithResolvers.withResolvers !== 'function') {
  PromiseWithResolvers.withResolvers = function withResolvers<T>(this: PromiseConstructor) {
    let resolve!: (value: T | PromiseLike<T>) => void;
    let reject!: (reason?: unknown) => void;
    const promise = new this<T>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}

export {};
