//! Training kernels for the twin's convolutional stages on the CPU (native), with their own
//! backward passes, plugged into Burn's autodiff as a backend extension.
//!
//! On Burn's `flex` backend a training step of the `web` network spent most of its time outside
//! the arithmetic: every convolution converts NCHW to NHWC and back, and train-mode batch norm,
//! max-pool and ReLU are a dozen separate passes over the largest maps (with their own backward
//! passes). Here the feature maps stay NHWC from stage to stage and each stage is two operations:
//!
//! - [`conv_nhwc`]: for 3×3 "same" convolutions on maps of at least 8×8 (the `web` preset's
//!   middle stages), Winograd F(4×4, 3×3) for the output, the input gradient (the same
//!   convolution of the output gradient with the kernel turned by 180°) and the weight gradient
//!   (the adjoint of the forward products), with the transforms of [`crate::cpu_twin`]; for one
//!   input channel, register-blocked direct loops; otherwise im2col and `gemm`. Images are split
//!   into one task per thread; every gradient is computed only when a parent asks for it;
//! - [`norm_pool_relu`]: train-mode batch norm, 2×2 max-pool and ReLU in two passes, remembering
//!   each output's winning input in one byte; backward: one pass over the outputs for the
//!   parameter gradients, one in place over the inputs for the input gradient.
//!
//! The element-wise loops are compiled twice, for baseline x86-64 and for AVX2 + FMA, and the
//! wider twin runs where the CPU has it (`wide!`).
//!
//! [`crate::model`] routes a training forward pass here when the device is autodiff over
//! `flex` and every stage has a batch norm in training mode; everything else (the dense layer,
//! the head, the losses, the optimizer) stays Burn's. Both operations are tested against
//! Burn's own, values and gradients, to 1e-4 (Winograd's rounding on sums of thousands of
//! products: a few 1e-5 relative).

use std::fmt;
use std::sync::Arc;

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::{Flex, FlexTensor};
use burn::backend::tensor::FloatTensor;
use burn::backend::{AutodiffBackend, Backend, Dispatch, TensorMetadata};
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

use crate::cpu_twin::{
    F4, F32x4, Matrix, grow, im2col_weights, matmul_on, matmul_serial, transform_2d, winograd_input,
    winograd_output, winograd_weight_values,
};

/// Whether the CPU has AVX2 and FMA (the build targets baseline x86-64, whose SSE2 halves the
/// width of the vectorised loops here).
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Defines `$wide`, the method `$name` compiled for AVX2 and FMA: `$name` is
/// `#[inline(always)]`, so its loops are compiled again inside `$wide` for the wider registers.
/// Call it through [`wide!`].
macro_rules! wide_twin {
    ($wide:ident = $name:ident(&self $(, $arg:ident: $ty:ty)*) $(-> $ret:ty)?) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        fn $wide(&self $(, $arg: $ty)*) $(-> $ret)? {
            self.$name($($arg),*)
        }
    };
}

