//! Drawings as pen strokes, and how they become pictures the network knows.
//!
//! Omniglot's characters were drawn in a browser and rendered with one fixed pen, 5 pixels wide
//! on the 105-pixel canvas (fitted on the recorded trajectories of
//! `strokes_background_small2.zip`: that pen reproduces the scans best). Relative to the
//! character, though, the pen varies: a character drawn small on that canvas has thick strokes
//! for its size. Preprocessing scales every character's box to the network's square, so the
//! network learnt strokes of a certain width *relative to the character*: about
//! [`OMNIGLOT_PEN_RATIO`] of the longer side of the path's box, within the range the scans span.
//!
//! A person drawing on the page may draw small or large, with a mouse, a finger or a pen, on a
//! screen of any pixel density. So the page does not hand the network its screen pixels: it
//! hands over the strokes, and [`Strokes::to_ink`] paints them with a pen whose width is a
//! fixed fraction of the drawing's own size ([`Pen::Relative`]), the way Omniglot's pen looks on
//! a character of typical size. The result then goes through the same [`Preprocessor`] as a scan.
//!
//! [`Preprocessor`]: crate::preprocess::Preprocessor

use crate::preprocess::{InkImage, PreprocessError};

/// The median ratio of Omniglot's pen (5 pixels at 105) to the longer side of the box of the
/// pen's path, over the 3,120 recorded drawings (5th–95th percentile: see `oneshot strokes`).
pub const OMNIGLOT_PEN_RATIO: f32 = 0.078;
/// Omniglot's pen, in pixels of its 105-pixel canvas.
pub const OMNIGLOT_PEN: f32 = 5.0;
/// The raster's scale: the path's box is painted this many pixels long on its longer side
/// (about Omniglot's median character), so the preprocessor downsamples it as it does a scan.
const BOX_PIXELS: f32 = 64.0;
/// A mark smaller than this fraction of its frame is not blown up to fill the network's square
/// (the preprocessor's rule for pictures, applied to the path).
const MIN_BOX_FRACTION: f32 = 0.2;
/// At most this many points in one drawing: far beyond what a hand draws in a minute.
pub const MAX_POINTS: usize = 100_000;
/// At most this many strokes in one drawing.
pub const MAX_STROKES: usize = 2_000;

/// How wide the pen paints.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pen {
    /// A fixed width in the drawing's own units (Omniglot's pen: [`OMNIGLOT_PEN`] on a 105 frame).
    Absolute(f32),
    /// A fraction of the longer side of the path's box (or of the smallest box a mark is given):
    /// the same look whatever size the character was drawn at.
    Relative(f32),
}

impl Pen {
    /// The pen the page paints with before the network sees a drawing.
    pub const NETWORK: Pen = Pen::Relative(OMNIGLOT_PEN_RATIO);
}

/// A drawing as strokes: each a polyline of `[x, y]` points (y down), in the units of a square
/// frame of side `frame` (the pad, or Omniglot's 105-pixel canvas).
#[derive(Clone, Debug, PartialEq)]
pub struct Strokes {
    strokes: Vec<Vec<[f32; 2]>>,
    frame: f32,
}

impl Strokes {
    /// Checks and wraps strokes: at least one point, all coordinates finite, at most
    /// [`MAX_POINTS`] points and [`MAX_STROKES`] strokes; empty strokes are dropped.
    pub fn new(strokes: Vec<Vec<[f32; 2]>>, frame: f32) -> Result<Self, PreprocessError> {
        let strokes: Vec<Vec<[f32; 2]>> = strokes.into_iter().filter(|s| !s.is_empty()).collect();
        let points: usize = strokes.iter().map(Vec::len).sum();
        if points == 0 {
            return Err(PreprocessError::Blank);
        }
        if points > MAX_POINTS || strokes.len() > MAX_STROKES {
            return Err(PreprocessError::TooManyPoints { points, strokes: strokes.len() });
        }
        if !(frame.is_finite() && frame > 0.0) || strokes.iter().flatten().flatten().any(|v| !v.is_finite()) {
            return Err(PreprocessError::NotFinite);
        }
        Ok(Self { strokes, frame })
    }

    /// Strokes given flat, as a page passes them: `points` holds `x, y` pairs back to back and
    /// `lengths[i]` is the number of points of stroke `i`.
    pub fn from_flat(points: &[f32], lengths: &[u32], frame: f32) -> Result<Self, PreprocessError> {
        let total = lengths.iter().try_fold(0usize, |sum, &n| sum.checked_add(n as usize));
        if total.and_then(|n| n.checked_mul(2)) != Some(points.len()) {
            return Err(PreprocessError::StrokeLengths { values: points.len(), lengths: lengths.len() });
        }
        if lengths.len() > MAX_STROKES || points.len() / 2 > MAX_POINTS {
            return Err(PreprocessError::TooManyPoints { points: points.len() / 2, strokes: lengths.len() });
        }
        let mut pairs = points.chunks_exact(2).map(|p| [p[0], p[1]]);
        let strokes = lengths.iter().map(|&n| pairs.by_ref().take(n as usize).collect()).collect();
        Self::new(strokes, frame)
    }

