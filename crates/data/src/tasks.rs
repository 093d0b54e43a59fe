//! Random N-way one-shot tasks within one alphabet, as in Lake's benchmark.

use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{RngExt, SeedableRng};
use serde::Serialize;

use super::{Alphabet, DataError};
use oneshot_core::preprocess::InkImage;

/// One task: one drawing per class to learn from, and queries with their true class.
#[derive(Debug)]
pub struct Task<'a> {
    /// One drawing per class.
    pub supports: Vec<&'a InkImage>,
    /// Drawings to classify, by other drawers, with the index of their class in `supports`.
    pub queries: Vec<(&'a InkImage, usize)>,
}

/// A task as positions rather than pictures, so the very same task can be asked of several
/// renderings of one set of drawings (scans and strokes, say).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TaskPlan {
    /// The alphabet, by its index in the list the sampler was made from.
    pub alphabet: usize,
    /// `(character, drawer)` of each support.
    pub supports: Vec<(usize, usize)>,
    /// `(character, drawer)` of each query, and the index of its support.
    pub queries: Vec<((usize, usize), usize)>,
}

impl TaskPlan {
    /// The task over these alphabets (the list the plan was sampled for, or one laid out alike).
    ///
    /// # Panics
    /// If a position is outside the alphabets.
    pub fn over<'a>(&self, alphabets: &[&'a Alphabet]) -> Task<'a> {
        let alphabet = alphabets[self.alphabet];
        let at = |&(c, d): &(usize, usize)| &alphabet.characters[c].drawings[d];
        Task {
            supports: self.supports.iter().map(at).collect(),
            queries: self.queries.iter().map(|(position, class)| (at(position), *class)).collect(),
        }
    }
}

/// Draws N-way tasks from a set of alphabets, reproducibly from a seed.
pub struct TaskSampler<'a> {
    alphabets: Vec<&'a Alphabet>,
    sampler: PlanSampler,
}

impl<'a> TaskSampler<'a> {
    /// Tasks of `way` classes, each from one alphabet with at least that many characters, with
    /// `queries` queries each (one per class at most, from distinct classes).
    pub fn new(alphabets: &[&'a Alphabet], way: usize, queries: usize, seed: u64) -> Result<Self, DataError> {
        let shapes =
            alphabets.iter().map(|a| a.characters.iter().map(|c| c.drawings.len()).collect()).collect();
        Ok(Self { alphabets: alphabets.to_vec(), sampler: PlanSampler::new(shapes, way, queries, seed)? })
    }

    /// The next task.
    pub fn sample(&mut self) -> Task<'a> {
        self.sampler.sample().over(&self.alphabets)
    }
}

/// Draws [`TaskPlan`]s for alphabets given by their shape: for each alphabet, the number of
/// drawings of each of its characters.
pub struct PlanSampler {
    shapes: Vec<Vec<usize>>,
    /// Alphabets wide enough for the tasks.
    eligible: Vec<usize>,
    way: usize,
    queries: usize,
    rng: StdRng,
}

impl PlanSampler {
    /// See [`TaskSampler::new`].
    pub fn new(shapes: Vec<Vec<usize>>, way: usize, queries: usize, seed: u64) -> Result<Self, DataError> {
        let eligible: Vec<usize> = (0..shapes.len())
            .filter(|&a| shapes[a].len() >= way && shapes[a].iter().all(|&drawers| drawers >= 2))
            .collect();
        if eligible.is_empty() || way < 2 {
            return Err(DataError::TaskTooWide { way });
        }
        Ok(Self { shapes, eligible, way, queries: queries.clamp(1, way), rng: StdRng::seed_from_u64(seed) })
    }

    /// The next plan.
    pub fn sample(&mut self) -> TaskPlan {
        let rng = &mut self.rng;
        let alphabet = *self.eligible.choose(rng).expect("non-empty, checked in new");
        let shape = &self.shapes[alphabet];
        let all: Vec<usize> = (0..shape.len()).collect();
        let characters: Vec<usize> = all.sample(rng, self.way).copied().collect();
        let mut supports = Vec::with_capacity(self.way);
        let mut candidates = Vec::with_capacity(self.way);
        for (class, &character) in characters.iter().enumerate() {
            let drawers = shape[character];
            let support = rng.random_range(0..drawers);
            let query = (support + rng.random_range(1..drawers)) % drawers;
            supports.push((character, support));
            candidates.push(((character, query), class));
        }
        candidates.shuffle(rng);
        candidates.truncate(self.queries);
        TaskPlan { alphabet, supports, queries: candidates }
    }
}
