//! The one preprocessing step between a picture and the network.
//!
//! Training images (Omniglot scans, 105×105, black ink on white), evaluation images and drawings
//! from the page's canvas (any size, dark or light ink, opaque or transparent background) all go
//! through [`Preprocessor::render`], so a drawn character reaches the network exactly the way a
//! scan does (and the way a training image did, but for the framing of step 2):
//!
//! 1. [`InkImage`] turns pixels into ink coverage in `0..=255`, whatever the polarity: the
//!    background is read off the image border, and ink is the distance from it.
//! 2. The ink's bounding box is found and mapped, centred and with its aspect ratio kept, into the
//!    network's `size × size` square with a small margin ([`Framing`]: 1/16 of the side in
//!    training, 1/64 when recognizing, where the networks answer better on a character shown a
//!    little larger). A tiny mark (a dot) is not blown up to fill the square: the box is never
//!    taken smaller than a fifth of the picture.
//! 3. The square is rendered by supersampled bilinear sampling of the source, so downscaling a
//!    large canvas is anti-aliased just like downscaling a scan.
//!
//! Training distortions (Koch et al.'s random affine maps, [`Distortion`], and elastic
//! [`Warp`]s) are applied in the same pass, in the normalised square, so scale and translation
//! mean the same for every source.

use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

/// Ink below this coverage (out of 255) does not count towards the bounding box: it keeps
/// anti-aliasing fringes and paper noise from stretching the box.
const INK_THRESHOLD: u8 = 64;
/// The smallest bounding box side, as a fraction of the picture's larger side.
const MIN_BOX_FRACTION: f32 = 0.2;
/// Margin on each side of the square in training, as a fraction of its size: the ink box fills
/// 28 of 32 pixels.
const TRAINING_MARGIN: f32 = 1.0 / 16.0;
/// Margin on each side of the square when recognizing, as a fraction of its size: the ink box
/// fills 31 of 32 pixels, so a character shows 1.11× larger than the network learnt it. The
/// networks answer better on characters a little larger than they were trained on: +0.23 ±
/// 0.11 points, trial by trial, on 20,000 fresh validation trials (docs/training.md, "The wider
/// embedding and the framing"), and training with this margin instead bought nothing ("A
/// smaller margin in preprocessing, trained").
const RECOGNITION_MARGIN: f32 = 1.0 / 64.0;
/// At most this many samples per axis per output pixel.
const MAX_SUPERSAMPLING: usize = 8;

/// Why a picture cannot be turned into network input.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PreprocessError {
    /// The pixel buffer does not match the stated width and height.
    #[error("image buffer holds {actual} bytes, but {width}×{height} needs {expected}")]
    BufferSize {
        /// Stated width.
        width: usize,
        /// Stated height.
        height: usize,
        /// Bytes a buffer of that size needs.
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
    /// The picture has no ink that stands out from its background.
    #[error("the image is blank: no ink stands out from the background")]
    Blank,
    /// A drawing has more points or strokes than any hand draws.
    #[error("the drawing has {points} points in {strokes} strokes, more than a drawing can have")]
    TooManyPoints {
        /// Points given.
        points: usize,
        /// Strokes given.
        strokes: usize,
    },
    /// The stroke lengths do not add up to the points given.
    #[error("{values} coordinates do not make the {lengths} strokes their lengths announce")]
    StrokeLengths {
        /// Coordinates given (two per point).
        values: usize,
        /// Strokes announced.
        lengths: usize,
    },
    /// A coordinate, frame or pen width is not a finite positive number where one is needed.
    #[error("the drawing has a coordinate or size that is not a finite number")]
    NotFinite,
}

/// A greyscale picture as ink coverage: 0 is background, 255 is full ink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InkImage {
    width: usize,
    height: usize,
    ink: Vec<u8>,
}

impl InkImage {
    /// Ink coverage given directly (row-major, 0 = background).
    pub fn from_ink(width: usize, height: usize, ink: Vec<u8>) -> Result<Self, PreprocessError> {
        check_len(width, height, 1, ink.len())?;
        Ok(Self { width, height, ink })
    }

    /// A greyscale (luma) picture of either polarity: the background is the median of the border.
    pub fn from_luma(width: usize, height: usize, luma: &[u8]) -> Result<Self, PreprocessError> {
        check_len(width, height, 1, luma.len())?;
        Ok(Self::from_luma_unchecked(width, height, luma.to_vec()))
    }

    /// An RGBA picture, such as a canvas's `ImageData`. Where the border is mostly transparent,
    /// ink is opacity (strokes of any colour on a transparent canvas); otherwise the picture is
    /// composited over white and read as greyscale of either polarity.
    pub fn from_rgba(width: usize, height: usize, rgba: &[u8]) -> Result<Self, PreprocessError> {
        check_len(width, height, 4, rgba.len())?;
        let pixels = || rgba.chunks_exact(4);
        let border_alpha = median(border(width, height).map(|i| rgba[4 * i + 3]).collect());
        if border_alpha < 128 {
            let ink = pixels().map(|p| p[3]).collect();
            return Ok(Self { width, height, ink });
        }
        let luma = pixels()
            .map(|p| {
                let l = (0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32) / 255.0;
                let a = p[3] as f32 / 255.0;
                ((1.0 - a + a * l) * 255.0).round() as u8
            })
            .collect();
        Ok(Self::from_luma_unchecked(width, height, luma))
    }

