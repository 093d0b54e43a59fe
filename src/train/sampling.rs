//! What a training step sees: pairs or episodes drawn from the background alphabets, each
//! drawing rendered through the training augmentations.

use oneshot_core::preprocess::{Distortion, DistortionConfig, InkImage, Preprocessor, Symmetry, Warp};
use oneshot_data::{Alphabet, Character};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{RngExt, SeedableRng};

use super::options::{Symmetries, SymmetryScope, TrainingSymmetry};

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
    /// The probability that an episode character is replaced by one half of itself, if any.
    pub fragments: Option<f64>,
    /// The probability that an episode character is replaced by half of itself joined with the
    /// other half of an earlier one, if any.
    pub chimeras: Option<f64>,
    /// The probability that an episode character is replaced by a turned or mirrored copy of
    /// an earlier one, if any.
    pub twins: Option<f64>,
}

/// Which half of a drawing's ink box a fragment keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Half {
    Left,
    Right,
    Top,
    Bottom,
}

impl Half {
    const ALL: [Half; 4] = [Half::Left, Half::Right, Half::Top, Half::Bottom];

    /// One of the four, uniformly (one draw from `rng`, as every run before drew it).
    fn random(rng: &mut StdRng) -> Half {
        *Half::ALL.choose(rng).expect("four halves")
    }

    /// The other side of the same cut.
    fn opposite(self) -> Half {
        match self {
            Half::Left => Half::Right,
            Half::Right => Half::Left,
            Half::Top => Half::Bottom,
            Half::Bottom => Half::Top,
        }
    }
}

/// One half of a drawing: its ink there (the rest blanked), and the box's middle it was cut at.
struct Cut {
    ink: Vec<u8>,
    middle: (usize, usize),
    /// Whether it holds at least a fifth of the drawing's ink: a part that all but misses the
    /// character would teach nothing.
    substantial: bool,
}

/// The ink of `image` inside one half of its ink box, or `None` for a blank image.
fn cut(image: &InkImage, half: Half) -> Option<Cut> {
    let (x0, y0, x1, y1) = image.ink_box()?;
    let (mid_x, mid_y) = ((x0 + x1) / 2, (y0 + y1) / 2);
    let width = image.width();
    let keep = |i: usize| {
        let (x, y) = (i % width, i / width);
        match half {
            Half::Left => x < mid_x,
            Half::Right => x >= mid_x,
            Half::Top => y < mid_y,
            Half::Bottom => y >= mid_y,
        }
    };
    let ink: Vec<u8> = image.ink().iter().enumerate().map(|(i, &v)| if keep(i) { v } else { 0 }).collect();
    let total: u64 = image.ink().iter().map(|&v| v as u64).sum();
    let kept: u64 = ink.iter().map(|&v| v as u64).sum();
    Some(Cut { ink, middle: (mid_x, mid_y), substantial: 5 * kept >= total })
}

/// A picture that survives the training pen's narrowing by a pixel (a blank one cannot be
/// preprocessed), or `None`.
fn drawable(width: usize, height: usize, ink: Vec<u8>) -> Option<InkImage> {
    let image = InkImage::from_ink(width, height, ink).ok()?;
    image.with_stroke_change(-1).ink_box().is_some().then_some(image)
}

/// The ink of `image` inside one half of its ink box, or `None` where that half holds less than
/// a fifth of the ink or would vanish with its pen narrowed by a pixel.
fn fragment(image: &InkImage, half: Half) -> Option<InkImage> {
    let part = cut(image, half)?;
    if !part.substantial {
        return None;
    }
    drawable(image.width(), image.height(), part.ink)
}