    /// The strokes.
    pub fn strokes(&self) -> &[Vec<[f32; 2]>] {
        &self.strokes
    }

    /// Side of the square frame the coordinates are in.
    pub fn frame(&self) -> f32 {
        self.frame
    }

    /// The box of the path (the pen's centre line) as `(x0, y0, x1, y1)`.
    pub fn bounds(&self) -> (f32, f32, f32, f32) {
        self.strokes.iter().flatten().fold(
            (f32::INFINITY, f32::INFINITY, f32::NEG_INFINITY, f32::NEG_INFINITY),
            |(x0, y0, x1, y1), &[x, y]| (x0.min(x), y0.min(y), x1.max(x), y1.max(y)),
        )
    }

    /// The longer side of the path's box, never less than a fifth of the frame (so a dot stays a dot).
    pub fn size(&self) -> f32 {
        let (x0, y0, x1, y1) = self.bounds();
        (x1 - x0).max(y1 - y0).max(MIN_BOX_FRACTION * self.frame)
    }

    /// The same strokes moved and scaled: `p ↦ p · scale + offset`, in a frame of `frame`.
    pub fn transformed(&self, scale: f32, offset: [f32; 2], frame: f32) -> Result<Self, PreprocessError> {
        let strokes = self
            .strokes
            .iter()
            .map(|s| s.iter().map(|&[x, y]| [x * scale + offset[0], y * scale + offset[1]]).collect())
            .collect();
        Self::new(strokes, frame)
    }

    /// Paints the strokes with round caps and joins as ink coverage, anti-aliased, at a scale
    /// where the path's box is about 64 pixels on its longer side.
    pub fn to_ink(&self, pen: Pen) -> Result<InkImage, PreprocessError> {
        let size = self.size();
        if !size.is_finite() {
            return Err(PreprocessError::NotFinite);
        }
        let width = match pen {
            Pen::Absolute(width) => width,
            Pen::Relative(ratio) => ratio * size,
        };
        if !(width.is_finite() && width > 0.0) {
            return Err(PreprocessError::NotFinite);
        }
        let scale = BOX_PIXELS / size;
        // A pen wider than the character would only paint a blob (and a huge raster).
        let radius = (0.5 * width * scale).min(BOX_PIXELS);
        let (x0, y0, x1, y1) = self.bounds();
        // Room for the pen and a blank border (the preprocessor reads the background there).
        let pad = radius + 2.0;
        let columns = ((x1 - x0) * scale + 2.0 * pad).ceil() as usize + 1;
        let rows = ((y1 - y0) * scale + 2.0 * pad).ceil() as usize + 1;
        let to_raster = |[x, y]: [f32; 2]| [(x - x0) * scale + pad, (y - y0) * scale + pad];
        let mut coverage = vec![0f32; columns * rows];
        for stroke in &self.strokes {
            let points: Vec<[f32; 2]> = stroke.iter().copied().map(to_raster).collect();
            // A single point is a segment of length zero: a round dot.
            let segments = points.windows(2).map(|w| (w[0], w[1]));
            let dot = (points.len() == 1).then(|| (points[0], points[0]));
            for (a, b) in segments.chain(dot) {
                paint_segment(&mut coverage, columns, rows, a, b, radius);
            }
        }
        let ink = coverage.iter().map(|&c| (c * 255.0).round() as u8).collect();
        InkImage::from_ink(columns, rows, ink)
    }
}

