//! The inference twin as hand-written CPU kernels, for the CPU backend (native and the page's
//! WebAssembly fallback).
//!
//! Burn's CPU convolution re-packs the weights, converts NCHW to NHWC and allocates fresh
//! buffers on every call; at one query's batch of 8 small images that overhead is most of the
//! time. Here the folded network's weights are laid out once, feature maps stay NHWC from layer
//! to layer, and each stage is one fused pass:
//!
//! - the first stage (one input channel) is a direct convolution, eight output channels at a time
//!   in SIMD registers;
//! - 3×3 "same" convolutions followed by a 2×2 max-pool (the `web` preset's other stages) use
//!   Winograd's minimal filtering (Lavin & Gray 2016): F(4×4, 3×3) turns each 6×6 input tile
//!   into a 4×4 output block with 36 instead of 144 multiplications per input channel (F(2×2, 3×3)
//!   where the map's side is not a multiple of 4), as one matrix product per tile position; the
//!   blocks align with the pooling windows, so pooling happens on the way out;
//! - any other stage (Koch's 7×7 and 4×4 convolutions) is im2col and one matrix product;
//! - bias, max-pool and ReLU are applied while reading the results out.
//!
//! The matrix products are the `gemm` crate's natively (the AVX2/FMA kernels Burn's CPU backend
//! calls too) and, in WebAssembly, a 4×8 SIMD128 kernel on weights packed once at load (the
//! `Weights` type). Outputs match Burn's to rounding (tested to 1e-4 against the folded network).
//! These kernels have no backward pass; natively, `cpu_train` reuses their Winograd
//! transforms and matrix products for training.

use crate::model::SiameseConfig;

/// A convolution as plain values: `weight` is `[out, in, k, k]` row-major, as in Burn.
#[derive(Debug, Clone)]
pub struct ConvValues {
    /// The weights, `[out, in, k, k]`.
    pub weight: Vec<f32>,
    /// One bias per output channel.
    pub bias: Vec<f32>,
}

/// A dense layer as plain values: `weight` is `[in, out]` row-major, as in Burn.
#[derive(Debug, Clone)]
pub struct DenseValues {
    /// The weights, `[in, out]`.
    pub weight: Vec<f32>,
    /// One bias per output.
    pub bias: Vec<f32>,
}

/// Feature maps of a batch, NHWC.
struct Maps {
    images: usize,
    side_y: usize,
    side_x: usize,
    channels: usize,
    values: Vec<f32>,
}

impl Maps {
    /// Zeroed maps for a stage's output.
    fn zeros(images: usize, side_y: usize, side_x: usize, channels: usize) -> Self {
        Self { images, side_y, side_x, channels, values: vec![0.0; images * side_y * side_x * channels] }
    }

    /// The `channels` values of pixel (y, x) of image `b`, or `None` outside the map (padding).
    fn pixel(&self, b: usize, y: isize, x: isize) -> Option<&[f32]> {
        if y < 0 || x < 0 || y as usize >= self.side_y || x as usize >= self.side_x {
            return None;
        }
        let start = ((b * self.side_y + y as usize) * self.side_x + x as usize) * self.channels;
        Some(&self.values[start..start + self.channels])
    }
}

/// How a stage computes its convolution.
#[derive(Debug, Clone)]
enum Convolution {
    /// im2col: weights as `[k·k·in, out]`, rows ordered (ky, kx, in) like the columns.
    Im2col { weight: Weights },
    /// Direct, for one input channel (the first stage), where a matrix product would have an
    /// inner dimension of only k·k: weights laid out as for im2col.
    Direct { weight: Vec<f32> },
    /// Winograd F(2×2, 3×3): the transformed weights, 16 matrices `[in, out]`.
    Winograd2 { weight: Vec<Weights> },
    /// Winograd F(4×4, 3×3): the transformed weights, 36 matrices `[in, out]`.
    Winograd4 { weight: Vec<Weights> },
}

/// One convolutional stage: convolution, bias, optional 2×2 max-pool, ReLU.
#[derive(Debug, Clone)]
struct Stage {
    kernel: usize,
    padding: usize,
    pool: bool,
    in_channels: usize,
    out_channels: usize,
    bias: Vec<f32>,
    convolution: Convolution,
}

/// The twin of a folded (batch-norm-free) network, ready to embed on the CPU.
#[derive(Debug, Clone)]
pub struct CpuTwin {
    input_size: usize,
    stages: Vec<Stage>,
    /// Dense weights with rows reordered from Burn's NCHW flattening to NHWC: `[flat, out]`.
    embed_weight: Weights,
    embed_bias: Vec<f32>,
    sigmoid: bool,
}

pub(crate) use simd::F32x4;

/// Output channels the direct kernel computes at once (two 128-bit SIMD vectors).
const LANES: usize = 8;

/// Scratch buffers reused across calls (the page embeds a drawing every stroke): the
/// transformed or unrolled inputs of a stage and its matrix products.
#[derive(Default)]
struct Scratch {
    inputs: Vec<f32>,
    products: Vec<f32>,
}

std::thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

/// Bytes of scratch (im2col columns or Winograd tiles) per pass: batches are cut to fit, so
/// Koch's 105×105 maps do not need hundreds of megabytes.
const SCRATCH_BYTES: usize = 8 << 20;

/// Images per pass when each needs `bytes` of scratch (at least one).
fn images_per_pass(bytes: usize) -> usize {
    (SCRATCH_BYTES / bytes.max(1)).max(1)
}

