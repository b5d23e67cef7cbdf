/** Defaults of the swarm layer's DHT storage and provider sharding, each with the reason for its value. */

export const DHT_STORE_DEFAULTS = {
  /** Records one peer may keep on us: its /corolla-peer key plus one /corolla key per model it serves. */
  maxRecordsPerPeer: 8,
  /** Record writes one peer may make per minute: refreshes every 30 s and load republishes at most every 5 s, on two keys, make 24. */
  putsPerPeerPerMinute: 30,
  /** Writes a peer may make at once (a restart re-puts everything it had). */
  putBurst: 10,
  /** Records kept in all (about 8 KiB each at most: 80 MiB worst case); past it, new owners are refused until some expire. */
  maxRecords: 10_000,
  /** Provider entries (CIDs) one peer may keep on us: a server provides two CIDs (model shard, index shard) per model. */
  maxProvidedPerPeer: 16,
  /** Provider entries kept in all. */
  maxProviderEntries: 50_000,
  /** How often expired records are swept out on writes (reads drop an expired record at once). */
  sweepIntervalMs: 60_000,
} as const;

export type DhtStoreLimits = { -readonly [K in keyof typeof DHT_STORE_DEFAULTS]: number };