    fn from_luma_unchecked(width: usize, height: usize, luma: Vec<u8>) -> Self {
        let background = median(border(width, height).map(|i| luma[i]).collect()) as f32;
        // Ink is the distance from the background, scaled so the far end of the range is 255.
        let range = background.max(255.0 - background).max(1.0);
        let ink =
            luma.iter().map(|&l| ((l as f32 - background).abs() / range * 255.0).round() as u8).collect();
        Self { width, height, ink }
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Ink coverage, row-major.
    pub fn ink(&self) -> &[u8] {
        &self.ink
    }

    /// The bounding box of the ink as `(x0, y0, x1, y1)`, exclusive ends, or `None` if blank.
    pub fn ink_box(&self) -> Option<(usize, usize, usize, usize)> {
        let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
        for (i, &v) in self.ink.iter().enumerate() {
            if v >= INK_THRESHOLD {
                let (x, y) = (i % self.width, i / self.width);
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x + 1);
                y1 = y1.max(y + 1);
            }
        }
        (x1 > 0).then_some((x0, y0, x1, y1))
    }

    /// The same picture with every stroke one pixel wider on each side (`change > 0`, a grey
    /// dilation over the pixel and its four neighbours) or narrower (`change < 0`, the matching
    /// erosion), repeated `|change|` times. Training varies Omniglot's fixed pen this way, so the
    /// network does not learn one stroke width: an Omniglot pen is about 4.8 pixels wide at 105
    /// pixels, so one step either way is ±40 % of it and never breaks a stroke.
    pub fn with_stroke_change(&self, change: i8) -> InkImage {
        let (w, h) = (self.width, self.height);
        let mut ink = self.ink.clone();
        for _ in 0..change.unsigned_abs() {
            let source = ink.clone();
            for y in 0..h {
                for x in 0..w {
                    let at = |xx: usize, yy: usize| source[yy * w + xx];
                    let mut values = [at(x, y); 5];
                    if x > 0 {
                        values[1] = at(x - 1, y);
                    }
                    if x + 1 < w {
                        values[2] = at(x + 1, y);
                    }
                    if y > 0 {
                        values[3] = at(x, y - 1);
                    }
                    if y + 1 < h {
                        values[4] = at(x, y + 1);
                    }
                    // Off-picture neighbours count as the pixel itself, so the border neither
                    // grows nor eats ink.
                    ink[y * w + x] = if change > 0 {
                        values.into_iter().max().unwrap_or(0)
                    } else {
                        values.into_iter().min().unwrap_or(0)
                    };
                }
            }
        }
        InkImage { width: w, height: h, ink }
    }

    /// The pen's width in pixels, estimated as twice the ink's area over its outline's length
    /// (exact for long strokes of even width, whose outline is twice their length): what
    /// `oneshot strokes` reports on the scans, where it also compares it with the pen's recorded
    /// trajectory. `None` for a blank picture.
    pub fn stroke_width(&self) -> Option<f32> {
        let inked = |i: usize| self.ink[i] >= 128;
        let (w, h) = (self.width, self.height);
        let (mut area, mut outline) = (0usize, 0usize);
        for y in 0..h {
            for x in 0..w {
                let here = inked(y * w + x);
                area += usize::from(here);
                // Edges between ink and background, the picture's border counting as background.
                let right = x + 1 < w && inked(y * w + x + 1);
                let below = y + 1 < h && inked((y + 1) * w + x);
                outline += usize::from(here != right) + usize::from(here != below);
                outline += usize::from(here && x == 0) + usize::from(here && y == 0);
            }
        }
        (area > 0).then(|| 2.0 * area as f32 / outline.max(1) as f32)
    }

    /// Bilinear ink at a continuous position (pixel centres at `k + 0.5`), 0 outside.
    fn sample(&self, x: f32, y: f32) -> f32 {
        let (fx, fy) = (x - 0.5, y - 0.5);
        let (x0, y0) = (fx.floor(), fy.floor());
        let (tx, ty) = (fx - x0, fy - y0);
        let at = |xi: f32, yi: f32| -> f32 {
            if xi < 0.0 || yi < 0.0 || xi >= self.width as f32 || yi >= self.height as f32 {
                0.0
            } else {
                self.ink[yi as usize * self.width + xi as usize] as f32
            }
        };
        let top = at(x0, y0) * (1.0 - tx) + at(x0 + 1.0, y0) * tx;
        let bottom = at(x0, y0 + 1.0) * (1.0 - tx) + at(x0 + 1.0, y0 + 1.0) * tx;
        (top * (1.0 - ty) + bottom * ty) / 255.0
    }
}

fn check_len(width: usize, height: usize, channels: usize, actual: usize) -> Result<(), PreprocessError> {
    let expected = width * height * channels;
    if expected == actual && expected > 0 {
        Ok(())
    } else {
        Err(PreprocessError::BufferSize { width, height, expected, actual })
    }
}

/// Indices of the outermost ring of pixels.
fn border(width: usize, height: usize) -> impl Iterator<Item = usize> {
    (0..width * height).filter(move |i| {
        let (x, y) = (i % width, i / width);
        x == 0 || y == 0 || x + 1 == width || y + 1 == height
    })
}

fn median(mut values: Vec<u8>) -> u8 {
    values.sort_unstable();
    values[values.len() / 2]
}

/// A 2×2 linear map plus translation, from output pixel positions to other positions.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Affine {
    m: [[f32; 2]; 2],
    t: [f32; 2],
}