impl CpuTwin {
    /// Lays out a folded network's weights for the kernels. `convs` and `embed` come from
    /// [`Siamese::twin_values`](crate::model::Siamese::twin_values); their shapes follow `config`.
    pub fn new(config: &SiameseConfig, convs: Vec<ConvValues>, embed: DenseValues) -> Self {
        let mut in_channels: usize = 1;
        let mut side = config.input_size;
        let stages = config
            .stages
            .iter()
            .zip(convs)
            .map(|(stage, conv)| {
                let (k, out) = (stage.kernel, stage.channels);
                // Winograd works on whole tiles and four channels at a time.
                let winograd = k == 3
                    && stage.same_padding
                    && stage.pool
                    && in_channels.is_multiple_of(4)
                    && out.is_multiple_of(4);
                let convolution = if in_channels == 1 && out.is_multiple_of(LANES) {
                    Convolution::Direct { weight: im2col_weights(&conv.weight, in_channels, out, k) }
                } else if winograd && side.is_multiple_of(4) {
                    Convolution::Winograd4 {
                        weight: winograd_weights::<4, 6, F4>(&conv.weight, in_channels, out),
                    }
                } else if winograd && side.is_multiple_of(2) {
                    Convolution::Winograd2 {
                        weight: winograd_weights::<2, 4, F2>(&conv.weight, in_channels, out),
                    }
                } else {
                    let weight = im2col_weights(&conv.weight, in_channels, out, k);
                    Convolution::Im2col { weight: Weights::new(&weight, k * k * in_channels, out) }
                };
                let padding = if stage.same_padding { (k - 1) / 2 } else { 0 };
                side = side + 2 * padding - (k - 1);
                if stage.pool {
                    side /= 2;
                }
                let built = Stage {
                    kernel: k,
                    padding,
                    pool: stage.pool,
                    in_channels,
                    out_channels: out,
                    bias: conv.bias,
                    convolution,
                };
                in_channels = out;
                built
            })
            .collect();
        // Burn flattens [c, y, x]; the maps here are [y, x, c].
        let pixels = side * side;
        let width = config.embedding;
        let mut embed_weight = vec![0.0; embed.weight.len()];
        for c in 0..in_channels {
            for p in 0..pixels {
                let from = (c * pixels + p) * width;
                let to = (p * in_channels + c) * width;
                embed_weight[to..to + width].copy_from_slice(&embed.weight[from..from + width]);
            }
        }
        Self {
            input_size: config.input_size,
            stages,
            embed_weight: Weights::new(&embed_weight, pixels * in_channels, width),
            embed_bias: embed.bias,
            sigmoid: config.sigmoid_embedding,
        }
    }

    /// Width of an embedding.
    pub fn embedding(&self) -> usize {
        self.embed_bias.len()
    }

    /// Embeds preprocessed images (`size²` values each): `images.len() × embedding()` values.
    ///
    /// # Panics
    /// If an image does not have `size²` values.
    pub fn embed(&self, images: &[Vec<f32>]) -> Vec<f32> {
        let side = self.input_size;
        let mut values = Vec::with_capacity(images.len() * side * side);
        for image in images {
            assert_eq!(image.len(), side * side, "an input image has the wrong size");
            values.extend_from_slice(image);
        }
        let input = Maps { images: images.len(), side_y: side, side_x: side, channels: 1, values };
        let maps = SCRATCH.with_borrow_mut(|scratch| {
            self.stages.iter().fold(input, |maps, stage| stage.forward(&maps, scratch))
        });
        let flat = maps.side_y * maps.side_x * maps.channels;
        let width = self.embedding();
        let mut out = vec![0.0; maps.images * width];
        debug_assert_eq!(flat, self.embed_weight.k);
        let (k, n) = (maps.values.len() / maps.images.max(1), out.len() / maps.images.max(1));
        self.embed_weight.multiply(&maps.values, k, maps.images, &mut out, n);
        for row in out.chunks_exact_mut(width) {
            for (value, bias) in row.iter_mut().zip(&self.embed_bias) {
                let x = *value + bias;
                *value = if self.sigmoid { 1.0 / (1.0 + (-x).exp()) } else { x };
            }
        }
        out
    }
}

impl Stage {
    fn forward(&self, input: &Maps, scratch: &mut Scratch) -> Maps {
        match &self.convolution {
            Convolution::Winograd2 { weight } => self.winograd::<2, 4, F2>(input, weight, scratch),
            Convolution::Winograd4 { weight } => self.winograd::<4, 6, F4>(input, weight, scratch),
            Convolution::Im2col { weight } => self.im2col(input, weight, scratch),
            Convolution::Direct { weight } => self.direct(input, weight),
        }
    }

    /// Output side of the convolution (before pooling).
    fn conv_side(&self, side: usize) -> usize {
        side + 2 * self.padding - (self.kernel - 1)
    }

    /// Output sides after convolution and pooling.
    fn out_sides(&self, input: &Maps) -> (usize, usize) {
        let (oy, ox) = (self.conv_side(input.side_y), self.conv_side(input.side_x));
        if self.pool { (oy / 2, ox / 2) } else { (oy, ox) }
    }

