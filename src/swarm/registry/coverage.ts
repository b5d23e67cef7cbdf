/** Block coverage of a model: which blocks online servers hold, and the throughput summed per block. */
import type { VerifiedRecord } from '../records/index.js';

export interface BlockCoverage {
  /** Online servers holding this block. */
  servers: number;
  /** Sum of their effective throughput (decode steps/s through their spans). */
  throughput: number;
}

export interface ModelCoverage {
  modelId: string;
  /** The block count most servers agree on. */
  numBlocks: number;
  /** Online servers (whose numBlocks agrees). */
  servers: number;
  /** Servers announcing 'joining'. */
  joining: number;
  /** Per block `[0, numBlocks)`: online servers and summed throughput. */
  blocks: BlockCoverage[];
  /** Blocks with at least one online server. */
  coveredBlocks: number;
  /** Every block is served. */
  complete: boolean;
  /** The weakest block's summed throughput (0 when there is a gap): the swarm's bottleneck for this model. */
  minThroughput: number;
  /** Every valid record found for the model, any state. */
  records: VerifiedRecord[];
}

/** Aggregates records of one model into block coverage (exported for tests and the route planner). */
export function coverageOf(modelId: string, records: VerifiedRecord[]): ModelCoverage {
  const votes = new Map<number, number>();
  for (const { record } of records) votes.set(record.numBlocks, (votes.get(record.numBlocks) ?? 0) + (record.state === 'online' ? 2 : 1));
  let numBlocks = 0;
  let bestVotes = -1;
  for (const [count, vote] of votes) {
    if (vote > bestVotes || (vote === bestVotes && count > numBlocks)) {
      numBlocks = count;
      bestVotes = vote;
    }
  }
  const blocks: BlockCoverage[] = Array.from({ length: numBlocks }, () => ({ servers: 0, throughput: 0 }));
  let servers = 0;
  let joining = 0;
  for (const { record } of records) {
    if (record.numBlocks !== numBlocks) continue;
    if (record.state === 'joining') joining++;
    if (record.state !== 'online') continue;
    servers++;
    for (let block = record.span.start; block < record.span.end; block++) {
      blocks[block]!.servers++;
      blocks[block]!.throughput += record.throughput.effective;
    }
  }
  const coveredBlocks = blocks.filter((block) => block.servers > 0).length;
  return {
    modelId,
    numBlocks,
    servers,
    joining,
    blocks,
    coveredBlocks,
    complete: numBlocks > 0 && coveredBlocks === numBlocks,
    minThroughput: blocks.length === 0 ? 0 : Math.min(...blocks.map((block) => block.throughput)),
    records,
  };
}