impl Affine {
    const IDENTITY: Affine = Affine { m: [[1.0, 0.0], [0.0, 1.0]], t: [0.0, 0.0] };

    fn apply(&self, p: [f32; 2]) -> [f32; 2] {
        [
            self.m[0][0] * p[0] + self.m[0][1] * p[1] + self.t[0],
            self.m[1][0] * p[0] + self.m[1][1] * p[1] + self.t[1],
        ]
    }

    /// `self ∘ other`: apply `other` first.
    fn then_after(&self, other: &Affine) -> Affine {
        let m = |r: usize, c: usize| self.m[r][0] * other.m[0][c] + self.m[r][1] * other.m[1][c];
        Affine { m: [[m(0, 0), m(0, 1)], [m(1, 0), m(1, 1)]], t: self.apply(other.t) }
    }

    /// The largest factor by which the map stretches distances (a bound, for supersampling).
    fn stretch(&self) -> f32 {
        let col = |c: usize| (self.m[0][c].powi(2) + self.m[1][c].powi(2)).sqrt();
        col(0).max(col(1))
    }
}

/// Koch et al.'s random affine distortion of a training image: rotation, shear, scale and
/// translation, each drawn with probability one half. Ranges are in the normalised square, with
/// translation in units of a 105-pixel Omniglot image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DistortionConfig {
    /// Largest rotation, in degrees.
    pub rotation_degrees: f32,
    /// Largest shear along each axis.
    pub shear: f32,
    /// Scale range along each axis.
    pub scale: (f32, f32),
    /// Largest translation along each axis, in pixels of a 105-pixel image.
    pub translation: f32,
    /// Probability of drawing each component.
    pub probability: f64,
}

impl Default for DistortionConfig {
    fn default() -> Self {
        Self { rotation_degrees: 10.0, shear: 0.3, scale: (0.8, 1.2), translation: 2.0, probability: 0.5 }
    }
}

/// How much a tilted (45°) picture is shrunk: turned by 45°, the corners of a drawing's framed
/// ink box reach √2 times its half-side from the centre; at 0.8 they land at 1.13 times it, just
/// inside the square at training's margin of 1/16 (1.14 times it; at the recognizers' 1/64,
/// 1.03 times it, so there the far corners of a box filled to them fall outside).
pub const TILTED_SCALE: f32 = 0.8;

/// One of the eight symmetries of the square (the dihedral group): a mirror image about the
/// vertical axis, if `mirrored`, then `quarter_turns` turns by 90°.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Symmetry {
    /// Turns by 90° (0..4).
    pub quarter_turns: u8,
    /// Mirror the picture left to right first.
    pub mirrored: bool,
}

impl Symmetry {
    /// The identity.
    pub const NONE: Symmetry = Symmetry { quarter_turns: 0, mirrored: false };

    /// The `i`-th of the eight symmetries (`i % 8`): 0–3 are the turns, 4–7 the mirrored turns.
    pub fn nth(i: u8) -> Symmetry {
        Symmetry { quarter_turns: i % 4, mirrored: i % 8 >= 4 }
    }
}

/// One drawn distortion, in the coordinates of the output square.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Distortion(Affine);

impl Distortion {
    /// No distortion.
    pub const NONE: Distortion = Distortion(Affine::IDENTITY);

    /// The test-time views of a picture: the first `n` (1 to 16) symmetries of the square, the
    /// picture as drawn first (see [`Symmetry::nth`]), then the same eight tilted by 45°
    /// ([`after_tilt`](Self::after_tilt); for networks trained with the octagon's symmetries,
    /// `train --symmetries octagon`). The network learnt every turned and mirrored alphabet as
    /// an alphabet of its own, so a pair of pictures seen through the same symmetry is a second
    /// opinion on the pair; the recognizers average the head's logits over the views. (Mild
    /// random distortions, averaged into one embedding, stopped helping once the network was
    /// trained with symmetries.)
    pub fn views(n: usize) -> Vec<Distortion> {
        (0..n.clamp(1, 16) as u8)
            .map(|i| {
                let view = Distortion::NONE.after_symmetry(Symmetry::nth(i));
                if i >= 8 { view.after_tilt() } else { view }
            })
            .collect()
    }

    /// This view of a picture already rendered by [`Preprocessor::render`] (`size²` values):
    /// the rendered pixels moved. For a symmetry of the square this is exactly
    /// [`Preprocessor::render_distorted`] with this view (a symmetry maps the square's pixel
    /// centres onto each other), so a picture given only as what the network sees, such as
    /// the page's occlusion map, can still be seen through every view; other distortions take
    /// the nearest pixel.
    pub fn apply_to_render(&self, plain: &[f32], size: usize) -> Vec<f32> {
        let half = size as f32 / 2.0;
        let mut out = Vec::with_capacity(size * size);
        for row in 0..size {
            for col in 0..size {
                let [x, y] = self.0.apply([col as f32 + 0.5 - half, row as f32 + 0.5 - half]);
                let (x, y) = ((x + half).floor(), (y + half).floor());
                let inside = x >= 0.0 && y >= 0.0 && x < size as f32 && y < size as f32;
                out.push(if inside { plain[y as usize * size + x as usize] } else { 0.0 });
            }
        }
        out
    }