    /// One input channel: each output pixel is a sum over taps of input value × a row of
    /// weights, computed [`LANES`] output channels at a time in fixed-size arrays (which the
    /// compiler keeps in SIMD registers), then the maximum over the pooling window, bias, ReLU.
    fn direct(&self, input: &Maps, weight: &[f32]) -> Maps {
        let (k, cout) = (self.kernel, self.out_channels);
        let (py, px) = self.out_sides(input);
        let step = if self.pool { 2 } else { 1 };
        let window: &[(usize, usize)] = if self.pool { &[(0, 0), (0, 1), (1, 0), (1, 1)] } else { &[(0, 0)] };
        // The input pixels one pooled output reads.
        let span = k + step - 1;
        let mut patch = vec![0.0; span * span];
        let pad = self.padding as isize;
        // Where each window position's taps sit in the patch (no divisions in the inner loop).
        let taps: Vec<Vec<usize>> = window
            .iter()
            .map(|&(dy, dx)| (0..k * k).map(|tap| (dy + tap / k) * span + dx + tap % k).collect())
            .collect();
        let mut out = Maps::zeros(input.images, py, px, cout);
        for (i, dst) in out.values.chunks_exact_mut(cout).enumerate() {
            let (b, y, x) = (i / (py * px), i / px % py, i % px);
            for (j, value) in patch.iter_mut().enumerate() {
                let (dy, dx) = ((j / span) as isize, (j % span) as isize);
                let (y, x) = ((step * y) as isize + dy - pad, (step * x) as isize + dx - pad);
                *value = input.pixel(b, y, x).map_or(0.0, |pixel| pixel[0]);
            }
            for (first, dst) in (0..cout).step_by(LANES).zip(dst.chunks_exact_mut(LANES)) {
                let mut best = [F32x4::splat(f32::NEG_INFINITY); 2];
                for offsets in &taps {
                    let mut sum = [F32x4::splat(0.0); 2];
                    for (&offset, row) in offsets.iter().zip(weight.chunks_exact(cout)) {
                        let value = F32x4::splat(patch[offset]);
                        let w = &row[first..][..LANES];
                        sum[0] = sum[0].add_product(value, F32x4::load(&w[..4]));
                        sum[1] = sum[1].add_product(value, F32x4::load(&w[4..]));
                    }
                    best = [best[0].max(sum[0]), best[1].max(sum[1])];
                }
                let bias = &self.bias[first..][..LANES];
                let zero = F32x4::splat(0.0);
                best[0].add(F32x4::load(&bias[..4])).max(zero).store(&mut dst[..4]);
                best[1].add(F32x4::load(&bias[4..])).max(zero).store(&mut dst[4..]);
            }
        }
        out
    }

    fn im2col(&self, input: &Maps, weight: &Weights, scratch: &mut Scratch) -> Maps {
        let (k, cin, cout) = (self.kernel, self.in_channels, self.out_channels);
        let (oy, ox) = (self.conv_side(input.side_y), self.conv_side(input.side_x));
        let (py, px) = self.out_sides(input);
        let row = k * k * cin;
        let chunk = images_per_pass(oy * ox * row * 4);
        let mut out = Maps::zeros(input.images, py, px, cout);
        let Scratch { inputs: columns, products } = scratch;
        let pad = self.padding as isize;
        for first in (0..input.images).step_by(chunk) {
            let count = chunk.min(input.images - first);
            grow(columns, count * oy * ox * row);
            if pad > 0 {
                // Taps in the padding stay zero; without padding every value is written.
                columns.fill(0.0);
            }
            let mut rows = columns.chunks_exact_mut(row);
            for b in first..first + count {
                for y in 0..oy as isize {
                    for x in 0..ox as isize {
                        let Some(dst) = rows.next() else { unreachable!("columns sized above") };
                        for ky in 0..k as isize {
                            for kx in 0..k as isize {
                                if let Some(src) = input.pixel(b, y + ky - pad, x + kx - pad) {
                                    let at = (ky as usize * k + kx as usize) * cin;
                                    dst[at..at + cin].copy_from_slice(src);
                                }
                            }
                        }
                    }
                }
            }
            grow(products, count * oy * ox * cout);
            weight.multiply(columns, row, count * oy * ox, products, cout);
            let pooled = &mut out.values[first * py * px * cout..(first + count) * py * px * cout];
            if self.pool {
                for (i, dst) in pooled.chunks_exact_mut(cout).enumerate() {
                    let (b, y, x) = (i / (py * px), i / px % py, i % px);
                    let at = |dy: usize, dx: usize| ((b * oy + 2 * y + dy) * ox + 2 * x + dx) * cout;
                    let corners = [at(0, 0), at(0, 1), at(1, 0), at(1, 1)];
                    for (o, value) in dst.iter_mut().enumerate() {
                        let max = corners.iter().map(|&c| products[c + o]).fold(f32::NEG_INFINITY, f32::max);
                        *value = (max + self.bias[o]).max(0.0);
                    }
                }
            } else {
                for (dst, src) in pooled.chunks_exact_mut(cout).zip(products.chunks_exact(cout)) {
                    for ((value, product), bias) in dst.iter_mut().zip(src).zip(&self.bias) {
                        *value = (product + bias).max(0.0);
                    }
                }
            }
        }
        out
    }

    /// 3×3 same-padded convolution and 2×2 max-pool by Winograd F(M×M, 3×3). Tile (ty, tx)
    /// reads input rows and columns M·t − 1 … M·t + M, yields an M×M block of the convolution
    /// and from it the (M/2)×(M/2) pooled pixels from (M/2)·t on.
    fn winograd<const M: usize, const T: usize, W: Winograd<M, T>>(
        &self,
        input: &Maps,
        weight: &[Weights],
        scratch: &mut Scratch,
    ) -> Maps {
        let (cin, cout) = (self.in_channels, self.out_channels);
        let (ty, tx) = (input.side_y / M, input.side_x / M);
        let (py, px) = (input.side_y / 2, input.side_x / 2);
        let chunk = images_per_pass(ty * tx * T * T * (cin + cout) * 4);
        let mut out = Maps::zeros(input.images, py, px, cout);
        let image_len = input.side_y * input.side_x * cin;
        let Scratch { inputs: tiles, products } = scratch;
        for (index, images) in input.values.chunks(chunk * image_len).enumerate() {
            let first = index * chunk;
            let n = images.len() / image_len * ty * tx;
            grow(tiles, T * T * n * cin);
            winograd_input::<M, T, W>(images, input.side_y, input.side_x, cin, tiles);
            grow(products, T * T * n * cout);
            for (xi, weight) in weight.iter().enumerate() {
                let (tiles, products) = (&tiles[xi * cin..], &mut products[xi * cout..]);
                weight.multiply(tiles, T * T * cin, n, products, T * T * cout);
            }
            // Then max-pool, bias and ReLU.
            let zero = F32x4::splat(0.0);
            winograd_output::<M, T, W>(products, n, cout, |t, o, conv| {
                let (b, y, x) = (first + t / (ty * tx), t / tx % ty, t % tx);
                let bias = F32x4::load(&self.bias[o..]);
                for a in 0..M / 2 {
                    for e in 0..M / 2 {
                        let pooled = conv[2 * a][2 * e]
                            .max(conv[2 * a][2 * e + 1])
                            .max(conv[2 * a + 1][2 * e].max(conv[2 * a + 1][2 * e + 1]));
                        let (oy, ox) = (M / 2 * y + a, M / 2 * x + e);
                        let at = ((b * py + oy) * px + ox) * cout + o;
                        pooled.add(bias).max(zero).store(&mut out.values[at..]);
                    }
                }
            });
        }
        out
    }
}

