//! A stride-1 convolution of NHWC maps for training: forward, and the input, weight and bias
//! gradients (Winograd F(4×4, 3×3) for 3×3 "same" convolutions on maps of at least 8×8,
//! register-blocked direct loops for one input channel, im2col and a matrix product otherwise).

use rayon::prelude::*;

use crate::layout::im2col_weights;
use crate::matmul::{Matrix, grow, matmul_on, matmul_serial};
use crate::simd::{F32x4, Lanes};
#[cfg(target_arch = "x86_64")]
use crate::simd::{F32x8, has_avx2};
use crate::winograd::{F4, transform_2d, winograd_input, winograd_output, winograd_weight_values};

/// A stride-1 convolution's shapes, NHWC.
#[derive(Debug, Clone, Copy)]
pub struct Conv {
    images: usize,
    height: usize,
    width: usize,
    cin: usize,
    cout: usize,
    kernel: usize,
    padding: usize,
    out_height: usize,
    out_width: usize,
}

/// The gradients of a convolution.
pub struct ConvGrads {
    /// NHWC like the input; `None` when not asked for.
    pub x: Option<Vec<f32>>,
    /// `[out, in, k, k]`.
    pub weight: Vec<f32>,
    /// `[out]`.
    pub bias: Vec<f32>,
}

/// Output channels per register block of the one-input-channel kernels: two AVX registers.
const BLOCK: usize = 16;

/// The largest kernel (k·k taps) of a one-channel convolution that the direct loops compute.
const DIRECT_MAX_TAPS: usize = 25;

/// Values per im2col buffer, about 4 MiB: large products for `gemm`, a buffer that stays in
/// the last-level cache.
const COLUMNS_PER_GROUP: usize = 1 << 20;

impl Conv {
    avx2_variant!(direct_forward_wide = direct_forward(&self, images: &[f32], weights: &[f32], bias: &[f32], output: &mut [f32]));
    avx2_variant!(direct_weight_grad_wide = direct_weight_grad(&self, images: &[f32], grad: &[f32]) -> Vec<f32>);

    /// The convolution of maps `input` = `[n, h, w, in]` with weights `weight` = `[out, in, k, k]`
    /// (Burn's layout) and `padding` zeros on every side.
    ///
    /// # Panics
    /// If the shapes do not fit together or the kernel is larger than the padded input.
    pub fn new(input: [usize; 4], weight: [usize; 4], padding: usize) -> Self {
        let [images, height, width, cin] = input;
        let [cout, weight_cin, kernel, kernel_x] = weight;
        assert!(weight_cin == cin && kernel == kernel_x, "conv_nhwc: weight {weight:?} for input {input:?}");
        let out = |side: usize| {
            (side + 2 * padding).checked_sub(kernel - 1).expect("conv_nhwc: kernel larger than the input")
        };
        Self {
            images,
            height,
            width,
            cin,
            cout,
            kernel,
            padding,
            out_height: out(height),
            out_width: out(width),
        }
    }

    /// The output's shape, `[n, h', w', out]`.
    pub fn output_shape(&self) -> [usize; 4] {
        [self.images, self.out_height, self.out_width, self.cout]
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.cout
    }

    /// Values in one im2col row: `(ky, kx, in)`.
    fn row_len(&self) -> usize {
        self.kernel * self.kernel * self.cin
    }

    /// Output pixels per image, i.e. im2col rows per image.
    fn pixels(&self) -> usize {
        self.out_height * self.out_width
    }

    /// Images per task: one task per thread, fewer images where an im2col buffer would exceed
    /// [`COLUMNS_PER_GROUP`] values.
    fn group(&self) -> usize {
        let columns = if self.winograd() || self.cin == 1 { 0 } else { self.pixels() * self.row_len() };
        let by_memory = COLUMNS_PER_GROUP / columns.max(1);
        let by_threads = self.images.div_ceil(rayon::current_num_threads());
        by_memory.min(by_threads).max(1)
    }

    fn image_len(&self) -> usize {
        self.height * self.width * self.cin
    }

