/**
 * Fault injection between the registry core and its storage adapters: a wrapper that makes one
 * chosen call fail, as the network or the back end would, or stops everything there, as a killed
 * process would.
 */

/** Thrown by a store call chosen to fail. */
export class InjectedFault extends Error {}

/**
 * How the chosen call goes wrong:
 * - `fail`: it throws without reaching the back end (a refused request);
 * - `fail-after`: it reaches the back end and takes effect, then throws (the answer is lost);
 * - `kill`: it never reaches the back end and neither does any later call of the wrapped stores;
 *   none of them ever settles, so the code waiting on them never runs (a killed process).
 */
export type FaultMode = 'fail' | 'fail-after' | 'kill';

/**
 * Which call goes wrong: the `failAt`-th (counting from 1) call of `methods` (every method when
 * absent) over all stores wrapped with this plan; `calls` counts them. `onFault` runs when the
 * chosen call is reached.
 */
export interface FaultPlan {
  calls: number;
  failAt: number;
  mode?: FaultMode;
  methods?: readonly string[];
  onFault?: () => void;
  /** Set once a `kill` has happened. */
  killed?: boolean;
  /** When given, the method name of each counted call is appended. */
  trace?: string[];
}

const NEVER = new Promise<never>(() => {});

/** Wraps a store so that the call `plan` chooses goes wrong as `plan.mode` (default `fail`) says. */
export function faulty<T extends object>(store: T, plan: FaultPlan): T {
  return new Proxy(store, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      if (plan.methods && !plan.methods.includes(String(property))) return value.bind(target);
      return async (...args: unknown[]) => {
        if (plan.killed) return NEVER;
        plan.calls++;
        plan.trace?.push(String(property));
        if (plan.calls !== plan.failAt) return value.apply(target, args);
        const fault = new InjectedFault(`fault injected at call ${plan.calls}, ${String(property)} (${plan.mode ?? 'fail'})`);
        plan.onFault?.();
        switch (plan.mode ?? 'fail') {
          case 'fail':
            throw fault;
          case 'fail-after':
            await value.apply(target, args);
            throw fault;
          case 'kill':
            plan.killed = true;
            return NEVER;
        }
      };
    },
  });
}
