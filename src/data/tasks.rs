//! Random N-way one-shot tasks within one alphabet, as in Lake's benchmark.

use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{RngExt, SeedableRng};

use super::{Alphabet, DataError};
use crate::preprocess::InkImage;

/// One task: one drawing per class to learn from, and queries with their true class.
#[derive(Debug)]
pub struct Task<'a> {
    /// One drawing per class.
    pub supports: Vec<&'a InkImage>,
    /// Drawings to classify, by other drawers, with the index of their class in `supports`.
    pub queries: Vec<(&'a InkImage, usize)>,
}

/// Draws N-way tasks from a set of alphabets, reproducibly from a seed.
pub struct TaskSampler<'a> {
    alphabets: Vec<&'a Alphabet>,
    way: usize,
    queries: usize,
    rng: StdRng,
}

impl<'a> TaskSampler<'a> {
    /// Tasks of `way` classes, each from one alphabet with at least that many characters, with
    /// `queries` queries each (one per class at most, from distinct classes).
    pub fn new(alphabets: &[&'a Alphabet], way: usize, queries: usize, seed: u64) -> Result<Self, DataError> {
        let alphabets: Vec<&Alphabet> =
            alphabets.iter().copied().filter(|a| a.characters.len() >= way).collect();
        if alphabets.is_empty() || way < 2 {
            return Err(DataError::TaskTooWide { way });
        }
        Ok(Self { alphabets, way, queries: queries.clamp(1, way), rng: StdRng::seed_from_u64(seed) })
    }

    /// The next task.
    pub fn sample(&mut self) -> Task<'a> {
        let rng = &mut self.rng;
        let alphabet = *self.alphabets.choose(rng).expect("non-empty, checked in new");
        let characters: Vec<_> = alphabet.characters.sample(rng, self.way).collect();
        let mut supports = Vec::with_capacity(self.way);
        let mut candidates = Vec::with_capacity(self.way);
        for (class, character) in characters.iter().enumerate() {
            let drawers = character.drawings.len();
            let support = rng.random_range(0..drawers);
            let query = (support + rng.random_range(1..drawers)) % drawers;
            supports.push(&character.drawings[support]);
            candidates.push((&character.drawings[query], class));
        }
        candidates.shuffle(rng);
        candidates.truncate(self.queries);
        Task { supports, queries: candidates }
    }
}
