//! The `oneshot` command line's library: training, evaluation, benchmarks and exports of the
//! one-shot recognizer of `oneshot-core`, on the Omniglot data of `oneshot-data`.
//!
//! [`train`] (episodes or pairs from the background alphabets, validated on held-out ones)
//! → [`eval`] (Lake's runs, fresh random tasks, human pen strokes) → [`plot`] (a run's curve);
//! [`bench`] and [`export`] measure the network against other stacks.

pub mod bench;
pub mod eval;
pub mod export;
pub mod plot;
pub mod train;