    /// The input rows `(iy, ix₀..ix₀+k)` under output pixel `(oy, ox)`: for each `ky` whose row
    /// lies inside the image, `visit(range of the im2col row, range of the image)`. Columns in
    /// the padding are dropped from both ranges; the caller zero-fills the rest of the row.
    #[inline(always)]
    fn taps(
        &self,
        oy: usize,
        ox: usize,
        mut visit: impl FnMut(std::ops::Range<usize>, std::ops::Range<usize>),
    ) {
        let (k, cin) = (self.kernel, self.cin);
        let x0 = ox as isize - self.padding as isize;
        let kx_start = (-x0).max(0) as usize;
        let kx_end = (self.width as isize - x0).clamp(0, k as isize) as usize;
        if kx_start >= kx_end {
            return;
        }
        for ky in 0..k {
            let iy = (oy + ky) as isize - self.padding as isize;
            if iy < 0 || iy >= self.height as isize {
                continue;
            }
            let ix = (x0 + kx_start as isize) as usize;
            let len = (kx_end - kx_start) * cin;
            let row = (ky * k + kx_start) * cin;
            let image = (iy as usize * self.width + ix) * cin;
            visit(row..row + len, image..image + len);
        }
    }

    /// Whether the kernel under output pixel `(oy, ox)` reaches into the padding.
    fn at_border(&self, oy: usize, ox: usize) -> bool {
        let p = self.padding;
        oy < p || ox < p || oy + self.kernel > self.height + p || ox + self.kernel > self.width + p
    }

    /// Fills `columns` with the im2col rows of `images` (consecutive images, NHWC).
    fn im2col(&self, images: &[f32], columns: &mut [f32]) {
        let row_len = self.row_len();
        for (columns, image) in
            columns.chunks_exact_mut(self.pixels() * row_len).zip(images.chunks_exact(self.image_len()))
        {
            for (pixel, row) in columns.chunks_exact_mut(row_len).enumerate() {
                let (oy, ox) = (pixel / self.out_width, pixel % self.out_width);
                if self.at_border(oy, ox) {
                    row.fill(0.0);
                }
                self.taps(oy, ox, |to, from| row[to].copy_from_slice(&image[from]));
            }
        }
    }

    /// Adds im2col rows back onto the images they came from (the adjoint of [`Conv::im2col`]).
    fn col2im(&self, columns: &[f32], images: &mut [f32]) {
        let row_len = self.row_len();
        for (columns, image) in
            columns.chunks_exact(self.pixels() * row_len).zip(images.chunks_exact_mut(self.image_len()))
        {
            for (pixel, row) in columns.chunks_exact(row_len).enumerate() {
                self.taps(pixel / self.out_width, pixel % self.out_width, |from, to| {
                    for (out, value) in image[to].iter_mut().zip(&row[from]) {
                        *out += value;
                    }
                });
            }
        }
    }

    /// The output, NHWC: per group of images (one task each), im2col and one product on top of
    /// the bias.
    pub fn forward(&self, x: &[f32], weight: &[f32], bias: &[f32]) -> Vec<f32> {
        if self.winograd() {
            return self.winograd_forward(x, weight, bias);
        }
        let weights = im2col_weights(weight, self.cin, self.cout, self.kernel);
        let (row_len, group, cout) = (self.row_len(), self.group(), self.cout);
        let mut output = vec![0.0; self.images * self.pixels() * cout];
        output
            .par_chunks_mut(group * self.pixels() * cout)
            .zip(x.par_chunks(group * self.image_len()))
            .for_each(|(output, images)| {
                if self.direct() {
                    return with_avx2!(
                        self.direct_forward / direct_forward_wide(images, &weights, bias, output)
                    );
                }
                for row in output.chunks_exact_mut(cout) {
                    row.copy_from_slice(bias);
                }
                with_columns(output.len() / cout * row_len, |columns| {
                    self.im2col(images, columns);
                    matmul_serial(Matrix::rows(columns, row_len), Matrix::rows(&weights, cout), output, true);
                });
            });
        output
    }

