/** The models a gateway serves, by public name. The first one is the default (Far Mesh requests may omit it). */
import { UnknownModelError } from './errors.js';
import type { ModelHost, ModelView } from './model-host.js';

export class ModelCatalog {
  private readonly byName = new Map<string, ModelHost>();

  constructor(hosts: readonly ModelHost[]) {
    for (const host of hosts) {
      if (this.byName.has(host.name)) throw new RangeError(`two models are named "${host.name}"; name them apart (--model NAME=PATH)`);
      this.byName.set(host.name, host);
    }
  }

  get default(): ModelHost {
    return this.byName.values().next().value!;
  }

  get all(): ModelHost[] {
    return [...this.byName.values()];
  }

  /** The host of `name`; UnknownModelError (404) for a name this gateway does not serve. */
  get(name: string | undefined): ModelHost {
    if (name === undefined) return this.default;
    const host = this.byName.get(name);
    if (!host) throw new UnknownModelError(name, [...this.byName.keys()]);
    return host;
  }

  views(): ModelView[] {
    return this.all.map((host) => host.snapshot());
  }
}
