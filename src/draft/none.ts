/**
 * The drafter that proposes nothing: every speculative step then verifies the root alone and
 * emits just the bonus token, so the loop is plain decoding (one token per base forward).
 * The baseline for tokens-per-step and for the loop's own overhead.
 */
import type { DraftCandidate, Drafter } from './drafter.js';

export class NoDrafter implements Drafter {
  readonly name = 'none';
  readonly usesHidden = false;
  begin(): void {}
  propose(): DraftCandidate[] {
    return [];
  }
  accept(): void {}
}