/// `self.$name(args)`, through its [`wide_twin!`] `$wide` where the CPU has AVX2 and FMA.
macro_rules! wide {
    ($self:ident.$name:ident / $wide:ident($($arg:expr),* $(,)?)) => {{
        #[cfg(target_arch = "x86_64")]
        let result = if has_avx2() {
            // SAFETY: the CPU has the features `$wide` is compiled for (checked).
            unsafe { $self.$wide($($arg),*) }
        } else {
            $self.$name($($arg),*)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let result = $self.$name($($arg),*);
        result
    }};
}

/// The stage operations as a Burn backend extension: forward on `flex`, and on autodiff over
/// `flex` with the hand-written backward passes below.
#[burn::backend::backend_extension(Flex, Autodiff)]
pub trait StageOps: Backend {
    /// Stride-1 convolution of NHWC maps `[n, h, w, in]` with Burn's `[out, in, k, k]` weights,
    /// a bias `[out]` and `padding` zeros on every side: `[n, h', w', out]`.
    fn conv_nhwc(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        padding: usize,
    ) -> FloatTensor<Self>;

    /// Train-mode batch norm (batch statistics, biased variance), then a `pool`×`pool` max-pool
    /// (stride `pool`), then ReLU, on NHWC maps: the output and the batch's mean and variance.
    fn norm_pool_relu(
        z: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        pool: usize,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// [`StageOps::conv_nhwc`] on tensors.
pub fn conv_nhwc(x: Tensor<4>, weight: Tensor<4>, bias: Tensor<1>, padding: usize) -> Tensor<4> {
    Tensor::from_dispatch(Dispatch::conv_nhwc(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        padding,
    ))
}

/// The output of [`norm_pool_relu`].
#[derive(Debug, Clone)]
pub struct NormPoolRelu {
    /// The stage's output, NHWC.
    pub output: Tensor<4>,
    /// The batch mean of each channel (not differentiable).
    pub mean: Tensor<1>,
    /// The batch's biased variance of each channel (not differentiable).
    pub variance: Tensor<1>,
}

/// [`StageOps::norm_pool_relu`] on tensors.
pub fn norm_pool_relu(
    z: Tensor<4>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
    pool: usize,
) -> NormPoolRelu {
    let (output, mean, variance) = Dispatch::norm_pool_relu(
        z.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        epsilon,
        pool,
    );
    NormPoolRelu {
        output: Tensor::from_dispatch(output),
        mean: Tensor::from_dispatch(mean).detach(),
        variance: Tensor::from_dispatch(variance).detach(),
    }
}

impl StageOps for Flex {
    fn conv_nhwc(x: FlexTensor, weight: FlexTensor, bias: FlexTensor, padding: usize) -> FlexTensor {
        let (x, weight, bias) = (contiguous(x), contiguous(weight), contiguous(bias));
        let conv = Conv::new(&x, &weight, padding);
        tensor(conv.forward(f32s(&x), f32s(&weight), f32s(&bias)), conv.output_shape())
    }

    fn norm_pool_relu(
        z: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
        pool: usize,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let (output, mean, variance, _) = norm_pool_forward(z, gamma, beta, epsilon, pool);
        (output, mean, variance)
    }
}

impl<C: CheckpointStrategy> StageOps for Autodiff<Flex, C> {
    fn conv_nhwc(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        padding: usize,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct ConvBackward;

        impl Backward<Flex, 3> for ConvBackward {
            type State = (FlexTensor, FlexTensor, usize);

            fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
                let [node_x, node_weight, node_bias] = ops.parents;
                let grad = contiguous(grads.consume::<Flex>(&ops.node));
                let (x, weight, padding) = ops.state;
                let conv = Conv::new(&x, &weight, padding);
                let grads_out = conv.backward(f32s(&x), f32s(&weight), f32s(&grad), node_x.is_some());
                if let (Some(node), Some(dx)) = (node_x, grads_out.x) {
                    grads.register::<Flex>(node.id, tensor(dx, x.shape().to_vec()));
                }
                if let Some(node) = node_weight {
                    grads.register::<Flex>(node.id, tensor(grads_out.weight, weight.shape().to_vec()));
                }
                if let Some(node) = node_bias {
                    grads.register::<Flex>(node.id, tensor(grads_out.bias, vec![conv.cout]));
                }
            }
        }

        let prepared =
            ConvBackward.prepare::<C>([x.node(), weight.node(), bias.node()]).compute_bound().stateful();
        let (x, weight) = (contiguous(x.into_primitive()), contiguous(weight.into_primitive()));
        let output = Flex::conv_nhwc(x.clone(), weight.clone(), bias.into_primitive(), padding);
        match prepared {
            OpsKind::Tracked(prep) => prep.finish((x, weight, padding), output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        }
    }

    fn norm_pool_relu(
        z: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        pool: usize,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        #[derive(Debug)]
        struct NormPoolBackward;

        impl Backward<Flex, 3> for NormPoolBackward {
            type State = (FlexTensor, FlexTensor, Statistics, Winners, usize);

            fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
                let [node_z, node_gamma, node_beta] = ops.parents;
                let grad = contiguous(grads.consume::<Flex>(&ops.node));
                let (mut z, gamma, statistics, winners, pool) = ops.state;
                let stage = NormPool::new(&z, pool);
                let (winners, grad) = (&winners.0[..], f32s(&grad));
                let (dbeta, dgamma) = stage.parameter_grads(f32s(&z), &statistics, winners, grad);
                let narrow =
                    |sums: &[f64]| tensor(sums.iter().map(|&v| v as f32).collect(), vec![stage.channels]);
                if let Some(node) = node_gamma {
                    grads.register::<Flex>(node.id, narrow(&dgamma));
                }
                if let Some(node) = node_beta {
                    grads.register::<Flex>(node.id, narrow(&dbeta));
                }
                if let Some(node) = node_z {
                    // z's values are needed no more: its buffer becomes its gradient (copied
                    // first only if something else still holds it).
                    let values = z.storage_mut::<f32>();
                    stage.input_grad_in_place(
                        values,
                        f32s(&gamma),
                        &statistics,
                        (&dbeta, &dgamma),
                        winners,
                        grad,
                    );
                    grads.register::<Flex>(node.id, z);
                }
            }
        }

        let prepared =
            NormPoolBackward.prepare::<C>([z.node(), gamma.node(), beta.node()]).compute_bound().stateful();
        let (z, gamma) = (contiguous(z.into_primitive()), contiguous(gamma.into_primitive()));
        let (output, mean, variance, winners) =
            norm_pool_forward(z.clone(), gamma.clone(), beta.into_primitive(), epsilon, pool);
        let output = match prepared {
            OpsKind::Tracked(prep) => {
                let statistics = Statistics::new(f32s(&mean).to_vec(), f32s(&variance), epsilon);
                prep.finish((z, gamma, statistics, Winners(Arc::new(winners)), pool), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(output),
        };
        (output, Self::from_inner(mean), Self::from_inner(variance))
    }
}

/// [`StageOps::norm_pool_relu`] on `flex` tensors, for both implementations: the output, mean
/// and variance as tensors, and each output's winning input (for the backward pass).
fn norm_pool_forward(
    z: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    epsilon: f64,
    pool: usize,
) -> (FlexTensor, FlexTensor, FlexTensor, Vec<u8>) {
    let (z, gamma, beta) = (contiguous(z), contiguous(gamma), contiguous(beta));
    let stage = NormPool::new(&z, pool);
    let forward = stage.forward(f32s(&z), f32s(&gamma), f32s(&beta), epsilon);
    let channels = vec![stage.channels];
    (
        tensor(forward.output, stage.output_shape()),
        tensor(forward.mean, channels.clone()),
        tensor(forward.variance, channels),
        forward.winners,
    )
}

/// The tensor with its values in one contiguous run (no copy when they already are).
fn contiguous(tensor: FlexTensor) -> FlexTensor {
    tensor.to_contiguous()
}

/// The `f32` values of a contiguous tensor.
///
/// # Panics
/// If the tensor does not hold `f32` (the model trains in `f32`) or is not contiguous.
fn f32s(tensor: &FlexTensor) -> &[f32] {
    tensor.as_slice::<f32>().expect("a contiguous f32 tensor")
}

/// A tensor from values.
fn tensor(values: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// A stride-1 convolution's shapes, NHWC.
#[derive(Debug, Clone, Copy)]
struct Conv {
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
struct ConvGrads {
    /// NHWC like the input; `None` when not asked for.
    x: Option<Vec<f32>>,
    /// `[out, in, k, k]`.
    weight: Vec<f32>,
    /// `[out]`.
    bias: Vec<f32>,
}

/// Output channels per register block of the one-input-channel kernels: two AVX registers.
const BLOCK: usize = 16;

/// Values per im2col buffer, about 4 MiB: large products for `gemm`, a buffer that stays in
/// the last-level cache.
const COLUMNS_PER_GROUP: usize = 1 << 20;

impl Conv {
    wide_twin!(direct_forward_wide = direct_forward(&self, images: &[f32], weights: &[f32], bias: &[f32], output: &mut [f32]));
    wide_twin!(direct_weight_grad_wide = direct_weight_grad(&self, images: &[f32], grad: &[f32]) -> Vec<f32>);

    /// The convolution of `x` `[n, h, w, in]` with `weight` `[out, in, k, k]`.
    ///
    /// # Panics
    /// If the shapes do not fit together or the kernel is larger than the padded input.
    fn new(x: &FlexTensor, weight: &FlexTensor, padding: usize) -> Self {
        let [images, height, width, cin] = x.shape().dims::<4>();
        let [cout, weight_cin, kernel, kernel_x] = weight.shape().dims::<4>();
        assert!(
            weight_cin == cin && kernel == kernel_x,
            "conv_nhwc: weight {:?} for input {:?}",
            weight.shape(),
            x.shape()
        );
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

    fn output_shape(&self) -> Vec<usize> {
        vec![self.images, self.out_height, self.out_width, self.cout]
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
    fn forward(&self, x: &[f32], weight: &[f32], bias: &[f32]) -> Vec<f32> {
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
                if self.cin == 1 {
                    return wide!(self.direct_forward / direct_forward_wide(images, &weights, bias, output));
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
        let transformed = winograd_weight_values::<4, 6, F4>(weight, self.cin, self.cout);
        let mut output = vec![0.0; self.images * self.pixels() * self.cout];
        let group = self.images.div_ceil(rayon::current_num_threads()).max(1);
        output
            .par_chunks_mut(group * self.pixels() * self.cout)
            .zip(x.par_chunks(group * self.image_len()))
            .for_each(|(output, images)| {
                {
                    winograd_3x3(
                        images,
                        self.height,
                        self.width,
                        self.cin,
                        self.cout,
                        &transformed,
                        bias,
                        output,
                    )
                }
            });
        output
    }

    /// The gradients for the output gradient `grad` (NHWC); the input's only `with_x`. Each
    /// group of images is one task; the weight and bias gradients are summed over the tasks.
    ///
    /// Where [`Conv::winograd`] holds, both are Winograd F(4×4, 3×3) too: the input gradient of
    /// a 3×3 "same" convolution is the "same" convolution of the output gradient with the kernel
    /// turned by 180° and in/out swapped, and the weight gradient is the adjoint of the forward
    /// products (see [`winograd_weight_partial`]). Otherwise im2col, or for one input channel
    /// the direct loops.
    fn backward(&self, x: &[f32], weight: &[f32], grad: &[f32], with_x: bool) -> ConvGrads {
        let (winograd, cout, image_len) = (self.winograd(), self.cout, self.image_len());
        let weights = im2col_weights(weight, self.cin, cout, self.kernel);
        let flipped = match with_x && winograd {
            true => winograd_weight_values::<4, 6, F4>(
                &rotated_transposed(weight, cout, self.cin),
                cout,
                self.cin,
            ),
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
                let partial = match (winograd, self.cin) {
                    (true, _) => {
                        winograd_weight_partial(images, grad, self.height, self.width, self.cin, cout)
                    }
                    (false, 1) => wide!(self.direct_weight_grad / direct_weight_grad_wide(images, grad)),
                    (false, _) => self.im2col_weight_grad(images, grad),
                };
                match (with_x, winograd) {
                    (true, true) => {
                        let zeros = vec![0.0; self.cin];
                        winograd_3x3(grad, self.height, self.width, cout, self.cin, &flipped, &zeros, dx);
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

/// A 3×3 "same" convolution of NHWC `images` (sides multiples of 4, channels multiples of 4)
/// by Winograd F(4×4, 3×3) with `transformed` weights (from `winograd_weight_values`), plus
/// `bias`, into `output` (NHWC), on this thread.
#[allow(clippy::too_many_arguments)]
fn winograd_3x3(
    images: &[f32],
    height: usize,
    width: usize,
    cin: usize,
    cout: usize,
    transformed: &[f32],
    bias: &[f32],
    output: &mut [f32],
) {
    let (tiles_y, tiles_x) = (height / 4, width / 4);
    let n = images.len() / (height * width * cin) * tiles_y * tiles_x;
    with_scratch(36 * n * cin, 36 * n * cout, |tiles, products| {
        winograd_input::<4, 6, F4>(images, height, width, cin, tiles);
        // One product per transform position ξ: rows of every tile's values at ξ.
        for (xi, weight) in transformed.chunks_exact(cin * cout).enumerate() {
            let tiles = Matrix::strided(&tiles[xi * cin..], n, cin, 36 * cin);
            matmul_on(tiles, Matrix::rows(weight, cout), &mut products[xi * cout..], 36 * cout, false, false);
        }
        winograd_output::<4, 6, F4>(products, n, cout, |t, o, block| {
            let (b, y, x) = (t / (tiles_y * tiles_x), t / tiles_x % tiles_y, t % tiles_x);
            let bias = F32x4::load(&bias[o..]);
            for (a, row) in block.iter().enumerate() {
                for (e, value) in row.iter().enumerate() {
                    let at = ((b * height + 4 * y + a) * width + 4 * x + e) * cout + o;
                    value.add(bias).store(&mut output[at..]);
                }
            }
        });
    });
}

/// A group of images' share of a 3×3 "same" convolution's weight gradient in the Winograd
/// domain, `[36, in, out]`. The forward pass computes `Y = Aᵀ [U ⊙ V] A` per tile from the
/// transformed weights U and input tiles V, so `dU[ξ] = Σ_tiles V[ξ]ᵀ · (A dY Aᵀ)[ξ]`: the input
/// transform as in the forward pass, the adjoint output transform of each tile's 4×4 block of
/// the output gradient, and 36 products `[in, tiles] · [tiles, out]` (a quarter of im2col's
/// multiplications).
fn winograd_weight_partial(
    images: &[f32],
    grad: &[f32],
    height: usize,
    width: usize,
    cin: usize,
    cout: usize,
) -> Vec<f32> {
    let (tiles_y, tiles_x) = (height / 4, width / 4);
    let n = images.len() / (height * width * cin) * tiles_y * tiles_x;
    let mut partial = vec![0.0; 36 * cin * cout];
    with_scratch(36 * n * cin, 36 * n * cout, |tiles, grad_tiles| {
        winograd_input::<4, 6, F4>(images, height, width, cin, tiles);
        for t in 0..n {
            let tile = &mut grad_tiles[t * 36 * cout..(t + 1) * 36 * cout];
            let (b, y, x) = (t / (tiles_y * tiles_x), t / tiles_x % tiles_y, t % tiles_x);
            for o in (0..cout).step_by(4) {
                let block: [[F32x4; 4]; 4] = std::array::from_fn(|a| {
                    std::array::from_fn(|e| {
                        F32x4::load(&grad[((b * height + 4 * y + a) * width + 4 * x + e) * cout + o..])
                    })
                });
                let transformed = transform_2d(block, F4::output_adjoint);
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
    });
    partial
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

/// Runs `work` on this thread's scratch buffers, `first` and `second` long (old values left in
/// them).
fn with_scratch<R>(first: usize, second: usize, work: impl FnOnce(&mut [f32], &mut [f32]) -> R) -> R {
    SCRATCH.with_borrow_mut(|[a, b]| {
        grow(a, first);
        grow(b, second);
        work(&mut a[..first], &mut b[..second])
    })
}

/// Runs `work` on this thread's first scratch buffer, `len` long.
fn with_columns<R>(len: usize, work: impl FnOnce(&mut [f32]) -> R) -> R {
    with_scratch(len, 0, |columns, _| work(columns))
}

/// Per-channel batch statistics kept for the backward pass.
#[derive(Debug, Clone)]
struct Statistics {
    mean: Vec<f32>,
    /// `1 / √(variance + ε)`.
    inv_std: Vec<f32>,
}

impl Statistics {
    fn new(mean: Vec<f32>, variance: &[f32], epsilon: f64) -> Self {
        let inv_std = variance.iter().map(|&v| (1.0 / (v as f64 + epsilon).sqrt()) as f32).collect();
        Self { mean, inv_std }
    }
}

/// For each pooled output value, which input of its window won (`0..pool²`), or [`CLIPPED`]
/// where ReLU zeroed it (no gradient flows).
#[derive(Clone)]
struct Winners(Arc<Vec<u8>>);

impl fmt::Debug for Winners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Winners({} outputs)", self.0.len())
    }
}

/// See [`Winners`].
const CLIPPED: u8 = u8::MAX;

/// Train-mode batch norm → max-pool → ReLU on NHWC maps.
#[derive(Debug, Clone, Copy)]
struct NormPool {
    images: usize,
    height: usize,
    width: usize,
    channels: usize,
    pool: usize,
}

/// What [`NormPool::forward`] computes.
struct NormPoolForward {
    output: Vec<f32>,
    mean: Vec<f32>,
    variance: Vec<f32>,
    winners: Vec<u8>,
}

impl NormPool {
    wide_twin!(image_sums_wide = image_sums(&self, image: &[f32], shift: &[f32]) -> (Vec<f64>, Vec<f64>));
    wide_twin!(pool_image_wide = pool_image(&self, image: &[f32], scale: &[f32], shift: &[f32], output: &mut [f32], winners: &mut [u8]));
    wide_twin!(image_parameter_grads_wide = image_parameter_grads(&self, image: &[f32], statistics: &Statistics, winners: &[u8], grad: &[f32]) -> (Vec<f64>, Vec<f64>));
    wide_twin!(image_input_grad_wide = image_input_grad(&self, image: &mut [f32], a: &[f32], b: &[f32], direct: &[f32], winners: &[u8], grad: &[f32]));

    /// # Panics
    /// If `pool` is 0 or larger than 15 (a window's index must fit in a byte).
    fn new(z: &FlexTensor, pool: usize) -> Self {
        let [images, height, width, channels] = z.shape().dims::<4>();
        assert!((1..16).contains(&pool), "norm_pool_relu: pool {pool}");
        Self { images, height, width, channels, pool }
    }

    fn output_shape(&self) -> Vec<usize> {
        vec![self.images, self.height / self.pool, self.width / self.pool, self.channels]
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
            .map(|image| wide!(self.image_sums / image_sums_wide(image, shift)))
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

    fn forward(&self, z: &[f32], gamma: &[f32], beta: &[f32], epsilon: f64) -> NormPoolForward {
        let (mean, variance) = self.statistics(z);
        let scale: Vec<f32> =
            gamma.iter().zip(&variance).map(|(&g, &v)| (g as f64 / (v + epsilon).sqrt()) as f32).collect();
        let shift: Vec<f32> = beta
            .iter()
            .zip(&mean)
            .zip(&scale)
            .map(|((&b, &m), &s)| (b as f64 - m * s as f64) as f32)
            .collect();
        let mut output = vec![0.0; self.images * self.output_len()];
        let mut winners = vec![CLIPPED; output.len()];
        output
            .par_chunks_mut(self.output_len())
            .zip(winners.par_chunks_mut(self.output_len()))
            .zip(z.par_chunks(self.image_len()))
            .for_each(|((output, winners), image)| {
                wide!(self.pool_image / pool_image_wide(image, &scale, &shift, output, winners))
            });
        NormPoolForward {
            output,
            mean: mean.iter().map(|&m| m as f32).collect(),
            variance: variance.iter().map(|&v| v as f32).collect(),
            winners,
        }
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
    fn parameter_grads(
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
                wide!(
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
    fn input_grad_in_place(
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
                wide!(self.image_input_grad / image_input_grad_wide(image, &a, &b, &direct, winners, grad))
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

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::pool::MaxPool2dConfig;
    use burn::tensor::activation::relu;
    use burn::tensor::module::{batch_norm_train, conv2d};
    use burn::tensor::ops::ConvOptions;
    use burn::tensor::{Device, Distribution, Tolerance};

    fn device() -> Device {
        let device = Device::flex();
        device.seed(7);
        device.autodiff()
    }

    fn random<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), device).require_grad()
    }

    fn nchw(x: Tensor<4>) -> Tensor<4> {
        x.permute([0, 3, 1, 2])
    }

    fn nhwc(x: Tensor<4>) -> Tensor<4> {
        x.permute([0, 2, 3, 1])
    }

    fn assert_close<const D: usize>(what: &str, got: Tensor<D>, expected: Tensor<D>, tolerance: f32) {
        assert_eq!(got.dims(), expected.dims(), "{what}: shape");
        println!("{what}");
        got.into_data().assert_approx_eq::<f32>(&expected.into_data(), Tolerance::rel_abs(1e-4, tolerance));
    }

    /// Values and all three gradients against Burn's NCHW convolution, under a random upstream
    /// gradient.
    fn assert_conv_matches_burn(x: [usize; 4], cout: usize, kernel: usize, padding: usize, tolerance: f32) {
        let device = device();
        let cin = x[3];
        let x = random(x, &device);
        let weight = random([cout, cin, kernel, kernel], &device);
        let bias = random([cout], &device);
        let ours = conv_nhwc(x.clone(), weight.clone(), bias.clone(), padding);
        let options = ConvOptions::new([1, 1], [padding, padding], [1, 1], 1);
        let theirs = nhwc(conv2d(nchw(x.clone()), weight.clone(), Some(bias.clone()), options));
        let upstream = Tensor::random(theirs.dims(), Distribution::Normal(0.0, 1.0), &device);
        let ours_grads = (ours.clone() * upstream.clone()).sum().backward();
        let theirs_grads = (theirs.clone() * upstream).sum().backward();
        assert_close("output", ours, theirs, tolerance);
        assert_close("x grad", x.grad(&ours_grads).unwrap(), x.grad(&theirs_grads).unwrap(), tolerance);
        let weight_grads = (weight.grad(&ours_grads).unwrap(), weight.grad(&theirs_grads).unwrap());
        assert_close("weight grad", weight_grads.0, weight_grads.1, tolerance);
        assert_close(
            "bias grad",
            bias.grad(&ours_grads).unwrap(),
            bias.grad(&theirs_grads).unwrap(),
            tolerance,
        );
    }

    #[test]
    fn same_convolution_matches_burn() {
        assert_conv_matches_burn([3, 7, 6, 4], 5, 3, 1, 1e-4);
    }

    #[test]
    fn one_input_channel_in_blocks_matches_burn() {
        // 20 output channels: one register block and four more; 35 pixels: eight groups of four
        // and three more.
        assert_conv_matches_burn([3, 7, 5, 1], 20, 3, 1, 1e-4);
    }

    #[test]
    fn valid_convolution_with_one_input_channel_matches_burn() {
        assert_conv_matches_burn([2, 9, 8, 1], 6, 4, 0, 1e-4);
    }

    #[test]
    fn winograd_convolution_matches_burn() {
        // F(4×4, 3×3)'s transforms cost a few bits: 2e-4 on values of N(0, 1) inputs and weights.
        assert_conv_matches_burn([3, 8, 12, 8], 12, 3, 1, 2e-4);
    }

    #[test]
    fn im2col_in_several_groups_matches_burn() {
        // Six input channels: not Winograd. 40 images make more than one task; the weight
        // gradient sums 10,240 products of N(0, 1) values per entry, so two summation orders
        // differ by ~1e-4.
        assert_conv_matches_burn([40, 16, 16, 6], 8, 3, 1, 1e-3);
    }

    #[test]
    fn small_maps_use_im2col_and_match_burn() {
        assert_conv_matches_burn([5, 4, 4, 8], 8, 3, 1, 1e-4);
    }

    #[test]
    fn winograd_in_several_groups_matches_burn() {
        // The weight gradient sums 10,240 products of N(0, 1) values per entry: partial sums
        // reach ±100, and F(4×4, 3×3)'s rounding shows at a few 1e-5 of that (5e-3 = 5e-5).
        assert_conv_matches_burn([40, 16, 16, 16], 8, 3, 1, 5e-3);
    }

    /// Values, statistics and gradients against Burn's batch norm, max-pool and ReLU.
    fn assert_norm_pool_relu_matches_burn(z: [usize; 4], pool: usize) {
        let device = device();
        let channels = z[3];
        // Offsets and scales per channel, so the statistics have work to do.
        let z = (Tensor::<4>::random(z, Distribution::Normal(0.0, 1.0), &device) * 3.0 + 1.5)
            .detach()
            .require_grad();
        let gamma = random([channels], &device);
        let beta = random([channels], &device);
        let ours = norm_pool_relu(z.clone(), gamma.clone(), beta.clone(), 1e-5, pool);
        let reference = batch_norm_train(nchw(z.clone()), gamma.clone(), beta.clone(), 1e-5);
        let pooled = match pool {
            1 => reference.output,
            _ => MaxPool2dConfig::new([pool, pool]).init().forward(reference.output),
        };
        let theirs = nhwc(relu(pooled));
        let upstream = Tensor::random(theirs.dims(), Distribution::Normal(0.0, 1.0), &device);
        let ours_grads = (ours.output.clone() * upstream.clone()).sum().backward();
        let theirs_grads = (theirs.clone() * upstream).sum().backward();
        assert_close("output", ours.output, theirs, 1e-4);
        assert_close("mean", ours.mean, reference.mean, 1e-4);
        assert_close("variance", ours.variance, reference.variance, 1e-4);
        assert_close("z grad", z.grad(&ours_grads).unwrap(), z.grad(&theirs_grads).unwrap(), 1e-4);
        let gamma_grads = (gamma.grad(&ours_grads).unwrap(), gamma.grad(&theirs_grads).unwrap());
        assert_close("gamma grad", gamma_grads.0, gamma_grads.1, 1e-4);
        assert_close("beta grad", beta.grad(&ours_grads).unwrap(), beta.grad(&theirs_grads).unwrap(), 1e-4);
    }

    #[test]
    fn norm_pool_relu_matches_burn() {
        assert_norm_pool_relu_matches_burn([4, 6, 8, 5], 2);
    }

    #[test]
    fn norm_pool_relu_with_odd_sides_and_no_pool_matches_burn() {
        assert_norm_pool_relu_matches_burn([3, 7, 5, 3], 2);
        assert_norm_pool_relu_matches_burn([3, 5, 4, 6], 1);
    }

    #[test]
    fn untracked_inputs_get_no_gradient() {
        let device = device();
        let x = Tensor::<4>::random([2, 5, 5, 1], Distribution::Normal(0.0, 1.0), &device);
        let weight = random([3, 1, 3, 3], &device);
        let bias = Tensor::<1>::zeros([3], &device);
        let grads = conv_nhwc(x.clone(), weight.clone(), bias, 1).sum().backward();
        assert!(weight.grad(&grads).is_some());
        assert!(x.grad(&grads).is_none());
    }
}
