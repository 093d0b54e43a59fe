//! Train-mode batch norm, max-pool and ReLU of NHWC maps in two passes, remembering each
//! output's winning input in one byte; backward: one pass over the outputs for the parameter
//! gradients, one in place over the inputs for the input gradient. The same pooling pass after a
//! fixed affine map serves frozen batch norms and stages without one.

use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use crate::simd::has_avx2;

/// Per-channel batch statistics kept for the backward pass.
#[derive(Debug, Clone)]
pub struct Statistics {
    mean: Vec<f32>,
    /// `1 / √(variance + ε)`.
    inv_std: Vec<f32>,
}

impl Statistics {
    /// From the batch mean and biased variance of each channel.
    pub fn new(mean: Vec<f32>, variance: &[f32], epsilon: f64) -> Self {
        let inv_std = variance.iter().map(|&v| (1.0 / (v as f64 + epsilon).sqrt()) as f32).collect();
        Self { mean, inv_std }
    }
}

/// Marks an output whose ReLU clipped it in the winners of [`NormPool::forward`] (no gradient
/// flows back through it).
pub const CLIPPED: u8 = u8::MAX;

/// Train-mode batch norm (or a fixed affine map, [`forward_affine`](Self::forward_affine)) →
/// max-pool → ReLU on NHWC maps.
#[derive(Debug, Clone, Copy)]
pub struct NormPool {
    images: usize,
    height: usize,
    width: usize,
    channels: usize,
    pool: usize,
}

/// What [`NormPool::forward`] computes.
pub struct NormPoolForward {
    /// The stage's output, NHWC.
    pub output: Vec<f32>,
    /// The batch mean of each channel.
    pub mean: Vec<f32>,
    /// The batch's biased variance of each channel.
    pub variance: Vec<f32>,
    /// For each output value, which input of its window won (`0..pool²`), or [`CLIPPED`].
    pub winners: Vec<u8>,
}

impl NormPool {
    avx2_variant!(image_sums_wide = image_sums(&self, image: &[f32], shift: &[f32]) -> (Vec<f64>, Vec<f64>));
    avx2_variant!(pool_image_wide = pool_image(&self, image: &[f32], scale: &[f32], shift: &[f32], output: &mut [f32], winners: &mut [u8]));
    avx2_variant!(image_parameter_grads_wide = image_parameter_grads(&self, image: &[f32], statistics: &Statistics, winners: &[u8], grad: &[f32]) -> (Vec<f64>, Vec<f64>));
    avx2_variant!(image_input_grad_wide = image_input_grad(&self, image: &mut [f32], a: &[f32], b: &[f32], direct: &[f32], winners: &[u8], grad: &[f32]));

    /// The stage for maps `[n, h, w, channels]` and `pool`×`pool` windows (1: no pooling).
    ///
    /// # Panics
    /// If `pool` is 0 or larger than 15 (a window's index must fit in a byte).
    pub fn new(maps: [usize; 4], pool: usize) -> Self {
        let [images, height, width, channels] = maps;
        assert!((1..16).contains(&pool), "norm_pool_relu: pool {pool}");
        Self { images, height, width, channels, pool }
    }

    /// The output's shape.
    pub fn output_shape(&self) -> [usize; 4] {
        [self.images, self.height / self.pool, self.width / self.pool, self.channels]
    }

    /// Channels.
    pub fn channels(&self) -> usize {
        self.channels
    }

    fn image_len(&self) -> usize {
        (self.height * self.width * self.channels).max(1)
    }

    fn output_len(&self) -> usize {
        ((self.height / self.pool) * (self.width / self.pool) * self.channels).max(1)
    }

    /// Calls `visit(output offset, offsets of its window's pixels)` for every pooled pixel of one
    /// image (offsets within the image); a trailing row or column that fills no whole window is
    /// skipped, as Burn's pooling does.
    #[inline(always)]
    fn windows(&self, mut visit: impl FnMut(usize, &[usize])) {
        let (p, c) = (self.pool, self.channels);
        let (out_h, out_w) = (self.height / p, self.width / p);
        let mut offsets = vec![0; p * p];
        for oy in 0..out_h {
            for ox in 0..out_w {
                for (i, offset) in offsets.iter_mut().enumerate() {
                    *offset = ((oy * p + i / p) * self.width + ox * p + i % p) * c;
                }
                visit((oy * out_w + ox) * c, &offsets);
            }
        }
    }