    /// Whether the convolution is 3×3 "same" on maps and channel counts that Winograd
    /// F(4×4, 3×3) tiles exactly (all of the `web` preset's but the first, one-channel, stage).
    fn winograd(&self) -> bool {
        self.kernel == 3
            && self.padding == 1
            && self.height.is_multiple_of(4)
            && self.width.is_multiple_of(4)
            // Below four tiles per image (the 4×4 maps of `web`'s last stage), the transforms
            // cost more than the products they save: im2col is faster there (measured).
            && self.height * self.width >= 64
            && self.cin.is_multiple_of(4)
            && self.cout.is_multiple_of(4)
    }

    /// Whether the direct loops run rather than im2col: one input channel and a small kernel,
    /// where im2col's rows are too short for `gemm` (`web`'s 3×3 first stage). Koch et al.'s
    /// 10×10 first stage has rows of 100 values: there the direct weight gradient took a quarter
    /// of a training step, and with im2col and `gemm` the step went from 2.1 to 1.6 s here.
    fn direct(&self) -> bool {
        self.cin == 1 && self.row_len() <= DIRECT_MAX_TAPS
    }

    /// For one input channel, where im2col's rows are only k·k long and the products run far
    /// below `gemm`'s speed: the k·k input values under the kernel for every output pixel of
    /// `image` (zeros in the padding), `[pixels, k·k]`, value by value (runs of k values are
    /// too short for `copy_from_slice`'s `memcpy` call to pay off).
    #[inline(always)]
    fn patches(&self, image: &[f32], patches: &mut [f32]) {
        debug_assert_eq!(self.cin, 1);
        let (k, pad) = (self.kernel, self.padding as isize);
        let mut patches = patches.chunks_exact_mut(k * k);
        for oy in 0..self.out_height as isize {
            for ox in 0..self.out_width as isize {
                let Some(patch) = patches.next() else { return };
                for (ky, row) in patch.chunks_exact_mut(k).enumerate() {
                    let iy = oy + ky as isize - pad;
                    if !(0..self.height as isize).contains(&iy) {
                        row.fill(0.0);
                        continue;
                    }
                    let line = &image[iy as usize * self.width..(iy as usize + 1) * self.width];
                    for (kx, value) in row.iter_mut().enumerate() {
                        let ix = ox + kx as isize - pad;
                        *value = if (0..self.width as isize).contains(&ix) { line[ix as usize] } else { 0.0 };
                    }
                }
            }
        }
    }

    /// [`Conv::forward`] for one input channel, directly: each output row is the bias plus
    /// input value × weight row over the taps, [`BLOCK`] output channels at a time in registers.
    #[inline(always)]
    fn direct_forward(&self, images: &[f32], weights: &[f32], bias: &[f32], output: &mut [f32]) {
        let (cout, taps) = (self.cout, self.row_len());
        let blocked = cout / BLOCK * BLOCK;
        let mut patches = vec![0.0; self.pixels() * taps];
        for (image, output) in
            images.chunks_exact(self.image_len()).zip(output.chunks_exact_mut(self.pixels() * cout))
        {
            self.patches(image, &mut patches);
            // Four pixels × BLOCK channels of sums in registers; each weight block is loaded
            // once per four pixels.
            let quads = self.pixels() / 4 * 4;
            for (patch, out) in
                patches[..quads * taps].chunks_exact(4 * taps).zip(output.chunks_exact_mut(4 * cout))
            {
                for o in (0..blocked).step_by(BLOCK) {
                    let mut sums: [[f32; BLOCK]; 4] = [std::array::from_fn(|l| bias[o + l]); 4];
                    for (tap, weights) in weights.chunks_exact(cout).enumerate() {
                        let weights: &[f32; BLOCK] = weights[o..o + BLOCK].try_into().expect("a block");
                        for (p, sums) in sums.iter_mut().enumerate() {
                            let value = patch[p * taps + tap];
                            for (sum, &w) in sums.iter_mut().zip(weights) {
                                *sum += value * w;
                            }
                        }
                    }
                    for (p, sums) in sums.iter().enumerate() {
                        out[p * cout + o..p * cout + o + BLOCK].copy_from_slice(sums);
                    }
                }
            }
            // The last pixels (fewer than four), then channels beyond the last whole block.
            let rest =
                patches[quads * taps..].chunks_exact(taps).zip(output[quads * cout..].chunks_exact_mut(cout));
            for (patch, out) in rest {
                for o in (0..blocked).step_by(BLOCK) {
                    let mut sums: [f32; BLOCK] = std::array::from_fn(|l| bias[o + l]);
                    for (&value, weights) in patch.iter().zip(weights.chunks_exact(cout)) {
                        for (sum, &w) in sums.iter_mut().zip(&weights[o..o + BLOCK]) {
                            *sum += value * w;
                        }
                    }
                    out[o..o + BLOCK].copy_from_slice(&sums);
                }
            }
            for (patch, out) in patches.chunks_exact(taps).zip(output.chunks_exact_mut(cout)) {
                for o in blocked..cout {
                    out[o] = bias[o]
                        + patch.iter().zip(weights.chunks_exact(cout)).map(|(&v, w)| v * w[o]).sum::<f32>();
                }
            }
        }
    }

