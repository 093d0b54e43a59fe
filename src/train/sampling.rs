//! What a training step sees: pairs or episodes drawn from the background alphabets, each
//! drawing rendered through the training augmentations.

use oneshot_core::preprocess::{Distortion, DistortionConfig, InkImage, Preprocessor, Symmetry, Warp};
use oneshot_data::Alphabet;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{RngExt, SeedableRng};

use super::options::{Symmetries, SymmetryScope};

/// The random stream for one step: a function of the seed and the step alone.
pub(super) fn step_rng(seed: u64, iteration: usize) -> StdRng {
    StdRng::seed_from_u64(seed ^ (iteration as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// How training drawings are varied before they reach the network.
#[derive(Clone, Debug, Default)]
pub struct Augmentation {
    /// Koch et al.'s random affine distortions, if any.
    pub distortion: Option<DistortionConfig>,
    /// Widen or narrow the strokes by a pixel, a third of the time each.
    pub stroke_widths: bool,
    /// Elastic warps moving the lattice's control points by up to this many pixels of a
    /// 105-pixel image, if any.
    pub elastic: Option<f32>,
}

fn render(
    image: &InkImage,
    preprocessor: &Preprocessor,
    augmentation: &Augmentation,
    symmetry: Symmetry,
    rng: &mut StdRng,
) -> Vec<f32> {
    let distortion = augmentation
        .distortion
        .as_ref()
        .map_or(Distortion::NONE, |c| Distortion::sample(c, preprocessor.size(), rng))
        .after_symmetry(symmetry);
    let changed;
    let image = if augmentation.stroke_widths {
        changed = image.with_stroke_change(rng.random_range(-1..=1i8));
        &changed
    } else {
        image
    };
    // Drawn last, so runs without warps draw the same numbers as before warps existed.
    let warp = augmentation.elastic.map(|amplitude| Warp::sample(amplitude, preprocessor.size(), rng));
    // Omniglot images always have ink; a blank render would be a data-set defect worth a panic.
    preprocessor.render_warped(image, &distortion, warp.as_ref()).expect("Omniglot images are never blank")
}

/// A batch of pairs: `a[i]`, `b[i]`, and 1 where they show the same character.
pub struct PairBatch {
    /// First images.
    pub a: Vec<Vec<f32>>,
    /// Second images.
    pub b: Vec<Vec<f32>>,
    /// 1.0 for same, 0.0 for different.
    pub labels: Vec<f32>,
}

/// Koch et al.'s pairs: each from one random alphabet, the first half the same character by two
/// drawers, the second half two different characters.
pub fn sample_pairs(
    alphabets: &[&Alphabet],
    n: usize,
    preprocessor: &Preprocessor,
    augmentation: &Augmentation,
    rng: &mut StdRng,
) -> PairBatch {
    let mut batch =
        PairBatch { a: Vec::with_capacity(n), b: Vec::with_capacity(n), labels: Vec::with_capacity(n) };
    for i in 0..n {
        let alphabet = alphabets.choose(rng).expect("background alphabets");
        let same = i < n / 2;
        let characters: Vec<_> = alphabet.characters.sample(rng, 2).collect();
        let first = characters[0];
        let second = if same { first } else { characters[1] };
        let drawer = rng.random_range(0..first.drawings.len());
        let other = (drawer + rng.random_range(1..second.drawings.len())) % second.drawings.len();
        batch.a.push(render(&first.drawings[drawer], preprocessor, augmentation, Symmetry::NONE, rng));
        batch.b.push(render(&second.drawings[other], preprocessor, augmentation, Symmetry::NONE, rng));
        batch.labels.push(if same { 1.0 } else { 0.0 });
    }
    batch
}

/// One episode: `k` characters of one random alphabet, `drawings` (2 to 20: Omniglot has 20
/// drawers of every character) of each by as many drawers, laid out row by row — drawings `0..k` one
/// per character, then `k..2k` by other drawers, and so on — each character seen through a
/// random symmetry of `symmetries` (one for the whole episode, or one per character, as `scope`
/// says).
pub fn sample_episode(
    alphabets: &[&Alphabet],
    (way, drawings): (usize, usize),
    (symmetries, scope): (Symmetries, SymmetryScope),
    preprocessor: &Preprocessor,
    augmentation: &Augmentation,
    rng: &mut StdRng,
) -> Vec<Vec<f32>> {
    let alphabet = alphabets.choose(rng).expect("background alphabets");
    let k = way.min(alphabet.characters.len());
    let characters: Vec<_> = alphabet.characters.sample(rng, k).collect();
    let episode_symmetry = symmetries.sample(rng);
    let mut rows = vec![Vec::with_capacity(k); drawings];
    for character in characters {
        let drawers = character.drawings.len();
        let chosen: Vec<usize> = if drawings == 2 {
            // Two drawers as they were drawn before more were possible, so two-drawing runs
            // (the documented recipe) draw the same numbers as then.
            let a = rng.random_range(0..drawers);
            vec![a, (a + rng.random_range(1..drawers)) % drawers]
        } else {
            rand::seq::index::sample(rng, drawers, drawings).into_vec()
        };
        let symmetry = match scope {
            SymmetryScope::Episode => episode_symmetry,
            SymmetryScope::Character => symmetries.sample(rng),
        };
        for (row, drawer) in rows.iter_mut().zip(chosen) {
            row.push(render(&character.drawings[drawer], preprocessor, augmentation, symmetry, rng));
        }
    }
    rows.concat()
}