    /// Per-channel mean and biased variance of `z`, in one pass: sums of `z − k` and `(z − k)²`
    /// for a shift `k` (the first pixel, close to the mean, so the squares do not cancel), in
    /// f32 over runs of 64 pixels (which vectorise across channels) and f64 beyond.
    fn statistics(&self, z: &[f32]) -> (Vec<f64>, Vec<f64>) {
        let c = self.channels;
        let shift = &z[..c];
        let (sums, squares) = z
            .par_chunks(self.image_len())
            .map(|image| with_avx2!(self.image_sums / image_sums_wide(image, shift)))
            .reduce(|| (vec![0.0; c], vec![0.0; c]), |a, b| (sum_f64(a.0, &b.0), sum_f64(a.1, &b.1)));
        let count = (z.len() / c) as f64;
        let mean: Vec<f64> = sums.iter().zip(shift).map(|(s, &k)| k as f64 + s / count).collect();
        let variance =
            sums.iter().zip(&squares).map(|(s, q)| (q / count - (s / count).powi(2)).max(0.0)).collect();
        (mean, variance)
    }

    /// One image's share of [`statistics`](Self::statistics): sums of `z − k` and `(z − k)²`.
    #[inline(always)]
    fn image_sums(&self, image: &[f32], shift: &[f32]) -> (Vec<f64>, Vec<f64>) {
        let c = self.channels;
        let (mut sums, mut squares) = (vec![0.0f64; c], vec![0.0f64; c]);
        let (mut sum, mut square) = (vec![0.0f32; c], vec![0.0f32; c]);
        for run in image.chunks(64 * c) {
            sum.fill(0.0);
            square.fill(0.0);
            for row in run.chunks_exact(c) {
                for ((s, q), (&v, &k)) in sum.iter_mut().zip(square.iter_mut()).zip(row.iter().zip(shift)) {
                    let d = v - k;
                    *s += d;
                    *q += d * d;
                }
            }
            add_f64(&mut sums, &sum);
            add_f64(&mut squares, &square);
        }
        (sums, squares)
    }

    pub fn forward(&self, z: &[f32], gamma: &[f32], beta: &[f32], epsilon: f64) -> NormPoolForward {
        let (mean, variance) = self.statistics(z);
        let scale: Vec<f32> =
            gamma.iter().zip(&variance).map(|(&g, &v)| (g as f64 / (v + epsilon).sqrt()) as f32).collect();
        let shift: Vec<f32> = beta
            .iter()
            .zip(&mean)
            .zip(&scale)
            .map(|((&b, &m), &s)| (b as f64 - m * s as f64) as f32)
            .collect();
        let (output, winners) = self.forward_affine(z, &scale, &shift);
        NormPoolForward {
            output,
            mean: mean.iter().map(|&m| m as f32).collect(),
            variance: variance.iter().map(|&v| v as f32).collect(),
            winners,
        }
    }

    /// A fixed affine map per channel, `scale · z + shift`, then max-pool and ReLU: the output
    /// and each output's winning input (or [`CLIPPED`]). A frozen batch norm is such a map (the
    /// page's fine-tuning keeps Omniglot's statistics), and no normalisation is 1 and 0 (Koch
    /// et al.'s network); the map comes before the pooling because a negative scale changes
    /// which input wins.
    pub fn forward_affine(&self, z: &[f32], scale: &[f32], shift: &[f32]) -> (Vec<f32>, Vec<u8>) {
        let mut output = vec![0.0; self.images * self.output_len()];
        let mut winners = vec![CLIPPED; output.len()];
        output
            .par_chunks_mut(self.output_len())
            .zip(winners.par_chunks_mut(self.output_len()))
            .zip(z.par_chunks(self.image_len()))
            .for_each(|((output, winners), image)| {
                with_avx2!(self.pool_image / pool_image_wide(image, scale, shift, output, winners))
            });
        (output, winners)
    }

