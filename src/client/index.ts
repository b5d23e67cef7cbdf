/** The client: route planning, multi-hop sessions with failover and replay, and the RemoteModel library API. */
export * from './errors.js';
export { BanList, type BanEntry, type BanListOptions } from './bans.js';
export { describeRoute, hopCostMs, planRoute, usableServers, type CostModel, type PlanOptions, type PlannerRecord, type RecordLike, type Route, type RouteHop } from './route-planner.js';
export { newSessionId, openRemoteSpan, RemoteSpan, type DialerNode, type RemoteSpanInit, type RemoteSpanOptions, type SpanTarget, type StepInput } from './remote-span.js';
export {
  SwarmInferenceSession,
  type HopInfo,
  type RecoveryInfo,
  type RouteSource,
  type SessionEvent,
  type SessionStats,
  type SwarmSessionOptions,
} from './inference-session.js';
export { verifiedEthAddress, verifiedEthAddresses, type BindingRecord } from './eth-address.js';
export { SwarmDirectory, type CoverageProgress, type DirectoryOptions } from './directory.js';
export {
  RemoteInferenceSession,
  RemoteModel,
  type FailureInfo,
  type RemoteModelComponents,
  type RemoteModelEvents,
  type RemoteModelOptions,
  type WaitingInfo,
} from './remote-model.js';
export { remoteGenerate, type GenerateResult, type RemoteGenerateOptions } from './generate-client.js';
export { rankWholeModelServers, runWholeModelGeneration, type RankedServer, type WholeModelGenerateOptions } from './whole-model.js';