    /// The weight gradient `[(ky, kx), out]` for one input channel, directly: per tap, the sum
    /// over output pixels of input value × output-gradient row, [`BLOCK`] output channels at a
    /// time in registers.
    #[inline(always)]
    fn direct_weight_grad(&self, images: &[f32], grad: &[f32]) -> Vec<f32> {
        let (cout, taps) = (self.cout, self.row_len());
        let blocked = cout / BLOCK * BLOCK;
        let mut weight_rows = vec![0.0; taps * cout];
        let mut patches = vec![0.0; self.pixels() * taps];
        for (image, grad) in
            images.chunks_exact(self.image_len()).zip(grad.chunks_exact(self.pixels() * cout))
        {
            self.patches(image, &mut patches);
            for (tap, rows) in weight_rows.chunks_exact_mut(cout).enumerate() {
                for o in (0..blocked).step_by(BLOCK) {
                    let mut sums = [0.0f32; BLOCK];
                    for (patch, grad) in patches.chunks_exact(taps).zip(grad.chunks_exact(cout)) {
                        let (value, grad): (f32, &[f32; BLOCK]) =
                            (patch[tap], grad[o..o + BLOCK].try_into().expect("a block"));
                        for (sum, &g) in sums.iter_mut().zip(grad) {
                            *sum += value * g;
                        }
                    }
                    rows[o..o + BLOCK].iter_mut().zip(sums).for_each(|(row, sum)| *row += sum);
                }
                for (o, row) in rows.iter_mut().enumerate().skip(blocked) {
                    *row += patches
                        .chunks_exact(taps)
                        .zip(grad.chunks_exact(cout))
                        .map(|(p, g)| p[tap] * g[o])
                        .sum::<f32>();
                }
            }
        }
        weight_rows
    }

    /// [`Conv::forward`] by Winograd F(4×4, 3×3): per group of images, the input transform,
    /// 36 products `[tiles, in] · [in, out]` and the output transform, plus the bias.
    fn winograd_forward(&self, x: &[f32], weight: &[f32], bias: &[f32]) -> Vec<f32> {
        let transformed = transform_weights(weight, self.cin, self.cout);
        let mut output = vec![0.0; self.images * self.pixels() * self.cout];
        let group = self.images.div_ceil(rayon::current_num_threads()).max(1);
        output
            .par_chunks_mut(group * self.pixels() * self.cout)
            .zip(x.par_chunks(group * self.image_len()))
            .for_each(|(output, images)| {
                let shape =
                    WinogradShape { height: self.height, width: self.width, cin: self.cin, cout: self.cout };
                shape.convolve(images, &transformed, bias, output)
            });
        output
    }