    /// Every one of `views` of pictures already rendered (see
    /// [`apply_to_render`](Self::apply_to_render)), back to back, `views.len()` per picture.
    pub fn apply_all_to_renders(views: &[Distortion], renders: &[Vec<f32>], size: usize) -> Vec<Vec<f32>> {
        renders.iter().flat_map(|plain| views.iter().map(move |v| v.apply_to_render(plain, size))).collect()
    }

    /// This distortion after a symmetry of the square (a turn and perhaps a mirror image) about
    /// its centre: for training, a character turned or mirrored is a new character.
    pub fn after_symmetry(self, symmetry: Symmetry) -> Distortion {
        let (sin, cos) = match symmetry.quarter_turns % 4 {
            0 => (0.0, 1.0),
            1 => (1.0, 0.0),
            2 => (0.0, -1.0),
            _ => (-1.0, 0.0),
        };
        let flip = if symmetry.mirrored { -1.0 } else { 1.0 };
        // Mirror first (x → −x), then turn.
        Distortion(self.0.then_after(&Affine { m: [[flip * cos, -sin], [flip * sin, cos]], t: [0.0, 0.0] }))
    }

    /// This distortion after a turn by `degrees` and a uniform scaling that shows the picture
    /// `scale` times as large, about the square's centre.
    fn after_similarity(self, degrees: f32, scale: f32) -> Distortion {
        // The map sends output positions to the source (see `render_warped`), so it holds the
        // inverse scale; a turn's direction does not matter to training.
        let (sin, cos) = degrees.to_radians().sin_cos();
        let inverse = 1.0 / scale;
        Distortion(self.0.then_after(&Affine {
            m: [[inverse * cos, -inverse * sin], [inverse * sin, inverse * cos]],
            t: [0.0, 0.0],
        }))
    }

    /// This distortion after a turn by 45° that shrinks the picture to [`TILTED_SCALE`]: a
    /// tilted alphabet, which `train --symmetries octagon` teaches as an alphabet of its own.
    pub fn after_tilt(self) -> Distortion {
        self.after_similarity(45.0, TILTED_SCALE)
    }

    /// Draws a distortion for a square of `size` pixels.
    pub fn sample<R: Rng + ?Sized>(config: &DistortionConfig, size: usize, rng: &mut R) -> Self {
        let draw = |range: f32, rng: &mut R| {
            if rng.random_bool(config.probability) { rng.random_range(-range..=range) } else { 0.0 }
        };
        let theta = draw(config.rotation_degrees, rng).to_radians();
        let (shear_x, shear_y) = (draw(config.shear, rng), draw(config.shear, rng));
        let scale = |rng: &mut R| {
            if rng.random_bool(config.probability) {
                rng.random_range(config.scale.0..=config.scale.1)
            } else {
                1.0
            }
        };
        let (scale_x, scale_y) = (scale(rng), scale(rng));
        let pixels = config.translation * size as f32 / 105.0;
        let (tx, ty) = (draw(pixels, rng), draw(pixels, rng));
        let (sin, cos) = theta.sin_cos();
        let rotation = Affine { m: [[cos, -sin], [sin, cos]], t: [0.0, 0.0] };
        let shear = Affine { m: [[1.0, shear_x], [shear_y, 1.0]], t: [0.0, 0.0] };
        let scaling = Affine { m: [[scale_x, 0.0], [0.0, scale_y]], t: [0.0, 0.0] };
        let mut map = rotation.then_after(&shear).then_after(&scaling);
        map.t = [tx, ty];
        Distortion(map)
    }
}

/// Control points per side of an elastic [`Warp`]'s lattice (three cells per side).
const WARP_POINTS: usize = 4;

/// An elastic distortion of a training image: a smooth random displacement of the output
/// square. An affine map moves a whole character alike; a warp bends its strokes and shifts
/// them against each other, the way two people's drawings of one character differ.
///
/// The control points of a lattice spanning the square are each moved by a random offset, and
/// every position in between by the smooth (smoothstep-weighted) blend of its cell's four corners.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Warp {
    /// Offsets of the control points, in output pixels, row-major.
    offsets: [[f32; 2]; WARP_POINTS * WARP_POINTS],
    /// Side of the output square, in pixels.
    size: f32,
}

impl Warp {
    /// Draws a warp of a square of `size` pixels: every control point moved along each axis by
    /// up to `amplitude` pixels of a 105-pixel Omniglot image (uniformly).
    pub fn sample<R: Rng + ?Sized>(amplitude: f32, size: usize, rng: &mut R) -> Self {
        let reach = amplitude.abs() * size as f32 / 105.0;
        let mut offsets = [[0.0; 2]; WARP_POINTS * WARP_POINTS];
        if reach > 0.0 {
            for offset in &mut offsets {
                *offset = [rng.random_range(-reach..=reach), rng.random_range(-reach..=reach)];
            }
        }
        Self { offsets, size: size as f32 }
    }

    /// Where output position `p` (pixels from the square's corner) is taken from instead.
    fn displace(&self, p: [f32; 2]) -> [f32; 2] {
        let cells = (WARP_POINTS - 1) as f32;
        let cell = |x: f32| {
            let u = (x / self.size * cells).clamp(0.0, cells);
            let i = (u.floor() as usize).min(WARP_POINTS - 2);
            let t = u - i as f32;
            (i, t * t * (3.0 - 2.0 * t))
        };
        let ((col, s), (row, t)) = (cell(p[0]), cell(p[1]));
        let at = |r: usize, c: usize, axis: usize| self.offsets[r * WARP_POINTS + c][axis];
        let blend = |axis: usize| {
            let top = at(row, col, axis) * (1.0 - s) + at(row, col + 1, axis) * s;
            let bottom = at(row + 1, col, axis) * (1.0 - s) + at(row + 1, col + 1, axis) * s;
            top * (1.0 - t) + bottom * t
        };
        [p[0] + blend(0), p[1] + blend(1)]
    }
}

