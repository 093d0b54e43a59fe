//! Embedding on the CPU (native, and the page's WebAssembly CPU path): the folded
//! (batch-norm-free) network's convolutional stages and dense layer as hand-written kernels.
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
//! These kernels have no backward pass; natively, [`crate::training`] reuses their Winograd
//! transforms and matrix products for training.

use crate::layout::im2col_weights;
use crate::matmul::{Weights, grow};
use crate::simd::F32x4;
use crate::winograd::{F2, F4, Winograd, winograd_input, winograd_output, winograd_weights};

/// One convolutional stage of the network, as the kernels need to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageShape {
    /// Output channels.
    pub channels: usize,
    /// Square kernel size.
    pub kernel: usize,
    /// Pad so the output keeps the input's size (otherwise no padding).
    pub same_padding: bool,
    /// Follow with a 2×2 max-pool.
    pub pool: bool,
}

/// The network's shape: one input channel of `input_size²`, the stages, a dense embedding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetShape {
    /// Side of the square input.
    pub input_size: usize,
    /// The convolutional stages, in order (each followed by its bias and a ReLU).
    pub stages: Vec<StageShape>,
    /// Width of the embedding.
    pub embedding: usize,
    /// Squash the embedding with a sigmoid.
    pub sigmoid_embedding: bool,
}

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

/// A folded (batch-norm-free) network's convolutions and dense layer, laid out once for the
/// kernels, ready to embed images on the CPU.
#[derive(Debug, Clone)]
pub struct Embedder {
    input_size: usize,
    stages: Vec<Stage>,
    /// Dense weights with rows reordered from Burn's NCHW flattening to NHWC: `[flat, out]`.
    embed_weight: Weights,
    embed_bias: Vec<f32>,
    sigmoid: bool,
}

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

impl Embedder {
    /// Lays out a folded network's weights for the kernels; their shapes follow `config`.
    ///
    /// # Panics
    /// If the weights do not have the shapes `config` gives them.
    pub fn new(config: &NetShape, convs: Vec<ConvValues>, embed: DenseValues) -> Self {
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
        // Taken out for the pass, not borrowed in place: while `gemm` waits for its rayon
        // workers this thread may run another job of an outer parallel loop, i.e. another
        // embedding, which then finds the slot empty and grows scratch of its own.
        let mut scratch = SCRATCH.take();
        let maps = self.stages.iter().fold(input, |maps, stage| stage.forward(&maps, &mut scratch));
        SCRATCH.set(scratch);
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
            winograd_input::<M, T, W, F32x4>(images, input.side_y, input.side_x, cin, tiles);
            grow(products, T * T * n * cout);
            for (xi, weight) in weight.iter().enumerate() {
                let (tiles, products) = (&tiles[xi * cin..], &mut products[xi * cout..]);
                weight.multiply(tiles, T * T * cin, n, products, T * T * cout);
            }
            // Then max-pool, bias and ReLU.
            let zero = F32x4::splat(0.0);
            winograd_output::<M, T, W, F32x4>(products, n, cout, |t, o, conv| {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_values::values;
    use rayon::prelude::*;

    /// A network whose matrix products are big enough for `gemm` to split them over rayon.
    fn embedder() -> Embedder {
        let stage = |channels, pool| StageShape { channels, kernel: 3, same_padding: true, pool };
        let shape = NetShape {
            input_size: 32,
            stages: vec![stage(16, true), stage(64, true), stage(64, false)],
            embedding: 32,
            sigmoid_embedding: false,
        };
        let mut in_channels = 1;
        let convs = shape
            .stages
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let weight = values(s.channels * in_channels * 9, i as u32);
                in_channels = s.channels;
                ConvValues { weight, bias: values(s.channels, 10 + i as u32) }
            })
            .collect();
        let embed = DenseValues { weight: values(8 * 8 * 64 * 32, 20), bias: values(32, 21) };
        Embedder::new(&shape, convs, embed)
    }

    /// Gemm's rayon workers pick up other jobs while they wait for theirs, so an embedding can
    /// start on a thread that is in the middle of one (the evaluation's parallel tasks do
    /// this): the inner one must not touch the outer one's scratch, nor fail for it.
    #[test]
    fn embeddings_nest_inside_parallel_loops() {
        let embedder = embedder();
        let images: Vec<Vec<f32>> = (0..16).map(|i| values(32 * 32, 100 + i)).collect();
        let expected = embedder.embed(&images);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(8).build().expect("a thread pool");
        // One round caught the nesting about three times in five before the fix.
        for _ in 0..4 {
            let results: Vec<Vec<f32>> =
                pool.install(|| (0..1024).into_par_iter().map(|_| embedder.embed(&images)).collect());
            for result in results {
                let worst = result.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                assert!(worst < 1e-4, "a nested embedding differs by {worst}");
            }
        }
    }
}