    /// The gradients for the output gradient `grad` (NHWC); the input's only `with_x`. Each
    /// group of images is one task; the weight and bias gradients are summed over the tasks.
    ///
    /// Where [`Conv::winograd`] holds, both are Winograd F(4×4, 3×3) too: the input gradient of
    /// a 3×3 "same" convolution is the "same" convolution of the output gradient with the kernel
    /// turned by 180° and in/out swapped, and the weight gradient is the adjoint of the forward
    /// products (see [`WinogradShape::weight_partial`]). Otherwise im2col, or for one input channel
    /// the direct loops.
    pub fn backward(&self, x: &[f32], weight: &[f32], grad: &[f32], with_x: bool) -> ConvGrads {
        let (winograd, cout, image_len) = (self.winograd(), self.cout, self.image_len());
        // The im2col weights only for im2col's input gradient (serial work the Winograd path
        // does not need).
        let weights = match with_x && !winograd {
            true => im2col_weights(weight, self.cin, cout, self.kernel),
            false => Vec::new(),
        };
        let flipped = match with_x && winograd {
            true => transform_weights(&rotated_transposed(weight, cout, self.cin), cout, self.cin),
            false => Vec::new(),
        };
        let group = self.group();
        let mut dx = vec![0.0; if with_x { x.len() } else { 0 }];
        let dx_parts: Vec<&mut [f32]> = match with_x {
            true => dx.chunks_mut(group * image_len).collect(),
            false => (0..self.images.div_ceil(group)).map(|_| <&mut [f32]>::default()).collect(),
        };
        // Per task: the weight gradient in the Winograd domain `[36, in, out]` or as im2col rows
        // `[(ky, kx, in), out]`, and the bias gradient.
        let partial_len = if winograd { 36 * self.cin * cout } else { self.row_len() * cout };
        let (weight_partial, bias) = x
            .par_chunks(group * image_len)
            .zip(grad.par_chunks(group * self.pixels() * cout))
            .zip(dx_parts)
            .map(|((images, grad), dx)| {
                let mut bias = vec![0.0f32; cout];
                for row in grad.chunks_exact(cout) {
                    bias.iter_mut().zip(row).for_each(|(sum, value)| *sum += value);
                }
                let shape = WinogradShape { height: self.height, width: self.width, cin: self.cin, cout };
                let partial = match (winograd, self.cin) {
                    (true, _) => shape.weight_partial(images, grad),
                    (false, _) if self.direct() => {
                        with_avx2!(self.direct_weight_grad / direct_weight_grad_wide(images, grad))
                    }
                    (false, _) => self.im2col_weight_grad(images, grad),
                };
                match (with_x, winograd) {
                    (true, true) => {
                        let zeros = vec![0.0; self.cin];
                        let flipped_shape = WinogradShape { cin: cout, cout: self.cin, ..shape };
                        flipped_shape.convolve(grad, &flipped, &zeros, dx);
                    }
                    (true, false) => self.im2col_input_grad(grad, &weights, dx),
                    (false, _) => {}
                }
                (partial, bias)
            })
            .reduce(
                || (vec![0.0; partial_len], vec![0.0; cout]),
                |(w, b), (w2, b2)| (add(w, &w2), add(b, &b2)),
            );
        let weight_grad = match winograd {
            true => winograd_weight_grad(&weight_partial, self.cin, cout),
            false => {
                // `[(ky, kx, in), out]` back to Burn's `[out, in, k, k]`.
                let taps = self.kernel * self.kernel;
                let mut weight_grad = vec![0.0; weight.len()];
                for o in 0..cout {
                    for c in 0..self.cin {
                        for tap in 0..taps {
                            weight_grad[(o * self.cin + c) * taps + tap] =
                                weight_partial[(tap * self.cin + c) * cout + o];
                        }
                    }
                }
                weight_grad
            }
        };
        ConvGrads { x: with_x.then_some(dx), weight: weight_grad, bias }
    }

    /// The weight gradient `[(ky, kx, in), out]` of a group of images: `colsᵀ · dZ`.
    fn im2col_weight_grad(&self, images: &[f32], grad: &[f32]) -> Vec<f32> {
        let (row_len, cout) = (self.row_len(), self.cout);
        let mut weight_rows = vec![0.0; row_len * cout];
        with_columns(grad.len() / cout * row_len, |columns| {
            self.im2col(images, columns);
            matmul_serial(
                Matrix::rows(columns, row_len).t(),
                Matrix::rows(grad, cout),
                &mut weight_rows,
                false,
            );
        });
        weight_rows
    }