    /// The gradient of `z` through [`forward_affine`](Self::forward_affine): `scale · grad` at
    /// each window's winner, 0 everywhere else (the map's values are constants).
    pub fn affine_input_grad(&self, scale: &[f32], winners: &[u8], grad: &[f32]) -> Vec<f32> {
        let zeros = vec![0.0; self.channels];
        let mut z = vec![0.0; self.images * self.image_len()];
        let (image_len, output_len) = (self.image_len(), self.output_len());
        z.par_chunks_mut(image_len)
            .zip(winners.par_chunks(output_len).zip(grad.par_chunks(output_len)))
            .for_each(|(image, (winners, grad))| {
                // The batch-norm input gradient without its statistics' terms (a = b = 0).
                with_avx2!(
                    self.image_input_grad
                        / image_input_grad_wide(image, &zeros, &zeros, scale, winners, grad)
                )
            });
        z
    }

    /// One image of [`forward`](Self::forward): each window's normalised maximum (the first
    /// winner on ties) through ReLU, and which input won.
    #[inline(always)]
    fn pool_image(
        &self,
        image: &[f32],
        scale: &[f32],
        shift: &[f32],
        output: &mut [f32],
        winners: &mut [u8],
    ) {
        let c = self.channels;
        let (mut best, mut best_at) = (vec![0.0f32; c], vec![0u32; c]);
        self.windows(|out, offsets| {
            for (i, &offset) in offsets.iter().enumerate() {
                let row = &image[offset..offset + c];
                let lanes =
                    best.iter_mut().zip(best_at.iter_mut()).zip(row.iter().zip(scale.iter().zip(shift)));
                for ((best, at), (&v, (&scale, &shift))) in lanes {
                    let v = v * scale + shift;
                    let better = i == 0 || v > *best;
                    *best = if better { v } else { *best };
                    *at = if better { i as u32 } else { *at };
                }
            }
            let (output, winners) = (&mut output[out..out + c], &mut winners[out..out + c]);
            for ((output, winner), (&best, &at)) in
                output.iter_mut().zip(winners).zip(best.iter().zip(&best_at))
            {
                let alive = best > 0.0;
                *output = if alive { best } else { 0.0 };
                *winner = if alive { at as u8 } else { CLIPPED };
            }
        });
    }

    /// The gradients of β and γ: the gradient of the normalised values x̂ = (z − μ)/σ is the
    /// output gradient at each window's winner and 0 elsewhere, so the sums run over the
    /// outputs only (for each window position, over the lanes it won).
    pub fn parameter_grads(
        &self,
        z: &[f32],
        statistics: &Statistics,
        winners: &[u8],
        grad: &[f32],
    ) -> (Vec<f64>, Vec<f64>) {
        let c = self.channels;
        let (image_len, output_len) = (self.image_len(), self.output_len());
        z.par_chunks(image_len)
            .zip(winners.par_chunks(output_len))
            .zip(grad.par_chunks(output_len))
            .map(|((image, winners), grad)| {
                with_avx2!(
                    self.image_parameter_grads / image_parameter_grads_wide(image, statistics, winners, grad)
                )
            })
            .reduce(|| (vec![0.0; c], vec![0.0; c]), |a, b| (sum_f64(a.0, &b.0), sum_f64(a.1, &b.1)))
    }

    /// One image's share of [`parameter_grads`](Self::parameter_grads).
    #[inline(always)]
    fn image_parameter_grads(
        &self,
        image: &[f32],
        statistics: &Statistics,
        winners: &[u8],
        grad: &[f32],
    ) -> (Vec<f64>, Vec<f64>) {
        let (c, Statistics { mean, inv_std }) = (self.channels, statistics);
        let (mut dbeta, mut dgamma) = (vec![0.0f32; c], vec![0.0f32; c]);
        self.windows(|out, offsets| {
            let (winners, grad) = (&winners[out..out + c], &grad[out..out + c]);
            for (i, &offset) in offsets.iter().enumerate() {
                let row = &image[offset..offset + c];
                let lanes = dbeta.iter_mut().zip(dgamma.iter_mut()).zip(winners.iter().zip(grad));
                for (((db, dg), (&w, &g)), (&v, (&m, &s))) in
                    lanes.zip(row.iter().zip(mean.iter().zip(inv_std)))
                {
                    // A 0/1 factor rather than a branch, so the loop vectorises.
                    let g = (w == i as u8) as u32 as f32 * g;
                    *db += g;
                    *dg += g * ((v - m) * s);
                }
            }
        });
        let widen = |sums: Vec<f32>| sums.into_iter().map(f64::from).collect::<Vec<_>>();
        (widen(dbeta), widen(dgamma))
    }