/// `own`'s ink in `half` of its ink box joined with `donor`'s ink in the opposite half of its
/// box, moved so that the two boxes' middles meet: a character its alphabet never had, made of
/// two of its parts. `None` where either part holds less than a fifth of its drawing's ink.
fn chimera(own: &InkImage, donor: &InkImage, half: Half) -> Option<InkImage> {
    let (mine, theirs) = (cut(own, half)?, cut(donor, half.opposite())?);
    if !(mine.substantial && theirs.substantial) {
        return None;
    }
    let (width, height) = (own.width(), own.height());
    let shift =
        |at: usize, to: usize, from: usize, limit: usize| (at + to).checked_sub(from).filter(|&v| v < limit);
    let mut ink = mine.ink;
    for (i, &v) in theirs.ink.iter().enumerate().filter(|&(_, &v)| v > 0) {
        let (x, y) = (i % donor.width(), i / donor.width());
        if let (Some(x), Some(y)) = (
            shift(x, mine.middle.0, theirs.middle.0, width),
            shift(y, mine.middle.1, theirs.middle.1, height),
        ) {
            ink[y * width + x] = ink[y * width + x].max(v);
        }
    }
    drawable(width, height, ink)
}

/// With the augmentation's probability, the same half of each of these drawings of one
/// character (a character of its own), or `None` to keep the whole character: also where some
/// drawer's half holds too little ink, so that every drawing of the class is the same half.
fn fragments_of(
    drawings: &[&InkImage],
    augmentation: &Augmentation,
    rng: &mut StdRng,
) -> Option<Vec<InkImage>> {
    let p = augmentation.fragments?;
    if !rng.random_bool(p) {
        return None;
    }
    let half = Half::random(rng);
    drawings.iter().map(|drawing| fragment(drawing, half)).collect()
}

/// With the augmentation's probability, each of these drawings (by `drawers`) joined with the
/// same drawer's drawing of one of `donors`, cut alike (`chimera`): a character of its own that
/// shares half of itself with a donor, usually in the episode too. `None` keeps the character:
/// also where some drawing's or donor drawing's part holds too little ink.
fn chimeras_of(
    drawings: &[&InkImage],
    drawers: &[usize],
    donors: &[&Character],
    augmentation: &Augmentation,
    rng: &mut StdRng,
) -> Option<Vec<InkImage>> {
    let p = augmentation.chimeras?;
    if donors.is_empty() || !rng.random_bool(p) {
        return None;
    }
    let donor = donors.choose(rng)?;
    let half = Half::random(rng);
    drawings
        .iter()
        .zip(drawers)
        .map(|(drawing, &drawer)| chimera(drawing, donor.drawings.get(drawer)?, half))
        .collect()
}

/// With the augmentation's probability, an earlier class of the episode (an index into
/// `earlier`, each a character's drawings and the symmetry they are seen through) and a symmetry of the square other than the identity
/// under which its drawings make a character of their own — or `None`: also where the copy
/// would look as much like the original as the class's two first drawers' drawings look like
/// each other (a symmetric character, such as a ring or a cross, is its own twin).
fn twin_of(
    earlier: &[(Vec<InkImage>, TrainingSymmetry)],
    augmentation: &Augmentation,
    preprocessor: &Preprocessor,
    rng: &mut StdRng,
) -> Option<(usize, Symmetry)> {
    let q = augmentation.twins?;
    if earlier.is_empty() || !rng.random_bool(q) {
        return None;
    }
    let class = rng.random_range(0..earlier.len());
    let twist = Symmetry::nth(rng.random_range(1..8));
    distinct_under(&earlier[class].0, twist, preprocessor).then_some((class, twist))
}

/// Whether `twist` turns each of the first two drawings into something less like itself than
/// the two drawings are like each other, compared as blurred network inputs (cosine), so that
/// a stroke a pixel off does not count as a different character.
fn distinct_under(drawings: &[InkImage], twist: Symmetry, preprocessor: &Preprocessor) -> bool {
    let size = preprocessor.size();
    let seen = |drawing: &InkImage, symmetry: Symmetry| {
        let view = Distortion::NONE.after_symmetry(symmetry);
        preprocessor.render_distorted(drawing, &view).ok().map(|pixels| blurred(&pixels, size))
    };
    let [a, b, ..] = drawings else { return false };
    let (Some(a0), Some(b0), Some(a1), Some(b1)) =
        (seen(a, Symmetry::NONE), seen(b, Symmetry::NONE), seen(a, twist), seen(b, twist))
    else {
        return false;
    };
    let between_drawers = cosine(&a0, &b0);
    cosine(&a0, &a1) < between_drawers && cosine(&b0, &b1) < between_drawers
}