/// The input side of Winograd F(M×M, 3×3) with one pixel of zero padding, for NHWC `images`
/// whose sides are multiples of M and whose channels are a multiple of 4: for tile t (image by
/// image, row by row) and each of the T·T transform positions ξ, `tiles[ξ][t] = (Bᵀ d B)[ξ]` for
/// the tile's T×T patch d, `cin` values, stored tile by tile (`[t][ξ][cin]`: one tile's values
/// are written together; the matrix of position ξ is every T·T·cin-th row). Tile (ty, tx)
/// reads input rows and columns M·t − 1 … M·t + M.
pub(crate) fn winograd_input<const M: usize, const T: usize, W: Winograd<M, T>>(
    images: &[f32],
    side_y: usize,
    side_x: usize,
    cin: usize,
    tiles: &mut [f32],
) {
    let (ty, tx) = (side_y / M, side_x / M);
    let image_len = side_y * side_x * cin;
    let n = images.len() / image_len * ty * tx;
    let zeros = vec![0.0; cin];
    let pixel = |b: usize, y: isize, x: isize| -> &[f32] {
        if y < 0 || x < 0 || y as usize >= side_y || x as usize >= side_x {
            return &zeros;
        }
        let start = ((b * side_y + y as usize) * side_x + x as usize) * cin;
        &images[start..start + cin]
    };
    for t in 0..n {
        let (b, y, x) = (t / (ty * tx), t / tx % ty, t % tx);
        let patch: [[&[f32]; T]; T] = std::array::from_fn(|r| {
            std::array::from_fn(|c| pixel(b, (M * y + r) as isize - 1, (M * x + c) as isize - 1))
        });
        for c in (0..cin).step_by(4) {
            let d = patch.map(|row| row.map(|pixel| F32x4::load(&pixel[c..])));
            let v = transform_2d(d, W::input);
            let tile = &mut tiles[t * T * T * cin..(t + 1) * T * T * cin];
            for (xi, value) in v.as_flattened().iter().enumerate() {
                value.store(&mut tile[xi * cin + c..]);
            }
        }
    }
}

/// The output side of Winograd F(M×M, 3×3): for each of `n` tiles and each group of four
/// output channels `o`, `Aᵀ m A` of the T·T products (`cout` values each, stored tile by tile
/// like [`winograd_input`]'s tiles), handed to `place(t, o, block)` as an M×M block of the
/// convolution.
#[inline(always)]
pub(crate) fn winograd_output<const M: usize, const T: usize, W: Winograd<M, T>>(
    products: &[f32],
    n: usize,
    cout: usize,
    mut place: impl FnMut(usize, usize, [[F32x4; M]; M]),
) {
    for t in 0..n {
        let tile = &products[t * T * T * cout..(t + 1) * T * T * cout];
        for o in (0..cout).step_by(4) {
            let m: [[F32x4; T]; T] = std::array::from_fn(|r| {
                std::array::from_fn(|c| F32x4::load(&tile[(r * T + c) * cout + o..]))
            });
            place(t, o, transform_2d(m, W::output));
        }
    }
}

/// Applies a 1-D transform to every column of `x`, then to every row of the result:
/// `L x Lᵀ` for the transform's matrix `L`.
#[inline(always)]
pub(crate) fn transform_2d<const I: usize, const O: usize>(
    x: [[F32x4; I]; I],
    transform: impl Fn([F32x4; I]) -> [F32x4; O],
) -> [[F32x4; O]; O] {
    let columns: [[F32x4; O]; I] = std::array::from_fn(|c| transform(std::array::from_fn(|r| x[r][c])));
    std::array::from_fn(|r| transform(std::array::from_fn(|c| columns[c][r])))
}

/// Winograd's minimal filtering F(M×M, 3×3) on T×T tiles (T = M + 2), as its three 1-D
/// transforms (Lavin & Gray 2016): input `Bᵀ x`, output `Aᵀ m`, kernel `G g`.
pub(crate) trait Winograd<const M: usize, const T: usize> {
    fn input(x: [F32x4; T]) -> [F32x4; T];
    fn output(m: [F32x4; T]) -> [F32x4; M];
    fn kernel(g: [f32; 3]) -> [f32; T];
}

/// F(2×2, 3×3): 16 products per 4 outputs instead of 36.
struct F2;

impl Winograd<2, 4> for F2 {
    #[inline(always)]
    fn input([x0, x1, x2, x3]: [F32x4; 4]) -> [F32x4; 4] {
        [x0.sub(x2), x1.add(x2), x2.sub(x1), x1.sub(x3)]
    }
    #[inline(always)]
    fn output([m0, m1, m2, m3]: [F32x4; 4]) -> [F32x4; 2] {
        [m0.add(m1).add(m2), m1.sub(m2).sub(m3)]
    }
    fn kernel([g0, g1, g2]: [f32; 3]) -> [f32; 4] {
        [g0, 0.5 * (g0 + g1 + g2), 0.5 * (g0 - g1 + g2), g2]
    }
}

