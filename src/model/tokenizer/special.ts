/**
 * Splits text on special-token strings (control and user-defined tokens), leftmost-longest, so that
 * "<|im_start|>user" becomes [id, "user"]. Text between specials comes back as strings, never empty.
 */
export class SpecialSplitter {
  private readonly pattern?: RegExp;
  private readonly ids = new Map<string, number>();

  constructor(specials: Iterable<{ readonly text: string; readonly id: number }>) {
    for (const { text, id } of specials) {
      if (text.length === 0 || this.ids.has(text)) continue;
      this.ids.set(text, id);
    }
    if (this.ids.size > 0) {
      // Longest first, so that at any position the longest special token wins (JS alternation is ordered).
      const alternatives = [...this.ids.keys()]
        .sort((a, b) => b.length - a.length)
        .map((s) => s.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&'));
      this.pattern = new RegExp(alternatives.join('|'), 'g');
    }
  }

  get size(): number {
    return this.ids.size;
  }

  /** Returns the id of a string that is exactly one special token. */
  idOf(text: string): number | undefined {
    return this.ids.get(text);
  }

  split(text: string): Array<string | number> {
    if (!this.pattern || text.length === 0) return text.length === 0 ? [] : [text];
    const out: Array<string | number> = [];
    let last = 0;
    this.pattern.lastIndex = 0;
    for (let m = this.pattern.exec(text); m !== null; m = this.pattern.exec(text)) {
      if (m.index > last) out.push(text.slice(last, m.index));
      out.push(this.ids.get(m[0])!);
      last = m.index + m[0].length;
    }
    if (last < text.length) out.push(text.slice(last));
    return out;
  }
}