/// A `size × size` picture smoothed by the binomial kernel 1-4-6-4-1 along each axis.
fn blurred(pixels: &[f32], size: usize) -> Vec<f32> {
    const KERNEL: [f32; 5] = [1.0, 4.0, 6.0, 4.0, 1.0];
    let pass = |input: &[f32], step: usize| -> Vec<f32> {
        (0..size * size)
            .map(|i| {
                let (x, y) = (i % size, i / size);
                let along = if step == 1 { x } else { y };
                (0..5)
                    .filter_map(|k| {
                        let at = (along + k).checked_sub(2).filter(|&at| at < size)?;
                        Some(KERNEL[k] * input[i - along * step + at * step])
                    })
                    .sum::<f32>()
                    / 16.0
            })
            .collect()
    };
    pass(&pass(pixels, 1), size)
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b)).max(f32::MIN_POSITIVE)
}

/// No symmetry and no twin's symmetry: a drawing as drawn, before the random changes.
const AS_DRAWN: (TrainingSymmetry, Symmetry) = (TrainingSymmetry::NONE, Symmetry::NONE);

/// `image` rendered for training: seen through `twist` (a twin's symmetry), then the episode's
/// or character's `symmetry`, then the augmentation's random changes.
fn render(
    image: &InkImage,
    preprocessor: &Preprocessor,
    augmentation: &Augmentation,
    (symmetry, twist): (TrainingSymmetry, Symmetry),
    rng: &mut StdRng,
) -> Vec<f32> {
    let distortion = augmentation
        .distortion
        .as_ref()
        .map_or(Distortion::NONE, |c| Distortion::sample(c, preprocessor.size(), rng));
    let distortion = symmetry.apply(distortion);
    // Composed only for twins, so that other runs compute the very same maps as before.
    let distortion = if twist == Symmetry::NONE { distortion } else { distortion.after_symmetry(twist) };
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
        batch.a.push(render(&first.drawings[drawer], preprocessor, augmentation, AS_DRAWN, rng));
        batch.b.push(render(&second.drawings[other], preprocessor, augmentation, AS_DRAWN, rng));
        batch.labels.push(if same { 1.0 } else { 0.0 });
    }
    batch
}