    /// The input gradient of a group of images: `d(cols) = dZ · Wᵀ`, scattered back onto the
    /// input pixels.
    fn im2col_input_grad(&self, grad: &[f32], weights: &[f32], dx: &mut [f32]) {
        let (row_len, cout) = (self.row_len(), self.cout);
        with_columns(grad.len() / cout * row_len, |columns| {
            matmul_serial(Matrix::rows(grad, cout), Matrix::rows(weights, cout).t(), columns, false);
            self.col2im(columns, dx);
        });
    }
}

/// The shapes of a 3×3 "same" convolution by Winograd F(4×4, 3×3): sides multiples of 4,
/// channels multiples of 4.
#[derive(Clone, Copy)]
struct WinogradShape {
    height: usize,
    width: usize,
    cin: usize,
    cout: usize,
}

impl WinogradShape {
    /// Whether the CPU has AVX2 and both channel counts fill eight lanes: the transforms then run
    /// on [`F32x8`], with the same results as on four lanes.
    #[cfg(target_arch = "x86_64")]
    fn eight_lanes(&self) -> bool {
        self.cin.is_multiple_of(8) && self.cout.is_multiple_of(8) && has_avx2()
    }

    /// The convolution of NHWC `images` with `transformed` weights (from
    /// `winograd_weight_values`), plus `bias`, into `output` (NHWC), on this thread.
    fn convolve(&self, images: &[f32], transformed: &[f32], bias: &[f32], output: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if self.eight_lanes() {
            // SAFETY: the CPU has AVX2 and FMA (checked).
            return unsafe { self.convolve_avx2(images, transformed, bias, output) };
        }
        self.convolve_on::<F32x4>(images, transformed, bias, output)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn convolve_avx2(&self, images: &[f32], transformed: &[f32], bias: &[f32], output: &mut [f32]) {
        self.convolve_on::<F32x8>(images, transformed, bias, output)
    }

    #[inline(always)]
    fn convolve_on<V: Lanes>(&self, images: &[f32], transformed: &[f32], bias: &[f32], output: &mut [f32]) {
        let WinogradShape { height, width, cin, cout } = *self;
        let (tiles_y, tiles_x) = (height / 4, width / 4);
        let n = images.len() / (height * width * cin) * tiles_y * tiles_x;
        let [mut tiles, mut products] = take_scratch(36 * n * cin, 36 * n * cout);
        winograd_input::<4, 6, F4, V>(images, height, width, cin, &mut tiles);
        // One product per transform position ξ: rows of every tile's values at ξ.
        for (xi, weight) in transformed.chunks_exact(cin * cout).enumerate() {
            let tiles = Matrix::strided(&tiles[xi * cin..], n, cin, 36 * cin);
            matmul_on(tiles, Matrix::rows(weight, cout), &mut products[xi * cout..], 36 * cout, false, false);
        }
        winograd_output::<4, 6, F4, V>(&products, n, cout, |t, o, block| {
            let (b, y, x) = (t / (tiles_y * tiles_x), t / tiles_x % tiles_y, t % tiles_x);
            let bias = V::load(&bias[o..]);
            for (a, row) in block.iter().enumerate() {
                for (e, value) in row.iter().enumerate() {
                    let at = ((b * height + 4 * y + a) * width + 4 * x + e) * cout + o;
                    value.add(bias).store(&mut output[at..]);
                }
            }
        });
        put_scratch([tiles, products]);
    }

    /// A group of images' share of the weight gradient in the Winograd domain, `[36, in, out]`.
    /// The forward pass computes `Y = Aᵀ [U ⊙ V] A` per tile from the transformed weights U and
    /// input tiles V, so `dU[ξ] = Σ_tiles V[ξ]ᵀ · (A dY Aᵀ)[ξ]`: the input transform as in the
    /// forward pass, the adjoint output transform of each tile's 4×4 block of the output
    /// gradient, and 36 products `[in, tiles] · [tiles, out]` (a quarter of im2col's
    /// multiplications).
    fn weight_partial(&self, images: &[f32], grad: &[f32]) -> Vec<f32> {
        #[cfg(target_arch = "x86_64")]
        if self.eight_lanes() {
            // SAFETY: the CPU has AVX2 and FMA (checked).
            return unsafe { self.weight_partial_avx2(images, grad) };
        }
        self.weight_partial_on::<F32x4>(images, grad)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn weight_partial_avx2(&self, images: &[f32], grad: &[f32]) -> Vec<f32> {
        self.weight_partial_on::<F32x8>(images, grad)
    }

    #[inline(always)]
    fn weight_partial_on<V: Lanes>(&self, images: &[f32], grad: &[f32]) -> Vec<f32> {
        let WinogradShape { height, width, cin, cout } = *self;
        let (tiles_y, tiles_x) = (height / 4, width / 4);
        let n = images.len() / (height * width * cin) * tiles_y * tiles_x;
        let mut partial = vec![0.0; 36 * cin * cout];
        let [mut tiles, mut grad_tiles] = take_scratch(36 * n * cin, 36 * n * cout);
        winograd_input::<4, 6, F4, V>(images, height, width, cin, &mut tiles);
        for t in 0..n {
            let tile = &mut grad_tiles[t * 36 * cout..(t + 1) * 36 * cout];
            let (b, y, x) = (t / (tiles_y * tiles_x), t / tiles_x % tiles_y, t % tiles_x);
            for o in (0..cout).step_by(V::LANES) {
                let mut block = [[V::splat(0.0); 4]; 4];
                for (a, row) in block.iter_mut().enumerate() {
                    for (e, value) in row.iter_mut().enumerate() {
                        *value = V::load(&grad[((b * height + 4 * y + a) * width + 4 * x + e) * cout + o..]);
                    }
                }
                let transformed = transform_2d!(block, F4::output_adjoint, 4, 6);
                for (xi, value) in transformed.as_flattened().iter().enumerate() {
                    value.store(&mut tile[xi * cout + o..]);
                }
            }
        }
        for (xi, partial) in partial.chunks_exact_mut(cin * cout).enumerate() {
            let tiles = Matrix::strided(&tiles[xi * cin..], n, cin, 36 * cin).t();
            let grads = Matrix::strided(&grad_tiles[xi * cout..], n, cout, 36 * cout);
            matmul_on(tiles, grads, partial, cout, false, false);
        }
        put_scratch([tiles, grad_tiles]);
        partial
    }
}

/// Burn's `[out, in, 3, 3]` weight gradient from its Winograd-domain form `[36, in, out]`:
/// `Gᵀ dU G` for every (in, out) pair, the adjoint of the kernel transform.
fn winograd_weight_grad(partial: &[f32], cin: usize, cout: usize) -> Vec<f32> {
    let mut out = vec![0.0; cout * cin * 9];
    for c in 0..cin {
        for o in 0..cout {
            let u = |i: usize, j: usize| partial[((i * 6 + j) * cin + c) * cout + o];
            // Over the x transform (j) for each y row i, then over the y transform.
            let rows: [[f32; 3]; 6] =
                std::array::from_fn(|i| F4::kernel_adjoint(std::array::from_fn(|j| u(i, j))));
            for kx in 0..3 {
                let column = F4::kernel_adjoint(std::array::from_fn(|i| rows[i][kx]));
                for (ky, value) in column.into_iter().enumerate() {
                    out[(o * cin + c) * 9 + ky * 3 + kx] = value;
                }
            }
        }
    }
    out
}

/// Burn's `[out, in, 3, 3]` weights in F(4×4, 3×3)'s domain (`winograd_weight_values`), eight
/// output channels at a time where the CPU has AVX2 (the same values as four or one at a time).
fn transform_weights(weight: &[f32], cin: usize, cout: usize) -> Vec<f32> {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        #[target_feature(enable = "avx2,fma")]
        fn wide(weight: &[f32], cin: usize, cout: usize) -> Vec<f32> {
            winograd_weight_values::<4, 6, F4, F32x8>(weight, cin, cout)
        }
        // SAFETY: the CPU has AVX2 and FMA (checked).
        return unsafe { wide(weight, cin, cout) };
    }
    winograd_weight_values::<4, 6, F4, F32x4>(weight, cin, cout)
}

/// Burn's `[out, in, 3, 3]` weights turned by 180° with in and out swapped: `[in, out, 3, 3]`.
fn rotated_transposed(weight: &[f32], cout: usize, cin: usize) -> Vec<f32> {
    let mut out = vec![0.0; weight.len()];
    for o in 0..cout {
        for c in 0..cin {
            for tap in 0..9 {
                out[(c * cout + o) * 9 + (8 - tap)] = weight[(o * cin + c) * 9 + tap];
            }
        }
    }
    out
}

/// Element-wise `a + b`, reusing `a`.
fn add(mut a: Vec<f32>, b: &[f32]) -> Vec<f32> {
    a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
    a
}

thread_local! {
    /// Each thread's two scratch buffers (im2col columns, or Winograd tiles and products), kept
    /// between calls: fresh ones per call spent much of the time in page faults.
    static SCRATCH: std::cell::RefCell<[Vec<f32>; 2]> = const { std::cell::RefCell::new([Vec::new(), Vec::new()]) };
}

/// This thread's scratch buffers, at least `first` and `second` long (old values left in
/// them), taken out of [`SCRATCH`] until [`put_scratch`] returns them: the work between runs in
/// its caller's frame, so an AVX caller's vector code is not compiled inside `LocalKey::with`.
#[inline(always)]
fn take_scratch(first: usize, second: usize) -> [Vec<f32>; 2] {
    let [mut a, mut b] = SCRATCH.with_borrow_mut(std::mem::take);
    grow(&mut a, first);
    grow(&mut b, second);
    [a, b]
}

/// Gives the buffers of [`take_scratch`] back for the next call on this thread.
fn put_scratch(buffers: [Vec<f32>; 2]) {
    SCRATCH.set(buffers);
}

/// Runs `work` on this thread's first scratch buffer, `len` long.
fn with_columns<R>(len: usize, work: impl FnOnce(&mut [f32]) -> R) -> R {
    let [mut columns, second] = take_scratch(len, 0);
    let result = work(&mut columns[..len]);
    put_scratch([columns, second]);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_values::values;

    /// The transforms on eight lanes (where the CPU has AVX2) give the four-lane (and, for the
    /// weights, one-lane) results bit for bit, forward and for the weight gradient, in both
    /// channel orders.
    #[test]
    fn eight_lane_transforms_equal_four_lane_ones() {
        for (cin, cout) in [(16, 8), (8, 16)] {
            let shape = WinogradShape { height: 8, width: 12, cin, cout };
            let images = values(3 * 8 * 12 * cin, 1);
            let weight = values(cout * cin * 9, 2);
            let bias = values(cout, 3);
            let grad = values(3 * 8 * 12 * cout, 4);
            let transformed = transform_weights(&weight, cin, cout);
            assert_eq!(
                transformed,
                winograd_weight_values::<4, 6, F4, f32>(&weight, cin, cout),
                "weights, one lane"
            );
            assert_eq!(
                transformed,
                winograd_weight_values::<4, 6, F4, F32x4>(&weight, cin, cout),
                "weights, four"
            );
            let (mut best, mut four) = (vec![0.0; grad.len()], vec![1.0; grad.len()]);
            shape.convolve(&images, &transformed, &bias, &mut best);
            shape.convolve_on::<F32x4>(&images, &transformed, &bias, &mut four);
            assert_eq!(best, four, "forward, {cin} → {cout} channels");
            assert_eq!(
                shape.weight_partial(&images, &grad),
                shape.weight_partial_on::<F32x4>(&images, &grad),
                "weight gradient, {cin} → {cout} channels"
            );
            #[cfg(target_arch = "x86_64")]
            println!("eight lanes taken: {}", shape.eight_lanes());
        }
    }
}