/// F(4×4, 3×3): 36 products per 16 outputs instead of 144.
pub(crate) struct F4;

impl Winograd<4, 6> for F4 {
    #[inline(always)]
    fn input([x0, x1, x2, x3, x4, x5]: [F32x4; 6]) -> [F32x4; 6] {
        let (four, five, two) = (F32x4::splat(4.0), F32x4::splat(5.0), F32x4::splat(2.0));
        // Shared partial sums, as in Lavin & Gray's implementation.
        let (a, b) = (x4.sub(x2.mul(four)), x3.sub(x1.mul(four)));
        let (c, d) = (x4.sub(x2), x3.sub(x1).mul(two));
        [
            x0.mul(four).sub(x2.mul(five)).add(x4),
            a.add(b),
            a.sub(b),
            c.add(d),
            c.sub(d),
            x1.mul(four).sub(x3.mul(five)).add(x5),
        ]
    }
    #[inline(always)]
    fn output([m0, m1, m2, m3, m4, m5]: [F32x4; 6]) -> [F32x4; 4] {
        let (two, four, eight) = (F32x4::splat(2.0), F32x4::splat(4.0), F32x4::splat(8.0));
        let (sum12, diff12, sum34, diff34) = (m1.add(m2), m1.sub(m2), m3.add(m4), m3.sub(m4));
        [
            m0.add(sum12).add(sum34),
            diff12.add(diff34.mul(two)),
            sum12.add(sum34.mul(four)),
            diff12.add(diff34.mul(eight)).add(m5),
        ]
    }
    fn kernel([g0, g1, g2]: [f32; 3]) -> [f32; 6] {
        [
            g0 / 4.0,
            -(g0 + g1 + g2) / 6.0,
            -(g0 - g1 + g2) / 6.0,
            g0 / 24.0 + g1 / 12.0 + g2 / 6.0,
            g0 / 24.0 - g1 / 12.0 + g2 / 6.0,
            g2,
        ]
    }
}

/// The adjoints (transposes) of F(4×4, 3×3)'s output and kernel transforms, for the weight
/// gradient of a Winograd convolution (native training, [`crate::cpu_train`]).
#[cfg(not(target_arch = "wasm32"))]
impl F4 {
    /// `A ȳ`: the gradient of the T products from the gradient of the M outputs.
    #[inline(always)]
    pub(crate) fn output_adjoint([y0, y1, y2, y3]: [F32x4; 4]) -> [F32x4; 6] {
        let (two, four, eight) = (F32x4::splat(2.0), F32x4::splat(4.0), F32x4::splat(8.0));
        let (even, odd) = (y0.add(y2), y1.add(y3));
        let (even4, odd8) = (y0.add(y2.mul(four)), y1.mul(two).add(y3.mul(eight)));
        [y0, even.add(odd), even.sub(odd), even4.add(odd8), even4.sub(odd8), y3]
    }

    /// `Gᵀ u`: the gradient of the 3 kernel taps from the gradient of the T transformed ones.
    pub(crate) fn kernel_adjoint([u0, u1, u2, u3, u4, u5]: [f32; 6]) -> [f32; 3] {
        [
            u0 / 4.0 - (u1 + u2) / 6.0 + (u3 + u4) / 24.0,
            (u2 - u1) / 6.0 + (u3 - u4) / 12.0,
            (u3 + u4 - u1 - u2) / 6.0 + u5,
        ]
    }
}

/// `G g Gᵀ` for every (in, out) pair: T·T matrices `[in, out]`.
fn winograd_weights<const M: usize, const T: usize, W: Winograd<M, T>>(
    weight: &[f32],
    cin: usize,
    cout: usize,
) -> Vec<Weights> {
    let values = winograd_weight_values::<M, T, W>(weight, cin, cout);
    values.chunks_exact(cin * cout).map(|matrix| Weights::new(matrix, cin, cout)).collect()
}

/// `G g Gᵀ` for every (in, out) pair of Burn's `[out, in, 3, 3]` weights, as T·T row-major
/// matrices `[in, out]` one after another.
pub(crate) fn winograd_weight_values<const M: usize, const T: usize, W: Winograd<M, T>>(
    weight: &[f32],
    cin: usize,
    cout: usize,
) -> Vec<f32> {
    let mut out = vec![0.0; T * T * cin * cout];
    // Output channels innermost, so the writes run along rows of the matrices.
    for c in 0..cin {
        for o in 0..cout {
            let g = &weight[(o * cin + c) * 9..][..9];
            // G g: transform each of the kernel's three columns, then each row of the result.
            let columns: [[f32; T]; 3] = std::array::from_fn(|j| W::kernel([g[j], g[3 + j], g[6 + j]]));
            for i in 0..T {
                let row = W::kernel([columns[0][i], columns[1][i], columns[2][i]]);
                for (j, value) in row.into_iter().enumerate() {
                    out[((i * T + j) * cin + c) * cout + o] = value;
                }
            }
        }
    }
    out
}

/// Burn's `[out, in, k, k]` as im2col's `[(ky, kx, in), out]`.
pub(crate) fn im2col_weights(weight: &[f32], cin: usize, cout: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0.0; weight.len()];
    for o in 0..cout {
        for c in 0..cin {
            for tap in 0..k * k {
                out[(tap * cin + c) * cout + o] = weight[(o * cin + c) * k * k + tap];
            }
        }
    }
    out
}

/// Makes `buffer` at least `len` long. Every value is overwritten before it is read, so old
/// contents are not cleared (that was a tenth of the time).
pub(crate) fn grow(buffer: &mut Vec<f32>, len: usize) {
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
}