/// One episode: `k` characters of one random alphabet, `drawings` (2 to 20: Omniglot has 20
/// drawers of every character) of each by as many drawers, laid out row by row — drawings `0..k` one
/// per character, then `k..2k` by other drawers, and so on — each character seen through a
/// random symmetry of `symmetries` (one for the whole episode, or one per character, as `scope`
/// says), perhaps replaced by one half of itself (`augmentation.fragments`), by half of itself
/// joined with half of an earlier character (`augmentation.chimeras`), or by a turned or
/// mirrored copy of an earlier character of the episode (`augmentation.twins`: the same
/// drawings, so the two differ by the symmetry alone; an easy negative in practice, as a
/// network trained under every symmetry already tells them apart: docs/training.md).
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
    // The classes a twin may copy (with twins only): each drawn character's drawings, with the
    // symmetry it was seen through.
    let mut originals: Vec<(Vec<InkImage>, TrainingSymmetry)> = Vec::new();
    for (index, &character) in characters.iter().enumerate() {
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
        let drawn: Vec<&InkImage> = chosen.iter().map(|&drawer| &character.drawings[drawer]).collect();
        let halves = fragments_of(&drawn, augmentation, rng)
            .or_else(|| chimeras_of(&drawn, &chosen, &characters[..index], augmentation, rng));
        let drawn: Vec<&InkImage> = halves.as_ref().map_or(drawn, |parts| parts.iter().collect());
        if let Some((class, twist)) = twin_of(&originals, augmentation, preprocessor, rng) {
            let (drawn, symmetry) = &originals[class];
            for (row, drawing) in rows.iter_mut().zip(drawn) {
                row.push(render(drawing, preprocessor, augmentation, (*symmetry, twist), rng));
            }
            continue;
        }
        for (row, drawing) in rows.iter_mut().zip(&drawn) {
            row.push(render(drawing, preprocessor, augmentation, (symmetry, Symmetry::NONE), rng));
        }
        if augmentation.twins.is_some() {
            originals.push((drawn.into_iter().cloned().collect(), symmetry));
        }
    }
    rows.concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 16×16 picture: a full-ink bar over columns 1–6 and rows 1–14, and a dot at (15, 1).
    fn bar_and_dot() -> InkImage {
        let mut ink = vec![0u8; 256];
        for y in 1..15 {
            for x in 1..7 {
                ink[y * 16 + x] = 255;
            }
        }
        ink[16 + 15] = 255;
        InkImage::from_ink(16, 16, ink).expect("16×16")
    }

    #[test]
    fn a_fragment_keeps_only_its_half_of_the_ink_box() {
        let image = bar_and_dot();
        let left = fragment(&image, Half::Left).expect("the bar is most of the ink");
        assert_eq!(left.ink_box(), Some((1, 1, 7, 15)));
        let top = fragment(&image, Half::Top).expect("half the bar and the dot");
        assert_eq!(top.ink_box(), Some((1, 1, 16, 8)));
        assert_eq!(top.ink().iter().filter(|&&v| v > 0).count(), 6 * 7 + 1);
    }

    #[test]
    fn a_half_with_too_little_ink_is_no_fragment() {
        // The right half holds the dot alone: 1 of 85 inked pixels.
        assert_eq!(fragment(&bar_and_dot(), Half::Right), None);
    }

    #[test]
    fn fragments_are_all_or_nothing_across_a_characters_drawings() {
        let image = bar_and_dot();
        let augmentation = Augmentation { fragments: Some(1.0), ..Augmentation::default() };
        let mut halves = [0usize; 2];
        for seed in 0..64 {
            let mut rng = StdRng::seed_from_u64(seed);
            match fragments_of(&[&image, &image], &augmentation, &mut rng) {
                Some(parts) => {
                    assert_eq!(parts.len(), 2);
                    assert_eq!(parts[0], parts[1], "both drawings cut alike");
                    assert_ne!(parts[0], image);
                    halves[0] += 1;
                }
                None => halves[1] += 1,
            }
        }
        // Three of the four halves hold enough ink; the right one never does.
        assert!(halves[0] > 32 && halves[1] > 4, "{halves:?}");
        let off = Augmentation::default();
        assert_eq!(fragments_of(&[&image], &off, &mut StdRng::seed_from_u64(0)), None);
    }

    /// A 16×16 picture of a full-ink bar over rows `rows` and columns 1–14.
    fn across(rows: std::ops::Range<usize>) -> InkImage {
        let mut ink = vec![0u8; 256];
        for y in rows {
            ink[y * 16 + 1..y * 16 + 15].fill(255);
        }
        InkImage::from_ink(16, 16, ink).expect("16×16")
    }

    #[test]
    fn a_chimera_joins_its_own_half_with_the_donors_other_half() {
        // Own: the bar and the dot, whose ink box's middle is column 8, row 8; donor: a bar
        // across rows 10–12 (middle column 8, row 11), moved so that the middles meet.
        let joined = chimera(&bar_and_dot(), &across(10..13), Half::Left).expect("both parts hold ink");
        let inked = |x: usize, y: usize| joined.ink()[y * 16 + x] > 0;
        // The own left half, the bar (columns 1–6, rows 1–14), is kept as it was...
        assert!((1..7).all(|x| (1..15).all(|y| inked(x, y))));
        // ...the donor's right half, columns 8–14, lands three rows up, on rows 7–9...
        assert!((8..15).all(|x| (7..10).all(|y| inked(x, y))));
        // ...and nothing else: not the own right half (the dot), not the donor's left half.
        assert_eq!(joined.ink().iter().filter(|&&v| v > 0).count(), 6 * 14 + 7 * 3);
    }

    #[test]
    fn a_chimera_needs_ink_in_both_parts() {
        // The right half of the bar and the dot holds the dot alone.
        assert_eq!(chimera(&across(10..13), &bar_and_dot(), Half::Left), None);
        assert!(chimera(&across(10..13), &bar_and_dot(), Half::Right).is_some());
    }

    #[test]
    fn chimeras_take_the_same_drawers_half_from_an_earlier_character() {
        let donor = Character { name: "donor".into(), drawings: vec![across(2..7), across(10..13)] };
        let own = [bar_and_dot(), bar_and_dot()];
        let drawn: Vec<&InkImage> = own.iter().collect();
        let augmentation = Augmentation { chimeras: Some(1.0), ..Augmentation::default() };
        let mut made = 0;
        for seed in 0..64 {
            let mut rng = StdRng::seed_from_u64(seed);
            // Drawer 1 of the own character goes with drawer 1 of the donor, and so on.
            if let Some(parts) = chimeras_of(&drawn, &[1, 0], &[&donor], &augmentation, &mut rng) {
                assert_eq!(parts.len(), 2);
                assert_ne!(parts[0], parts[1], "the donor's two drawers differ");
                let half = Half::ALL
                    .into_iter()
                    .find(|&h| chimera(&own[0], &donor.drawings[1], h) == Some(parts[0].clone()));
                let half = half.expect("one of the four cuts");
                assert_eq!(chimera(&own[1], &donor.drawings[0], half), Some(parts[1].clone()));
                made += 1;
            }
        }
        assert!(made > 16, "{made} of 64");
        let mut rng = StdRng::seed_from_u64(0);
        assert_eq!(chimeras_of(&drawn, &[1, 0], &[], &augmentation, &mut rng), None, "no earlier character");
        assert_eq!(chimeras_of(&drawn, &[1, 0], &[&donor], &Augmentation::default(), &mut rng), None);
    }

    /// A 31×31 picture of two strokes of pen `width` from the centre column and row: down and
    /// to the right (an L turned on its corner) if `corner`, else a full cross.
    fn strokes(corner: bool, width: usize) -> InkImage {
        let mut ink = vec![0u8; 31 * 31];
        let reach = |i: usize| if corner { i >= 15 } else { (3..28).contains(&i) };
        for i in (3..28).filter(|&i| reach(i)) {
            for w in 0..width {
                let across = 15 - width / 2 + w;
                ink[i * 31 + across] = 255;
                ink[across * 31 + i] = 255;
            }
        }
        InkImage::from_ink(31, 31, ink).expect("31×31")
    }

    #[test]
    fn twins_copy_asymmetric_characters_only() {
        let preprocessor = Preprocessor::new(32);
        let augmentation = Augmentation { twins: Some(1.0), ..Augmentation::default() };
        // Two drawers of each: the second with a wider pen, as drawers differ.
        let corner = (vec![strokes(true, 1), strokes(true, 3)], TrainingSymmetry::NONE);
        let cross = (vec![strokes(false, 1), strokes(false, 3)], TrainingSymmetry::NONE);
        let mut twists = std::collections::HashSet::new();
        for seed in 0..200 {
            let mut rng = StdRng::seed_from_u64(seed);
            let earlier = [cross.clone(), corner.clone()];
            if let Some((class, twist)) = twin_of(&earlier, &augmentation, &preprocessor, &mut rng) {
                assert_eq!(class, 1, "the cross is the same under every symmetry");
                assert_ne!(twist, Symmetry::NONE);
                twists.insert((twist.quarter_turns, twist.mirrored));
            }
        }
        // The corner's mirror image about its own diagonal is the corner again; the other six
        // symmetries make new characters.
        assert_eq!(twists.len(), 6, "{twists:?}");
        assert!(!twists.contains(&(3, true)), "{twists:?}");
        assert_eq!(
            twin_of(&[corner], &Augmentation::default(), &preprocessor, &mut StdRng::seed_from_u64(0)),
            None
        );
    }
}
