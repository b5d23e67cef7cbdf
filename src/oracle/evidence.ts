/**
 * What makes spot-check evidence hold, for anyone (docs/oracle.md, "Spot-check evidence"): both replies are signed by
 * the peers they name (Ed25519, wire/attestation.ts); each peer is bound to the address given for it (EIP-712
 * binding, chain/binding.ts); both answer the same step of the same span in the same input history; each output
 * is the one its server signed; they differ by more than honest nondeterminism allows (DEVIATION_TOLERANCE); and the
 * payer's report names the suspect and the digest of exactly these two replies.
 */
import { getAddress, isAddressEqual, type Hex } from 'viem';
import { verifyBinding } from '../chain/binding.js';
import { DEVIATION_TOLERANCE, conflictProblem, evidenceDigest, rowDeviation, tensorDigest, verifyAttestation } from '../wire/attestation.js';
import type { EvidenceParty, SignedEvidence } from './messages.js';

export type EvidenceVerdict = { readonly ok: true; readonly deviation: number } | { readonly ok: false; readonly reason: string };

export async function verifyEvidence(signed: SignedEvidence): Promise<EvidenceVerdict> {
  const { report, suspect, checker } = signed;
  const fail = (reason: string): EvidenceVerdict => ({ ok: false, reason });
  if (`0x${evidenceDigest(suspect, checker)}` !== report.evidence) return fail('the report does not sign these two replies (evidence digest mismatch)');
  if (report.suspectPeerId !== suspect.peerId || !isAddressEqual(report.suspect, suspect.ethAddress)) return fail('the report names another suspect than the suspect reply');
  const conflict = conflictProblem(suspect, checker);
  if (conflict) return fail(conflict);
  if (isAddressEqual(suspect.ethAddress, checker.ethAddress)) return fail('both replies come from servers of the same address');
  const outputs = [];
  for (const [role, party] of [['suspect', suspect], ['checker', checker]] as const) {
    if (!(await verifyAttestation(party.peerId, party.claim, party.signature))) return fail(`the ${role}'s attestation does not verify for ${party.peerId}`);
    if (!(await verifyBinding(bindingOf(party), party.peerId))) return fail(`the ${role}'s binding of ${party.ethAddress} to ${party.peerId} does not verify`);
    const output = decodeOutput(party.output);
    if (!output || output.length === 0 || output.length % party.claim.tokens !== 0) return fail(`the ${role}'s output is not ${party.claim.tokens} rows of f32 values`);
    if (tensorDigest(output) !== party.claim.output) return fail(`the ${role}'s output is not the one it signed`);
    outputs.push(output);
  }
  const [a, b] = outputs as [Float32Array, Float32Array];
  const deviation = rowDeviation(a, b, b.length / checker.claim.tokens);
  const tolerance = DEVIATION_TOLERANCE[suspect.claim.dtype];
  if (!(deviation > tolerance)) return fail(`the outputs agree within the tolerance (deviation ${deviation.toExponential(2)} ≤ ${tolerance})`);
  return { ok: true, deviation };
}

function bindingOf(party: EvidenceParty) {
  return { peerId: party.peerId, ethAddress: getAddress(party.ethAddress), issuedAt: BigInt(party.ethBinding.issuedAt), signature: party.ethBinding.signature as Hex };
}

function decodeOutput(base64: string): Float32Array | undefined {
  const bytes = Buffer.from(base64, 'base64');
  if (bytes.length % 4 !== 0) return undefined;
  const values = new Float32Array(bytes.length / 4);
  new Uint8Array(values.buffer).set(bytes);
  return values;
}
