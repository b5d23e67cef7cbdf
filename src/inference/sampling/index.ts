/** Sampling: the sampler and its options, its PRNG and kernels, and stop strings. */
export { InvalidSamplingOptionsError, NoValidTokenError } from '../errors.js';
export { argmax, expNonPositive } from './kernels.js';
export { createRandom, type Random } from './random.js';
export { createSampler, DEFAULT_PENALTY_LAST_N, type Sampler, type SamplingOptions } from './sampler.js';
export { isStopToken, StopMatcher, type StopResult } from './stop.js';