/// Renders pictures into the network's square input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preprocessor {
    size: usize,
    framing: Framing,
}

/// How much room a [`Preprocessor`] leaves around a character's ink box.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// As the networks are trained: a margin of 1/16 of the square on each side.
    Training,
    /// As the recognizers look: a margin of 1/64, the character 1.11× larger.
    Recognition,
}

impl Framing {
    /// The margin on each side, as a fraction of the square's side.
    pub fn margin(self) -> f32 {
        match self {
            Framing::Training => TRAINING_MARGIN,
            Framing::Recognition => RECOGNITION_MARGIN,
        }
    }
}

impl Preprocessor {
    /// A preprocessor for a `size × size` network input, framed as in training.
    pub fn new(size: usize) -> Self {
        Self::framed(size, Framing::Training)
    }

    /// A preprocessor for a `size × size` network input, framed as the recognizers look at
    /// pictures ([`Framing::Recognition`]).
    pub fn for_recognition(size: usize) -> Self {
        Self::framed(size, Framing::Recognition)
    }

    /// A preprocessor for a `size × size` network input with the given framing.
    pub fn framed(size: usize, framing: Framing) -> Self {
        Self { size, framing }
    }

    /// Side of the square, in pixels.
    pub fn size(&self) -> usize {
        self.size
    }

    /// How the ink box is framed in the square.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// The network input for `image`: `size²` values in `0..=1`, row-major, 1 = ink.
    pub fn render(&self, image: &InkImage) -> Result<Vec<f32>, PreprocessError> {
        self.render_distorted(image, &Distortion::NONE)
    }

    /// Like [`render`](Self::render), seen through a training distortion.
    pub fn render_distorted(
        &self,
        image: &InkImage,
        distortion: &Distortion,
    ) -> Result<Vec<f32>, PreprocessError> {
        self.render_warped(image, distortion, None)
    }