/// Paints one segment of a round pen of `radius` into `coverage` (kept as the maximum, so
/// overlapping strokes do not darken): each pixel is covered by how far its centre lies inside
/// the pen's outline, up to half a pixel either way (a one-pixel anti-aliasing ramp).
fn paint_segment(coverage: &mut [f32], columns: usize, rows: usize, a: [f32; 2], b: [f32; 2], radius: f32) {
    let reach = radius + 1.0;
    let clamp = |v: f32, n: usize| (v.max(0.0) as usize).min(n);
    let (cx0, cx1) =
        (clamp((a[0].min(b[0]) - reach).floor(), columns), clamp((a[0].max(b[0]) + reach).ceil(), columns));
    let (cy0, cy1) =
        (clamp((a[1].min(b[1]) - reach).floor(), rows), clamp((a[1].max(b[1]) + reach).ceil(), rows));
    let d = [b[0] - a[0], b[1] - a[1]];
    let length2 = d[0] * d[0] + d[1] * d[1];
    for y in cy0..cy1 {
        for x in cx0..cx1 {
            let p = [x as f32 + 0.5 - a[0], y as f32 + 0.5 - a[1]];
            let t = if length2 > 0.0 { ((p[0] * d[0] + p[1] * d[1]) / length2).clamp(0.0, 1.0) } else { 0.0 };
            let distance = ((p[0] - t * d[0]).powi(2) + (p[1] - t * d[1]).powi(2)).sqrt();
            let value = (radius + 0.5 - distance).clamp(0.0, 1.0);
            let cell = &mut coverage[y * columns + x];
            *cell = cell.max(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preprocess::Preprocessor;

    /// A plus sign in a 105 frame, as Omniglot's recorder would give it.
    fn plus(scale: f32, offset: f32) -> Strokes {
        let at = |v: f32| v * scale + offset;
        Strokes::new(
            vec![
                vec![[at(20.0), at(45.0)], [at(70.0), at(45.0)]],
                vec![[at(45.0), at(20.0)], [at(45.0), at(70.0)]],
            ],
            105.0,
        )
        .unwrap()
    }

    #[test]
    fn the_relative_pen_looks_the_same_at_any_size() {
        let p = Preprocessor::new(32);
        let render = |strokes: &Strokes| p.render(&strokes.to_ink(Pen::NETWORK).unwrap()).unwrap();
        let reference = render(&plus(1.0, 0.0));
        // (Down to a fifth of the frame: a smaller mark is not blown up.)
        for (scale, offset) in [(0.5, 10.0), (1.8, -5.0), (40.0, 1000.0)] {
            let other = render(&plus(scale, offset));
            let worst = reference.iter().zip(&other).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(worst < 0.05, "scale {scale}: largest difference {worst}");
        }
        // The old fixed pen on a small drawing is far thicker relative to the character.
        let small = plus(0.3, 10.0);
        let fixed = p.render(&small.to_ink(Pen::Absolute(0.045 * 105.0)).unwrap()).unwrap();
        let ink = |v: &[f32]| v.iter().sum::<f32>();
        assert!(ink(&fixed) > 2.0 * ink(&reference), "{} vs {}", ink(&fixed), ink(&reference));
    }

    #[test]
    fn the_pen_width_is_what_was_asked() {
        // One long horizontal stroke: the ink's area over its length is the pen's width.
        let strokes = Strokes::new(vec![vec![[0.0, 50.0], [100.0, 50.0]]], 105.0).unwrap();
        let ink = strokes.to_ink(Pen::Absolute(10.0)).unwrap();
        let area: f32 = ink.ink().iter().map(|&v| v as f32 / 255.0).sum();
        // 64 raster pixels for 100 units; caps add a pen's disc.
        let (radius, length) = (10.0 * 0.64 / 2.0, 64.0);
        let expected = 2.0 * radius * length + std::f32::consts::PI * radius * radius;
        assert!((area - expected).abs() / expected < 0.03, "{area} vs {expected}");
    }

    #[test]
    fn a_dot_is_a_small_round_mark() {
        let dot = Strokes::new(vec![vec![[50.0, 50.0]]], 100.0).unwrap();
        let image = dot.to_ink(Pen::NETWORK).unwrap();
        let inked = image.ink().iter().filter(|&&v| v >= 128).count();
        // A disc of diameter 0.079 × 64 ≈ 5 pixels.
        assert!((12..=30).contains(&inked), "{inked} pixels");
    }

    #[test]
    fn flat_strokes_are_checked() {
        let ok = Strokes::from_flat(&[0.0, 0.0, 1.0, 1.0, 5.0, 5.0], &[2, 1], 10.0).unwrap();
        assert_eq!(ok.strokes(), &[vec![[0.0, 0.0], [1.0, 1.0]], vec![[5.0, 5.0]]]);
        assert!(matches!(
            Strokes::from_flat(&[0.0; 6], &[2, 2], 1.0),
            Err(PreprocessError::StrokeLengths { .. })
        ));
        assert!(matches!(
            Strokes::from_flat(&[0.0; 4], &[u32::MAX, 3], 1.0),
            Err(PreprocessError::StrokeLengths { .. })
        ));
        assert_eq!(Strokes::from_flat(&[], &[], 1.0), Err(PreprocessError::Blank));
        assert_eq!(Strokes::from_flat(&[f32::NAN, 0.0], &[1], 1.0), Err(PreprocessError::NotFinite));
        assert_eq!(Strokes::from_flat(&[0.0, 0.0], &[1], 0.0), Err(PreprocessError::NotFinite));
        let many = vec![0.0; 2 * (MAX_POINTS + 1)];
        assert!(matches!(
            Strokes::from_flat(&many, &[(MAX_POINTS + 1) as u32], 1.0),
            Err(PreprocessError::TooManyPoints { .. })
        ));
    }
}