/// The right-hand matrix `[k, n]` of a product, in the layout its kernel wants: natively
/// row-major for `gemm` (AVX2/FMA micro-kernels, both cores); in WebAssembly pre-packed
/// [`Panels`], because `gemm` re-packs its right-hand side on every call, which for one drawing
/// cost more than the arithmetic.
#[cfg(not(target_arch = "wasm32"))]
type Weights = RowMajor;
#[cfg(target_arch = "wasm32")]
type Weights = Panels;

/// A row-major matrix `[k, n]`, multiplied by `gemm`.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug, Clone)]
struct RowMajor {
    k: usize,
    n: usize,
    values: Vec<f32>,
}

#[cfg(not(target_arch = "wasm32"))]
impl RowMajor {
    fn new(values: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(values.len(), k * n, "matrix shape");
        Self { k, n, values: values.to_vec() }
    }

    /// `out = a · self` for `a: [m, k]` and `out: [m, n]`, rows `a_stride` and `out_stride`
    /// values apart.
    fn multiply(&self, a: &[f32], a_stride: usize, m: usize, out: &mut [f32], out_stride: usize) {
        let (k, n) = (self.k, self.n);
        check_strides(a.len(), a_stride, k, m, out.len(), out_stride, n);
        let a = Matrix::strided(a, m, k, a_stride);
        let parallel = m * n * k >= 1 << 21;
        matmul_on(a, Matrix::rows(&self.values, n), out, out_stride, false, parallel);
    }
}

/// Checks that `a: [m, k]` and `out: [m, n]` with rows `a_stride` and `out_stride` apart fit
/// their buffers.
fn check_strides(a: usize, a_stride: usize, k: usize, m: usize, out: usize, out_stride: usize, n: usize) {
    let fits = |len: usize, stride: usize, width: usize| {
        width <= stride && len >= m.saturating_sub(1) * stride + width
    };
    assert!(fits(a, a_stride, k) && fits(out, out_stride, n), "matmul shapes");
}

/// A read-only matrix view: element `(i, j)` is `values[i · row_stride + j · column_stride]`, so
/// a transpose is a view with the strides swapped.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Matrix<'a> {
    values: &'a [f32],
    rows: usize,
    columns: usize,
    row_stride: usize,
    column_stride: usize,
}

#[cfg(not(target_arch = "wasm32"))]
impl<'a> Matrix<'a> {
    /// A row-major matrix with `columns` columns.
    pub(crate) fn rows(values: &'a [f32], columns: usize) -> Self {
        let rows = values.len() / columns.max(1);
        Self { values, rows, columns, row_stride: columns, column_stride: 1 }
    }

    /// `rows` rows of `columns` values, each `row_stride` values after the previous one.
    ///
    /// # Panics
    /// If the rows do not fit in `values`.
    pub(crate) fn strided(values: &'a [f32], rows: usize, columns: usize, row_stride: usize) -> Self {
        assert!(
            columns <= row_stride && values.len() >= rows.saturating_sub(1) * row_stride + columns,
            "matrix view"
        );
        Self { values, rows, columns, row_stride, column_stride: 1 }
    }

    /// The transposed view.
    pub(crate) fn t(self) -> Self {
        Self {
            rows: self.columns,
            columns: self.rows,
            row_stride: self.column_stride,
            column_stride: self.row_stride,
            ..self
        }
    }
}

/// `out = a · b` (or `out += a · b` when `accumulate`) for a row-major `out`, through `gemm`
/// (AVX2/FMA micro-kernels), on this thread: for callers that split the work between threads
/// themselves.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn matmul_serial(a: Matrix, b: Matrix, out: &mut [f32], accumulate: bool) {
    matmul_on(a, b, out, b.columns, accumulate, false);
}

