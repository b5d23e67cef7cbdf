/**
 * The one word for a contiguous run of transformer blocks: `BlockRange`, half-open [start, end). Servers serve one,
 * records announce one, routes chain them, and the engine runs one as a span.
 */
export interface BlockRange {
  readonly start: number;
  readonly end: number;
}

/** True when `range` is a non-empty range of whole blocks inside a model of `numBlocks`. */
export function isValidBlockRange(range: BlockRange, numBlocks: number): boolean {
  return Number.isInteger(range.start) && Number.isInteger(range.end) && range.start >= 0 && range.start < range.end && range.end <= numBlocks;
}

/** "[start, end)". */
export function formatBlockRange(range: BlockRange): string {
  return `[${range.start}, ${range.end})`;
}