    /// Like [`render_distorted`](Self::render_distorted), each output position first displaced
    /// by an elastic `warp`, if any.
    pub fn render_warped(
        &self,
        image: &InkImage,
        distortion: &Distortion,
        warp: Option<&Warp>,
    ) -> Result<Vec<f32>, PreprocessError> {
        let (x0, y0, x1, y1) = image.ink_box().ok_or(PreprocessError::Blank)?;
        let size = self.size as f32;
        let min_side = MIN_BOX_FRACTION * image.width.max(image.height) as f32;
        let side = ((x1 - x0).max(y1 - y0) as f32).max(min_side);
        // Source pixels per output pixel.
        let scale = side / (size * (1.0 - 2.0 * self.framing.margin()));
        let centre = [(x0 + x1) as f32 / 2.0, (y0 + y1) as f32 / 2.0];
        let half = size / 2.0;
        // Output position → centred → distorted (the map sends source-side positions to output
        // positions, so sampling uses its inverse; the distribution is symmetric, so we sample
        // the inverse directly) → source position.
        let to_centre = Affine { m: Affine::IDENTITY.m, t: [-half, -half] };
        let to_source = Affine { m: [[scale, 0.0], [0.0, scale]], t: centre };
        let map = to_source.then_after(&distortion.0).then_after(&to_centre);
        let n = (map.stretch().ceil() as usize).clamp(1, MAX_SUPERSAMPLING);
        let step = 1.0 / n as f32;
        let mut out = Vec::with_capacity(self.size * self.size);
        for row in 0..self.size {
            for col in 0..self.size {
                let mut total = 0.0;
                for sy in 0..n {
                    for sx in 0..n {
                        let p =
                            [col as f32 + (sx as f32 + 0.5) * step, row as f32 + (sy as f32 + 0.5) * step];
                        let p = warp.map_or(p, |warp| warp.displace(p));
                        let [x, y] = map.apply(p);
                        total += image.sample(x, y);
                    }
                }
                out.push(total / (n * n) as f32);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    /// A 105×105 Omniglot-like scan: black strokes (a plus sign) on white, offset from centre.
    fn scan() -> Vec<u8> {
        let mut luma = vec![255u8; 105 * 105];
        for i in 20..70 {
            for w in 0..3 {
                luma[(44 + w) * 105 + i] = 0; // horizontal bar, y = 44..47
                luma[i * 105 + 44 + w] = 0; // vertical bar, x = 44..47
            }
        }
        luma
    }

    fn ink_centroid(pixels: &[f32], size: usize) -> (f32, f32) {
        let (mut sx, mut sy, mut total) = (0.0, 0.0, 0.0);
        for (i, &v) in pixels.iter().enumerate() {
            sx += v * ((i % size) as f32 + 0.5);
            sy += v * ((i / size) as f32 + 0.5);
            total += v;
        }
        (sx / total, sy / total)
    }

    #[test]
    fn scan_is_centred_and_fills_the_square() {
        let image = InkImage::from_luma(105, 105, &scan()).unwrap();
        assert_eq!(image.ink_box(), Some((20, 20, 70, 70)));
        let out = Preprocessor::new(32).render(&image).unwrap();
        assert_eq!(out.len(), 32 * 32);
        assert!(out.iter().all(|v| (0.0..=1.0).contains(v)));
        let (cx, cy) = ink_centroid(&out, 32);
        assert!((cx - 16.0).abs() < 1.0 && (cy - 16.0).abs() < 1.0, "centroid {cx},{cy}");
        // The margin stays empty, and the bars reach close to it.
        assert!(out[..32].iter().all(|&v| v == 0.0), "top row has ink");
        assert!(out[16 * 32 + 3] > 0.2, "bar does not reach the margin");
    }

    #[test]
    fn recognition_framing_shows_the_character_larger_about_the_same_centre() {
        let image = InkImage::from_luma(105, 105, &scan()).unwrap();
        // Columns of the horizontal bar's middle row that hold any ink.
        let bar = |out: &[f32]| -> Vec<usize> { (0..32).filter(|&x| out[16 * 32 + x] > 0.05).collect() };
        let trained = Preprocessor::new(32).render(&image).unwrap();
        let seen = Preprocessor::for_recognition(32).render(&image).unwrap();
        // The bar is the box's whole width: 28 of 32 pixels in training, 31 when recognizing.
        assert_eq!(bar(&trained), (2..30).collect::<Vec<_>>());
        // 31 pixels centred on 32: the two edge columns are half covered.
        assert_eq!(bar(&seen), (0..32).collect::<Vec<_>>());
        assert!(seen[16 * 32] < 0.75 && seen[16 * 32 + 31] < 0.75 && seen[16 * 32 + 1] > 0.9);
        let (tx, ty) = ink_centroid(&trained, 32);
        let (sx, sy) = ink_centroid(&seen, 32);
        assert!((tx - sx).abs() < 0.2 && (ty - sy).abs() < 0.2, "centroids {tx},{ty} and {sx},{sy}");
        let ink = |out: &[f32]| out.iter().sum::<f32>();
        let ratio = ink(&seen) / ink(&trained);
        assert!((1.18..1.30).contains(&ratio), "ink grows by the area ratio (31/28)² = 1.23, not {ratio}");
        assert_eq!(Preprocessor::for_recognition(32).framing(), Framing::Recognition);
    }

    #[test]
    fn drawing_matches_scan_whatever_size_position_or_polarity() {
        let reference =
            Preprocessor::new(32).render(&InkImage::from_luma(105, 105, &scan()).unwrap()).unwrap();
        // The same plus, drawn 3× larger on a 400×300 transparent canvas in white, off-centre.
        let (w, h) = (400, 300);
        let mut rgba = vec![0u8; w * h * 4];
        for i in 0..150 {
            for d in 0..9 {
                for (x, y) in [(40 + i, 110 + 72 + d), (40 + 72 + d, 110 + i)] {
                    rgba[4 * (y * w + x)..4 * (y * w + x) + 4].copy_from_slice(&[255, 255, 255, 255]);
                }
            }
        }
        let drawn = Preprocessor::new(32).render(&InkImage::from_rgba(w, h, &rgba).unwrap()).unwrap();
        let diff: f32 = reference.iter().zip(&drawn).map(|(a, b)| (a - b).abs()).sum::<f32>() / 1024.0;
        assert!(diff < 0.03, "mean abs difference {diff}");
        // And white ink on an opaque black canvas reads the same as black on white.
        let dark: Vec<u8> = scan().iter().map(|v| 255 - v).collect();
        let inverted = Preprocessor::new(32).render(&InkImage::from_luma(105, 105, &dark).unwrap()).unwrap();
        assert_eq!(inverted, reference);
    }

    #[test]
    fn blank_full_and_malformed_inputs_are_errors() {
        let p = Preprocessor::new(32);
        let blank = InkImage::from_luma(50, 50, &[255; 2500]).unwrap();
        assert_eq!(p.render(&blank), Err(PreprocessError::Blank));
        // A canvas filled with ink has nothing that differs from its border.
        let full = InkImage::from_rgba(20, 20, &[0, 0, 0, 255].repeat(400)).unwrap();
        assert_eq!(p.render(&full), Err(PreprocessError::Blank));
        assert!(matches!(InkImage::from_rgba(10, 10, &[0; 7]), Err(PreprocessError::BufferSize { .. })));
        assert!(matches!(InkImage::from_luma(0, 0, &[]), Err(PreprocessError::BufferSize { .. })));
    }

    #[test]
    fn a_dot_stays_small() {
        let mut luma = vec![255u8; 200 * 200];
        for y in 98..102 {
            for x in 98..102 {
                luma[y * 200 + x] = 0;
            }
        }
        let out = Preprocessor::new(32).render(&InkImage::from_luma(200, 200, &luma).unwrap()).unwrap();
        let inked = out.iter().filter(|&&v| v > 0.1).count();
        assert!(inked > 0 && inked < 20, "{inked} pixels inked");
    }

    #[test]
    fn stroke_changes_widen_and_narrow_the_pen() {
        let image = InkImage::from_luma(105, 105, &scan()).unwrap();
        // The plus's bars are 3 pixels wide.
        let width = |i: &InkImage| i.stroke_width().unwrap();
        assert!((width(&image) - 3.0).abs() < 0.3, "{}", width(&image));
        let wider = image.with_stroke_change(1);
        assert!((width(&wider) - 5.0).abs() < 0.4, "{}", width(&wider));
        assert_eq!(wider.ink_box(), Some((19, 19, 71, 71)));
        let narrower = image.with_stroke_change(-1);
        assert!((width(&narrower) - 1.0).abs() < 0.3, "{}", width(&narrower));
        assert_eq!(image.with_stroke_change(0), image);
        assert_eq!(InkImage::from_luma(4, 4, &[255; 16]).unwrap().stroke_width(), None);
    }

    #[test]
    fn views_are_the_plain_picture_then_its_symmetries() {
        assert_eq!(Distortion::views(1), vec![Distortion::NONE]);
        assert_eq!(Distortion::views(0), vec![Distortion::NONE]);
        let views = Distortion::views(8);
        assert_eq!(views.len(), 8);
        assert_eq!(views[0], Distortion::NONE);
        assert_eq!(Distortion::views(20).len(), 16);
        assert_eq!(Distortion::views(16)[9], Distortion::NONE.after_symmetry(Symmetry::nth(1)).after_tilt());
        // Eight different pictures of an asymmetric drawing: every symmetry of the square.
        let mut ink = vec![0u8; 40 * 40];
        for i in 5..35 {
            ink[8 * 40 + i] = 255; // a long bar at the top
            ink[i * 40 + 8] = 255; // a long bar on the left
        }
        ink[30 * 40 + 25] = 255; // and a dot off the diagonal
        let image = InkImage::from_ink(40, 40, ink).unwrap();
        let p = Preprocessor::new(32);
        let rendered: Vec<Vec<f32>> = views.iter().map(|v| p.render_distorted(&image, v).unwrap()).collect();
        for a in 0..8 {
            for b in a + 1..8 {
                assert!(rendered[a] != rendered[b], "views {a} and {b} render alike");
            }
        }
        // Each view is the plain rendering's pixels moved.
        for (view, expected) in views.iter().zip(&rendered) {
            let moved = view.apply_to_render(&rendered[0], 32);
            assert!(moved.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-5));
        }
        // A half turn twice is the picture itself (up to resampling).
        let twice = Distortion::NONE.after_symmetry(Symmetry::nth(2)).after_symmetry(Symmetry::nth(2));
        let back = p.render_distorted(&image, &twice).unwrap();
        let plain = p.render(&image).unwrap();
        assert!(back.iter().zip(&plain).all(|(a, b)| (a - b).abs() < 1e-3));
    }

    #[test]
    fn distortions_are_bounded_and_seeded() {
        let image = InkImage::from_luma(105, 105, &scan()).unwrap();
        let p = Preprocessor::new(32);
        let config = DistortionConfig::default();
        let draw = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            let d = Distortion::sample(&config, 32, &mut rng);
            p.render_distorted(&image, &d).unwrap()
        };
        assert_eq!(draw(7), draw(7));
        let plain = p.render(&image).unwrap();
        let mut changed = 0;
        for seed in 0..20 {
            let out = draw(seed);
            let (cx, cy) = ink_centroid(&out, 32);
            assert!((cx - 16.0).abs() < 3.0 && (cy - 16.0).abs() < 3.0);
            changed += usize::from(out != plain);
        }
        assert!(changed >= 15, "only {changed} of 20 distortions changed the image");
    }

    #[test]
    fn warps_move_the_lattice_and_blend_between_it() {
        let mut rng = StdRng::seed_from_u64(3);
        let warp = Warp::sample(6.0, 32, &mut rng);
        let reach = 6.0 * 32.0 / 105.0;
        assert!(warp.offsets.iter().flatten().all(|d| d.abs() <= reach));
        assert!(warp.offsets.iter().flatten().any(|d| d.abs() > reach / 2.0), "offsets all tiny");
        let moved = |p: [f32; 2]| {
            let q = warp.displace(p);
            [q[0] - p[0], q[1] - p[1]]
        };
        let close = |a: [f32; 2], b: [f32; 2]| (a[0] - b[0]).abs() < 1e-4 && (a[1] - b[1]).abs() < 1e-4;
        // Control points move by their own offsets; the square's corners are the outer ones.
        assert!(close(moved([0.0, 0.0]), warp.offsets[0]));
        assert!(close(moved([32.0, 32.0]), warp.offsets[WARP_POINTS * WARP_POINTS - 1]));
        assert!(close(moved([32.0 / 3.0, 64.0 / 3.0]), warp.offsets[2 * WARP_POINTS + 1]));
        // Midway along a cell's top edge, the smooth blend is the mean of its two corners.
        let half = moved([16.0 / 3.0, 0.0]);
        let mean = (warp.offsets[0][0] + warp.offsets[1][0]) / 2.0;
        assert!((half[0] - mean).abs() < 1e-4, "{half:?} against {mean}");
        // In between, never further than the farthest control point.
        for i in 0..=64 {
            let d = moved([i as f32 / 2.0, (64 - i) as f32 / 2.0]);
            assert!(d[0].abs() <= reach + 1e-4 && d[1].abs() <= reach + 1e-4);
        }
    }

    #[test]
    fn warps_bend_the_strokes_and_keep_the_ink() {
        let image = InkImage::from_luma(105, 105, &scan()).unwrap();
        let p = Preprocessor::new(32);
        let plain = p.render(&image).unwrap();
        let still = Warp::sample(0.0, 32, &mut StdRng::seed_from_u64(1));
        assert_eq!(p.render_warped(&image, &Distortion::NONE, Some(&still)).unwrap(), plain);
        let draw = |seed| {
            let warp = Warp::sample(6.0, 32, &mut StdRng::seed_from_u64(seed));
            p.render_warped(&image, &Distortion::NONE, Some(&warp)).unwrap()
        };
        assert_eq!(draw(7), draw(7));
        let ink = |v: &[f32]| v.iter().sum::<f32>();
        // The plus's horizontal bar: the rows holding its ink, plain and warped.
        let bar_rows = |v: &[f32]| (0..32).filter(|&y| v[y * 32 + 6] > 0.3).collect::<Vec<_>>();
        let mut bent = 0;
        for seed in 0..20 {
            let out = draw(seed);
            let ratio = ink(&out) / ink(&plain);
            assert!((0.75..1.33).contains(&ratio), "seed {seed}: ink changed by a factor {ratio}");
            bent += usize::from(bar_rows(&out) != bar_rows(&plain));
        }
        assert!(bent >= 10, "only {bent} of 20 warps moved the bar's end");
    }

    #[test]
    fn a_tilt_by_45_degrees_turns_a_plus_into_a_cross_inside_the_square() {
        let image = InkImage::from_luma(105, 105, &scan()).unwrap();
        let p = Preprocessor::framed(32, Framing::Training);
        let plain = p.render(&image).unwrap();
        let tilted = p.render_distorted(&image, &Distortion::NONE.after_tilt()).unwrap();
        // Ink on the diagonals |x| = |y| (within about two pixels), against the plus sign's
        // ink on the axes.
        let share_on = |pixels: &[f32], diagonal: bool| {
            let (mut on, mut all) = (0.0, 0.0);
            for (i, &v) in pixels.iter().enumerate() {
                let (x, y) = ((i % 32) as f32 + 0.5 - 16.0, (i / 32) as f32 + 0.5 - 16.0);
                let near =
                    if diagonal { (x.abs() - y.abs()).abs() < 2.2 } else { x.abs().min(y.abs()) < 2.2 };
                all += v;
                if near {
                    on += v;
                }
            }
            on / all
        };
        assert!(share_on(&plain, false) > 0.95 && share_on(&tilted, true) > 0.95);
        assert!(share_on(&tilted, false) < 0.3, "{}", share_on(&tilted, false));
        // Shrunk by 0.8, the bars' ends stay inside: no ink on the outermost ring of pixels,
        // and the ink's area shrunk by the scale squared (within 10 %).
        let edge = |i: usize| [i % 32, i / 32].iter().any(|&at| at == 0 || at == 31);
        assert!(tilted.iter().enumerate().all(|(i, &v)| !edge(i) || v == 0.0));
        let ink = |pixels: &[f32]| pixels.iter().sum::<f32>();
        let ratio = ink(&tilted) / ink(&plain);
        assert!((0.64 * 0.9..0.64 * 1.1).contains(&ratio), "ink ratio {ratio}");
    }

    #[test]
    fn quarter_turns_rotate_the_picture() {
        // An L: a long vertical bar on the left and a short horizontal bar at the bottom (unequal
        // arms, so no mirror image of it is also a turn of it).
        let mut luma = vec![255u8; 60 * 60];
        for i in 10..50 {
            for w in 0..4 {
                luma[i * 60 + 10 + w] = 0;
                if i < 30 {
                    luma[(46 + w) * 60 + i] = 0;
                }
            }
        }
        let image = InkImage::from_luma(60, 60, &luma).unwrap();
        let p = Preprocessor::new(32);
        let turned = |turns| {
            let symmetry = Symmetry { quarter_turns: turns, mirrored: false };
            p.render_distorted(&image, &Distortion::NONE.after_symmetry(symmetry)).unwrap()
        };
        let plain = turned(0);
        assert_eq!(plain, p.render(&image).unwrap());
        let (cx, cy) = ink_centroid(&plain, 32);
        assert!(cx < 16.0 && cy > 16.0, "the L's ink leans left and down: {cx} {cy}");
        // Every quarter turn moves the ink's lean to another corner; a half turn mirrors it.
        let leans: Vec<(bool, bool)> = (0..4)
            .map(|t| {
                let (x, y) = ink_centroid(&turned(t), 32);
                (x < 16.0, y > 16.0)
            })
            .collect();
        assert_eq!(leans.iter().collect::<std::collections::HashSet<_>>().len(), 4, "{leans:?}");
        let (hx, hy) = ink_centroid(&turned(2), 32);
        assert!((hx - (32.0 - cx)).abs() < 0.5 && (hy - (32.0 - cy)).abs() < 0.5);
        assert_eq!(turned(4), plain);
        // A mirror image flips the lean left to right only; all eight symmetries differ.
        let mirrored =
            p.render_distorted(&image, &Distortion::NONE.after_symmetry(Symmetry::nth(4))).unwrap();
        let (mx, my) = ink_centroid(&mirrored, 32);
        assert!((mx - (32.0 - cx)).abs() < 0.5 && (my - cy).abs() < 0.5, "{mx} {my}");
        let all: std::collections::HashSet<Vec<u32>> = (0..8)
            .map(|i| {
                let pixels = p.render_distorted(&image, &Distortion::NONE.after_symmetry(Symmetry::nth(i)));
                pixels.unwrap().iter().map(|v| (v * 1000.0) as u32).collect()
            })
            .collect();
        assert_eq!(all.len(), 8);
    }
}
