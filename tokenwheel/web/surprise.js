// Surprise in plain words: how unsure the model is about the next token (the wheel's
// `entropy_bits` and `effective_choices`), how surprising each token of the text was
// (`surprisal_bits`), and how likely the model found the whole text (the sum of the
// tokens' recorded log-probabilities, as `log_probability` of GET /api/sessions/{id}).

import { decimal } from "./format.js";
import { numberFormat, t } from "./i18n.js";

const LN2 = Math.log(2);
const LN10 = Math.log(10);
const LARGEST_WRITTEN = 1e15; // "1 in 123,000,000,000,000"; past it, the number's digits

// N of "1 in N" for a surprise of `nats` (-ln p), in words: one decimal below 10, three
// significant digits up to 10^15, then how many digits N has (a text of a few dozen tokens
// can be 1 in a number with 80 digits: never scientific notation).
export function oneIn(nats) {
  const n = Math.exp(Math.max(nats, 0));
  if (n < 9.95) return t("surprise.oneIn", { n: decimal(n, 1) });
  if (n < LARGEST_WRITTEN) {
    return t("surprise.oneIn", { n: numberFormat({ maximumSignificantDigits: 3 }).format(n) });
  }
  return t("surprise.oneInDigits", { digits: Math.floor(nats / LN10) + 1 });
}

// "The model is about as unsure as choosing among 290 equally likely tokens (8.2 bits)."
export function uncertainty(probs) {
  const n = probs.effective_choices;
  const bits = decimal(probs.entropy_bits, 1);
  if (n === undefined || n === null) return "";
  if (n < 1.05) return t("surprise.certain", { bits });
  const choices =
    n < 9.95 ? decimal(n, 1) : numberFormat({ maximumSignificantDigits: 3 }).format(n);
  return t("surprise.choices", { count: n, choices, bits });
}

// "A 1-in-14 surprise (3.8 bits)." for a token of the text (empty for a token recorded
// before surprisal_bits existed: the server derives it, so in practice always there).
export function tokenSurprise(token) {
  const bits = token.surprisal_bits;
  if (bits === undefined || bits === null) return "";
  return t("surprise.token", { chance: oneIn(bits * LN2), bits: decimal(bits, 1) });
}

// How likely the model found the generated text after the prompt: "1 in 4,530" and its
// surprise in bits; empty with no generated token.
export function textChance(history) {
  if (!history.length) return "";
  // the sum the server calls log_probability (it adds with math.fsum; the difference is
  // far below what is shown)
  const nats = -history.reduce((sum, token) => sum + token.log_probability, 0);
  return t("surprise.text", {
    count: history.length,
    chance: oneIn(nats),
    bits: decimal(nats / LN2, 1),
  });
}
