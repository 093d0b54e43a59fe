//! The threshold below which the page says "none of these", chosen on the validation alphabets.
//!
//! Two measurements at every threshold `t`:
//! - pairs (the verification view, and signatures): a same-character pair by two drawers scored
//!   below `t` is a false reject; a pair of two characters of one alphabet scored at or above `t`
//!   a false accept;
//! - open-set tasks (the query view): `way` characters of one alphabet, the query's character
//!   among them or not (replaced by another character of the alphabet). "None of these" when the
//!   best score is below `t`: a false "none" when the character is there, a false match when it
//!   is not.

use oneshot_core::recognize::CpuRecognizer;
use oneshot_data::{Alphabet, PlanSampler};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{RngExt, SeedableRng};
use serde::Serialize;

use super::EvalError;

/// Error rates at one threshold, in percent.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Rates {
    /// The threshold on the same-character probability.
    pub threshold: f32,
    /// Same-character pairs scored below it.
    pub pair_false_reject: f64,
    /// Pairs of different characters scored at or above it.
    pub pair_false_accept: f64,
    /// Tasks whose query's character was there but whose best score was below it.
    pub task_false_none: f64,
    /// Tasks whose query's character was not there but whose best score reached it.
    pub task_false_match: f64,
}

/// The scores behind the rates.
pub struct Calibration {
    same: Vec<f32>,
    different: Vec<f32>,
    best_present: Vec<f32>,
    best_absent: Vec<f32>,
}

impl Calibration {
    /// Scores `pairs` pairs of each kind and `tasks` open-set tasks of `way` characters (half with
    /// the query's character, half without) on `alphabets`, from `seed`.
    pub fn measure(
        recognizer: &CpuRecognizer,
        alphabets: &[&Alphabet],
        pairs: usize,
        tasks: usize,
        way: usize,
        seed: u64,
    ) -> Result<Self, EvalError> {
        let mut rng = StdRng::seed_from_u64(seed);
        let (mut same, mut different) = (Vec::with_capacity(pairs), Vec::with_capacity(pairs));
        for _ in 0..pairs {
            let alphabet = alphabets.choose(&mut rng).expect("alphabets");
            let two: Vec<_> = alphabet.characters.sample(&mut rng, 2).collect();
            let drawers = two[0].drawings.len();
            let (a, b) = (rng.random_range(0..drawers), rng.random_range(0..drawers));
            let b = if a == b { (b + 1) % drawers } else { b };
            let embed = |image| recognizer.embed(&[image]);
            let first = embed(&two[0].drawings[a])?;
            same.push(recognizer.scores(&first, &embed(&two[0].drawings[b])?)[0]);
            different.push(recognizer.scores(&first, &embed(&two[1].drawings[b])?)[0]);
        }
        let shapes =
            alphabets.iter().map(|a| a.characters.iter().map(|c| c.drawings.len()).collect()).collect();
        let mut sampler = PlanSampler::new(shapes, way + 1, 1, seed)?;
        let (mut best_present, mut best_absent) = (Vec::new(), Vec::new());
        for task in 0..tasks {
            let plan = sampler.sample();
            let alphabet = alphabets[plan.alphabet];
            let at = |(c, d): (usize, usize)| &alphabet.characters[c].drawings[d];
            let (query, class) = plan.queries[0];
            // way + 1 characters were drawn: with the query's character, leave out another one;
            // without it, leave out the query's.
            let present = task % 2 == 0;
            let left_out = if present { (class + 1) % (way + 1) } else { class };
            let supports: Vec<_> = plan
                .supports
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != left_out)
                .map(|(_, &s)| at(s))
                .collect();
            let scores = recognizer.scores(&recognizer.embed(&[at(query)])?, &recognizer.embed(&supports)?);
            let best = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            if present { best_present.push(best) } else { best_absent.push(best) }
        }
        Ok(Self { same, different, best_present, best_absent })
    }

    /// The rates at `threshold`.
    pub fn rates(&self, threshold: f32) -> Rates {
        let share = |values: &[f32], hit: &dyn Fn(f32) -> bool| {
            100.0 * values.iter().filter(|&&v| hit(v)).count() as f64 / values.len().max(1) as f64
        };
        Rates {
            threshold,
            pair_false_reject: share(&self.same, &|v| v < threshold),
            pair_false_accept: share(&self.different, &|v| v >= threshold),
            task_false_none: share(&self.best_present, &|v| v < threshold),
            task_false_match: share(&self.best_absent, &|v| v >= threshold),
        }
    }

    /// The rates on a grid of thresholds; the threshold where the two open-set errors add up to
    /// the least (the page's "none of these"); and the one where the two pair errors are closest
    /// (the verification view's "same character", the equal-error point).
    pub fn sweep(&self) -> (Vec<Rates>, Rates, Rates) {
        let grid: Vec<Rates> = (1..100).map(|t| self.rates(t as f32 / 100.0)).collect();
        let none = *grid
            .iter()
            .min_by(|a, b| {
                (a.task_false_none + a.task_false_match).total_cmp(&(b.task_false_none + b.task_false_match))
            })
            .expect("a grid");
        let gap = |r: &Rates| (r.pair_false_reject - r.pair_false_accept).abs();
        let same = *grid.iter().min_by(|a, b| gap(a).total_cmp(&gap(b))).expect("a grid");
        (grid, none, same)
    }
}