    /// Overwrites `z` with its gradient, given the parameter gradients from
    /// [`parameter_grads`](Self::parameter_grads): `dz = γ/σ · (dx̂ − mean(dx̂) − x̂ ·
    /// mean(dx̂ · x̂))`. The last two terms are an affine function of z per channel, a·z + b;
    /// the first is added at the winners. In place and in one pass.
    pub fn input_grad_in_place(
        &self,
        z: &mut [f32],
        gamma: &[f32],
        statistics: &Statistics,
        (dbeta, dgamma): (&[f64], &[f64]),
        winners: &[u8],
        grad: &[f32],
    ) {
        let c = self.channels;
        let Statistics { mean, inv_std } = statistics;
        let count = (z.len() / c) as f64;
        let (mut a, mut b) = (vec![0.0f32; c], vec![0.0f32; c]);
        for ch in 0..c {
            let (g, s) = (gamma[ch] as f64, inv_std[ch] as f64);
            a[ch] = (-g * s * s * dgamma[ch] / count) as f32;
            b[ch] = (-g * s / count * (dbeta[ch] - mean[ch] as f64 * s * dgamma[ch])) as f32;
        }
        let direct: Vec<f32> = gamma.iter().zip(inv_std).map(|(g, s)| g * s).collect();
        let (image_len, output_len) = (self.image_len(), self.output_len());
        z.par_chunks_mut(image_len)
            .zip(winners.par_chunks(output_len).zip(grad.par_chunks(output_len)))
            .for_each(|(image, (winners, grad))| {
                with_avx2!(
                    self.image_input_grad / image_input_grad_wide(image, &a, &b, &direct, winners, grad)
                )
            });
    }

    /// One image of [`input_grad_in_place`](Self::input_grad_in_place).
    #[inline(always)]
    fn image_input_grad(
        &self,
        image: &mut [f32],
        a: &[f32],
        b: &[f32],
        direct: &[f32],
        winners: &[u8],
        grad: &[f32],
    ) {
        let c = self.channels;
        self.windows(|out, offsets| {
            let (winners, grad) = (&winners[out..out + c], &grad[out..out + c]);
            for (i, &offset) in offsets.iter().enumerate() {
                let row = &mut image[offset..offset + c];
                let lanes =
                    row.iter_mut().zip(a.iter().zip(b)).zip(direct.iter().zip(winners.iter().zip(grad)));
                for ((v, (&a, &b)), (&d, (&w, &g))) in lanes {
                    *v = a * *v + b + (w == i as u8) as u32 as f32 * d * g;
                }
            }
        });
        // Pixels in no window (a trailing odd row or column) only get the affine part.
        let (covered_y, covered_x) =
            (self.height / self.pool * self.pool, self.width / self.pool * self.pool);
        for (y, row) in image.chunks_exact_mut(self.width * c).enumerate() {
            let start = if y < covered_y { covered_x } else { 0 };
            for pixel in row[start * c..].chunks_exact_mut(c) {
                for (v, (&a, &b)) in pixel.iter_mut().zip(a.iter().zip(b)) {
                    *v = a * *v + b;
                }
            }
        }
    }
}

/// Adds f32 partial sums into f64 totals.
fn add_f64(totals: &mut [f64], partial: &[f32]) {
    totals.iter_mut().zip(partial).for_each(|(t, &p)| *t += p as f64);
}

/// Element-wise `a + b`, reusing `a`.
fn sum_f64(mut a: Vec<f64>, b: &[f64]) -> Vec<f64> {
    a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
    a
}