/// [`matmul_serial`] with rows of `out` `out_stride` values apart, on both cores if
/// `parallel`.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn matmul_on(
    a: Matrix,
    b: Matrix,
    out: &mut [f32],
    out_stride: usize,
    accumulate: bool,
    parallel: bool,
) {
    let (m, k, n) = (a.rows, a.columns, b.columns);
    assert!(
        b.rows == k && n <= out_stride && out.len() >= m.saturating_sub(1) * out_stride + n,
        "matmul shapes"
    );
    let parallelism = if parallel { gemm::Parallelism::Rayon(0) } else { gemm::Parallelism::None };
    // SAFETY: a view's largest offset, (rows − 1)·row_stride + (columns − 1)·column_stride, lies
    // inside its slice (`rows` and `t` keep that true), `out` holds m·n values (checked above),
    // and `out` is a unique borrow, so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            out_stride as isize,
            accumulate,
            a.values.as_ptr(),
            a.column_stride as isize,
            a.row_stride as isize,
            b.values.as_ptr(),
            b.column_stride as isize,
            b.row_stride as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Columns per panel: two SIMD vectors.
const PANEL: usize = 8;

/// A matrix `[k, n]` packed once as panels of [`PANEL`] columns, `[⌈n/8⌉][k][8]` (the last one
/// zero-padded), for a 4×8 register-tile kernel that streams each panel from cache.
#[derive(Debug, Clone)]
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Panels {
    k: usize,
    n: usize,
    values: Vec<f32>,
}

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
impl Panels {
    fn new(values: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(values.len(), k * n, "matrix shape");
        let panels = n.div_ceil(PANEL);
        let mut packed = vec![0.0; panels * k * PANEL];
        for (p, panel) in packed.chunks_exact_mut(k * PANEL).enumerate() {
            let width = (n - p * PANEL).min(PANEL);
            for (row, dst) in panel.chunks_exact_mut(PANEL).enumerate() {
                dst[..width].copy_from_slice(&values[row * n + p * PANEL..][..width]);
            }
        }
        Self { k, n, values: packed }
    }

    /// `out = a · self` for `a: [m, k]` and `out: [m, n]`, rows `a_stride` and `out_stride`
    /// values apart.
    fn multiply(&self, a: &[f32], a_stride: usize, m: usize, out: &mut [f32], out_stride: usize) {
        let (k, n) = (self.k, self.n);
        check_strides(a.len(), a_stride, k, m, out.len(), out_stride, n);
        let zero = F32x4::splat(0.0);
        for (p, panel) in self.values.chunks_exact(k * PANEL).enumerate() {
            let (first, width) = (p * PANEL, (n - p * PANEL).min(PANEL));
            let mut row = 0;
            while row < m {
                let rows = (m - row).min(4);
                let mut sums = [[zero; 2]; 4];
                if rows == 4 {
                    let a: [&[f32]; 4] = std::array::from_fn(|r| &a[(row + r) * a_stride..][..k]);
                    let steps = panel.chunks_exact(PANEL).zip(a[0]).zip(a[1]).zip(a[2]).zip(a[3]);
                    for ((((b, &a0), &a1), &a2), &a3) in steps {
                        let (b0, b1) = (F32x4::load(&b[..4]), F32x4::load(&b[4..]));
                        for (sum, value) in sums.iter_mut().zip([a0, a1, a2, a3]) {
                            let value = F32x4::splat(value);
                            sum[0] = sum[0].add_product(value, b0);
                            sum[1] = sum[1].add_product(value, b1);
                        }
                    }
                } else {
                    for (r, sum) in sums.iter_mut().enumerate().take(rows) {
                        for (b, &value) in panel.chunks_exact(PANEL).zip(&a[(row + r) * a_stride..][..k]) {
                            let value = F32x4::splat(value);
                            sum[0] = sum[0].add_product(value, F32x4::load(&b[..4]));
                            sum[1] = sum[1].add_product(value, F32x4::load(&b[4..]));
                        }
                    }
                }
                for (r, sum) in sums.iter().enumerate().take(rows) {
                    let dst = &mut out[(row + r) * out_stride + first..][..width];
                    if width == PANEL {
                        sum[0].store(&mut dst[..4]);
                        sum[1].store(&mut dst[4..]);
                    } else {
                        let mut lanes = [0.0; PANEL];
                        sum[0].store(&mut lanes[..4]);
                        sum[1].store(&mut lanes[4..]);
                        dst.copy_from_slice(&lanes[..width]);
                    }
                }
                row += rows;
            }
        }
    }
}

/// Four `f32` lanes: WebAssembly SIMD128 in the page, where LLVM does not vectorise the direct
/// kernel's loops by itself; plain arrays natively, which LLVM does vectorise.
mod simd {
    /// Four `f32` lanes.
    #[derive(Clone, Copy)]
    pub struct F32x4(
        #[cfg(target_arch = "wasm32")] core::arch::wasm32::v128,
        #[cfg(target_arch = "x86_64")] core::arch::x86_64::__m128,
        #[cfg(not(any(target_arch = "wasm32", target_arch = "x86_64")))] [f32; 4],
    );

    #[cfg(target_arch = "wasm32")]
    impl F32x4 {
        #[inline(always)]
        pub fn splat(value: f32) -> Self {
            Self(core::arch::wasm32::f32x4_splat(value))
        }
        /// The first four values of `values`.
        #[inline(always)]
        pub fn load(values: &[f32]) -> Self {
            assert!(values.len() >= 4);
            // SAFETY: the slice holds at least 16 bytes (checked above); v128 loads need no
            // alignment.
            Self(unsafe { core::arch::wasm32::v128_load(values.as_ptr().cast()) })
        }
        /// Writes the lanes to the first four values of `out`.
        #[inline(always)]
        pub fn store(self, out: &mut [f32]) {
            assert!(out.len() >= 4);
            // SAFETY: as in `load`.
            unsafe { core::arch::wasm32::v128_store(out.as_mut_ptr().cast(), self.0) }
        }
        /// `self + a · b`.
        #[inline(always)]
        pub fn add_product(self, a: Self, b: Self) -> Self {
            use core::arch::wasm32::{f32x4_add, f32x4_mul};
            Self(f32x4_add(self.0, f32x4_mul(a.0, b.0)))
        }
        #[inline(always)]
        pub fn add(self, other: Self) -> Self {
            Self(core::arch::wasm32::f32x4_add(self.0, other.0))
        }
        #[inline(always)]
        pub fn sub(self, other: Self) -> Self {
            Self(core::arch::wasm32::f32x4_sub(self.0, other.0))
        }
        #[inline(always)]
        pub fn mul(self, other: Self) -> Self {
            Self(core::arch::wasm32::f32x4_mul(self.0, other.0))
        }
        /// The larger of each pair of lanes (`pmax`: one instruction; the inputs hold no NaN).
        #[inline(always)]
        pub fn max(self, other: Self) -> Self {
            Self(core::arch::wasm32::f32x4_pmax(self.0, other.0))
        }
    }

    // SSE is part of every x86-64 CPU: no run-time check needed. (Plain arrays, which LLVM
    // vectorises only now and then, made the Winograd transforms several times slower.)
    #[cfg(target_arch = "x86_64")]
    use core::arch::x86_64::*;

    #[cfg(target_arch = "x86_64")]
    impl F32x4 {
        #[inline(always)]
        pub fn splat(value: f32) -> Self {
            // SAFETY (here and below): SSE is always enabled on x86-64.
            Self(unsafe { _mm_set1_ps(value) })
        }
        /// The first four values of `values`.
        #[inline(always)]
        pub fn load(values: &[f32]) -> Self {
            assert!(values.len() >= 4);
            // SAFETY: the slice holds at least 16 bytes (checked above); `loadu` needs no
            // alignment.
            Self(unsafe { _mm_loadu_ps(values.as_ptr()) })
        }
        /// Writes the lanes to the first four values of `out`.
        #[inline(always)]
        pub fn store(self, out: &mut [f32]) {
            assert!(out.len() >= 4);
            // SAFETY: as in `load`.
            unsafe { _mm_storeu_ps(out.as_mut_ptr(), self.0) }
        }
        /// `self + a · b`.
        #[inline(always)]
        pub fn add_product(self, a: Self, b: Self) -> Self {
            a.mul(b).add(self)
        }
        #[inline(always)]
        pub fn add(self, other: Self) -> Self {
            Self(unsafe { _mm_add_ps(self.0, other.0) })
        }
        #[inline(always)]
        pub fn sub(self, other: Self) -> Self {
            Self(unsafe { _mm_sub_ps(self.0, other.0) })
        }
        #[inline(always)]
        pub fn mul(self, other: Self) -> Self {
            Self(unsafe { _mm_mul_ps(self.0, other.0) })
        }
        /// The larger of each pair of lanes (the inputs hold no NaN).
        #[inline(always)]
        pub fn max(self, other: Self) -> Self {
            Self(unsafe { _mm_max_ps(self.0, other.0) })
        }
    }

    #[cfg(not(any(target_arch = "wasm32", target_arch = "x86_64")))]
    impl F32x4 {
        #[inline(always)]
        pub fn splat(value: f32) -> Self {
            Self([value; 4])
        }
        /// The first four values of `values`.
        #[inline(always)]
        pub fn load(values: &[f32]) -> Self {
            Self([values[0], values[1], values[2], values[3]])
        }
        /// Writes the lanes to the first four values of `out`.
        #[inline(always)]
        pub fn store(self, out: &mut [f32]) {
            out[..4].copy_from_slice(&self.0);
        }
        /// `self + a · b`.
        #[inline(always)]
        pub fn add_product(self, a: Self, b: Self) -> Self {
            Self(std::array::from_fn(|i| self.0[i] + a.0[i] * b.0[i]))
        }
        #[inline(always)]
        pub fn add(self, other: Self) -> Self {
            Self(std::array::from_fn(|i| self.0[i] + other.0[i]))
        }
        #[inline(always)]
        pub fn sub(self, other: Self) -> Self {
            Self(std::array::from_fn(|i| self.0[i] - other.0[i]))
        }
        #[inline(always)]
        pub fn mul(self, other: Self) -> Self {
            Self(std::array::from_fn(|i| self.0[i] * other.0[i]))
        }
        /// The larger of each pair of lanes.
        #[inline(always)]
        pub fn max(self, other: Self) -> Self {
            Self(std::array::from_fn(|i| self.0[i].max(other.0[i])))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ConvStageConfig, Preset};
    use burn::module::Module;
    use burn::tensor::{Device, Distribution, Tensor};

    fn device() -> Device {
        let device = Device::flex();
        device.seed(7);
        device
    }

    /// Burn's folded network and the kernels agree on random images.
    fn assert_matches_burn(config: SiameseConfig, images: usize) {
        let device = device();
        // A few train-mode passes move the batch-norm statistics, so folding has work to do.
        let model = config.init(&device.clone().autodiff()).train();
        for _ in 0..2 {
            let side = config.input_size;
            let batch = Tensor::random(
                [4, 1, side, side],
                Distribution::Uniform(0.0, 1.0),
                &device.clone().autodiff(),
            );
            let _ = model.embed(batch);
        }
        let folded = model.valid().folded();
        let side = config.input_size;
        let batch = Tensor::<4>::random([images, 1, side, side], Distribution::Uniform(0.0, 1.0), &device);
        let inputs: Vec<Vec<f32>> = batch
            .clone()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
            .chunks(side * side)
            .map(<[f32]>::to_vec)
            .collect();
        let expected = folded.embed(batch).into_data().try_to_vec::<f32>().unwrap();
        let (convs, dense) = folded.twin_values().expect("folded");
        let got = CpuTwin::new(&config, convs, dense).embed(&inputs);
        assert_eq!(got.len(), expected.len());
        let worst = got.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-4, "largest difference {worst}");
    }

    #[test]
    fn both_matrix_kernels_multiply() {
        // Shapes with remainders in every dimension: rows (m % 4), panels (n % 8).
        for (m, k, n) in [(9, 5, 12), (4, 64, 64), (1, 3, 7)] {
            let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.91).cos()).collect();
            let want: Vec<f32> =
                (0..m * n).map(|i| (0..k).map(|j| a[i / n * k + j] * b[j * n + i % n]).sum()).collect();
            let (mut packed, mut row_major) = (vec![0.0; m * n], vec![0.0; m * n]);
            Panels::new(&b, k, n).multiply(&a, k, m, &mut packed, n);
            RowMajor::new(&b, k, n).multiply(&a, k, m, &mut row_major, n);
            for got in [packed, row_major] {
                let worst = got.iter().zip(&want).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
                assert!(worst < 1e-4, "{m}×{k}×{n}: largest difference {worst}");
            }
        }
    }

    #[test]
    fn web_preset_matches_burn() {
        assert_matches_burn(Preset::Web.config(), 9);
    }

    #[test]
    fn valid_padding_odd_sides_and_no_pool_match_burn() {
        let mut config = Preset::Web.config();
        config.input_size = 23;
        config.stages = vec![
            ConvStageConfig::new(8, 4, false, true),  // 23 → 20 → 10
            ConvStageConfig::new(16, 3, true, false), // 10 → 10
            ConvStageConfig::new(16, 3, true, true),  // 10 → 5 (Winograd F(2×2, 3×3))
            ConvStageConfig::new(12, 3, true, true),  // 5 → 2 (odd: im2col, pool floors)
        ];
        config.embedding = 10;
        config.sigmoid_embedding = false;
        assert_matches_burn(config, 3);
    }
}
