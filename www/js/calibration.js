// Figures measured natively on the shipped weights (a committee of two networks, 2026-12-06),
// seeing drawings as the page does (eight views, as drawn and one pixel narrower, the ink box
// framed at 1/64; 2026-12-07), which the page shows beside its own.
// `oneshot calibrate` (validation alphabets, 2,000 pairs and 2,000 open-set 5-way tasks) chose
// the threshold; `oneshot eval --tasks 0` measured Lake's runs.

/** Below this same-character probability the page says "none of these". */
export const NONE_THRESHOLD = 0.95;
/** At that threshold, in percent: the query's character is there, but "none" is said. */
export const FALSE_NONE = 10.6;
/** …the query's character is not there, but a character is named. */
export const FALSE_MATCH = 13.1;
/** Two drawings compared (the verification view) are called the same from this probability on
 * (the equal-error point on pairs). */
export const SAME_THRESHOLD = 0.85;
/** At that threshold, in percent: the same character called different. */
export const PAIR_FALSE_REJECT = 5.5;
/** …different characters called the same. */
export const PAIR_FALSE_ACCEPT = 5.3;
/** The shipped weights on Lake's 400 trials, natively, in percent. */
export const NATIVE_LAKE_ACCURACY = 99.0;
