//! The training kernels of `oneshot_kernels::training` plugged into Burn's autodiff as a backend
//! extension (native): the twin's convolutional stages with their own backward passes.
//!
//! On Burn's `flex` backend a training step of the `web` network spent most of its time outside
//! the arithmetic: every convolution converts NCHW to NHWC and back, and train-mode batch norm,
//! max-pool and ReLU are a dozen separate passes over the largest maps (with their own backward
//! passes). Here the feature maps stay NHWC from stage to stage and each stage is two operations:
//!
//! - [`conv_nhwc`]: for 3×3 "same" convolutions on maps of at least 8×8 (the `web` preset's
//!   middle stages), Winograd F(4×4, 3×3) for the output, the input gradient (the same
//!   convolution of the output gradient with the kernel turned by 180°) and the weight gradient
//!   (the adjoint of the forward products); for one
//!   input channel, register-blocked direct loops; otherwise im2col and `gemm`. Images are split
//!   into one task per thread; every gradient is computed only when a parent asks for it;
//! - [`norm_pool_relu`]: train-mode batch norm, 2×2 max-pool and ReLU in two passes, remembering
//!   each output's winning input in one byte; backward: one pass over the outputs for the
//!   parameter gradients, one in place over the inputs for the input gradient.
//!
//! The twin routes a training forward pass here when the device is autodiff over
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
use burn::nn::PaddingConfig2d;
use burn::tensor::{Device, Tensor, TensorData};

use oneshot_kernels::training::{Conv, NormPool, Statistics};

use crate::network::ConvStage;

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

    /// A fixed affine map per channel, `scale · z + shift` (constants, `[channels]`: a frozen
    /// batch norm, or 1 and 0 for none), then a `pool`×`pool` max-pool and ReLU, on NHWC maps;
    /// only `z` gets a gradient.
    fn affine_pool_relu(
        z: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        pool: usize,
    ) -> FloatTensor<Self>;
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

/// [`StageOps::affine_pool_relu`] on tensors (`scale` and `shift` are taken as constants).
pub fn affine_pool_relu(z: Tensor<4>, scale: Tensor<1>, shift: Tensor<1>, pool: usize) -> Tensor<4> {
    Tensor::from_dispatch(Dispatch::affine_pool_relu(
        z.into_dispatch(),
        scale.detach().into_dispatch(),
        shift.detach().into_dispatch(),
        pool,
    ))
}

impl StageOps for Flex {
    fn conv_nhwc(x: FlexTensor, weight: FlexTensor, bias: FlexTensor, padding: usize) -> FlexTensor {
        let (x, weight, bias) = (contiguous(x), contiguous(weight), contiguous(bias));
        let conv = Conv::new(dims(&x), dims(&weight), padding);
        tensor(conv.forward(f32s(&x), f32s(&weight), f32s(&bias)), conv.output_shape().to_vec())
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

    fn affine_pool_relu(z: FlexTensor, scale: FlexTensor, shift: FlexTensor, pool: usize) -> FlexTensor {
        affine_pool_forward(z, scale, shift, pool).0
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
                let conv = Conv::new(dims(&x), dims(&weight), padding);
                let grads_out = conv.backward(f32s(&x), f32s(&weight), f32s(&grad), node_x.is_some());
                if let (Some(node), Some(dx)) = (node_x, grads_out.x) {
                    grads.register::<Flex>(node.id, tensor(dx, x.shape().to_vec()));
                }
                if let Some(node) = node_weight {
                    grads.register::<Flex>(node.id, tensor(grads_out.weight, weight.shape().to_vec()));
                }
                if let Some(node) = node_bias {
                    grads.register::<Flex>(node.id, tensor(grads_out.bias, vec![conv.out_channels()]));
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
                let stage = NormPool::new(dims(&z), pool);
                let (winners, grad) = (&winners.0[..], f32s(&grad));
                let (dbeta, dgamma) = stage.parameter_grads(f32s(&z), &statistics, winners, grad);
                let narrow =
                    |sums: &[f64]| tensor(sums.iter().map(|&v| v as f32).collect(), vec![stage.channels()]);
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

    fn affine_pool_relu(
        z: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        pool: usize,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct AffinePoolBackward;

        impl Backward<Flex, 1> for AffinePoolBackward {
            type State = ([usize; 4], FlexTensor, Winners, usize);

            fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
                let [node_z] = ops.parents;
                let grad = contiguous(grads.consume::<Flex>(&ops.node));
                let (shape, scale, winners, pool) = ops.state;
                if let Some(node) = node_z {
                    let dz =
                        NormPool::new(shape, pool).affine_input_grad(f32s(&scale), &winners.0, f32s(&grad));
                    grads.register::<Flex>(node.id, tensor(dz, shape.to_vec()));
                }
            }
        }

        let prepared = AffinePoolBackward.prepare::<C>([z.node()]).compute_bound().stateful();
        let z = contiguous(z.into_primitive());
        let shape = dims(&z);
        let scale = contiguous(scale.into_primitive());
        let (output, winners) = affine_pool_forward(z, scale.clone(), shift.into_primitive(), pool);
        match prepared {
            OpsKind::Tracked(prep) => prep.finish((shape, scale, Winners(Arc::new(winners)), pool), output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        }
    }
}

/// [`StageOps::affine_pool_relu`] on `flex` tensors, for both implementations: the output and
/// each output's winning input.
fn affine_pool_forward(
    z: FlexTensor,
    scale: FlexTensor,
    shift: FlexTensor,
    pool: usize,
) -> (FlexTensor, Vec<u8>) {
    let (z, scale, shift) = (contiguous(z), contiguous(scale), contiguous(shift));
    let stage = NormPool::new(dims(&z), pool);
    let (output, winners) = stage.forward_affine(f32s(&z), f32s(&scale), f32s(&shift));
    (tensor(output, stage.output_shape().to_vec()), winners)
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
    let stage = NormPool::new(dims(&z), pool);
    let forward = stage.forward(f32s(&z), f32s(&gamma), f32s(&beta), epsilon);
    let channels = vec![stage.channels()];
    (
        tensor(forward.output, stage.output_shape().to_vec()),
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

/// The shape of a 4-D tensor.
fn dims(tensor: &FlexTensor) -> [usize; 4] {
    tensor.shape().dims::<4>()
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

/// Whether a forward pass of `stages` on `images` is a training pass these kernels can run:
/// autodiff over `flex`, one input channel, f32, and a batch norm in training mode after every
/// convolution (Burn's path keeps everything else, e.g. frozen norms when fine-tuning).
pub(crate) fn applies(stages: &[ConvStage], images: &Tensor<4>) -> bool {
    let device = images.device();
    // (Device equality ignores autodiff, hence both checks.)
    device.is_autodiff()
        && device == Device::flex()
        && images.dims()[1] == 1
        && images.dtype() == burn::tensor::DType::F32
        && stages.iter().all(|stage| match &stage.norm {
            // Training mode, or frozen with constant parameters (fine-tuning), or none (Koch).
            Some(norm) => {
                norm.training.is_enabled()
                    || !norm.gamma.val().is_require_grad() && !norm.beta.val().is_require_grad()
            }
            None => true,
        })
}

/// The stages' training forward pass on NCHW `images` with one channel: the same function as
/// Burn's, running statistics included, with the maps NHWC in between.
pub(crate) fn features(stages: &[ConvStage], images: Tensor<4>) -> Tensor<4> {
    // One input channel: NCHW and NHWC are the same values.
    let [n, _, height, width] = images.dims();
    let x = stages.iter().fold(images.reshape([n, height, width, 1]), |x, stage| stage_forward(stage, x));
    x.permute([0, 3, 1, 2])
}

/// One stage's training forward pass on NHWC maps.
fn stage_forward(stage: &ConvStage, x: Tensor<4>) -> Tensor<4> {
    let [channels, _, kernel, _] = stage.conv.weight.dims();
    let bias =
        stage.conv.bias.as_ref().map_or_else(|| Tensor::zeros([channels], &x.device()), |bias| bias.val());
    // `Same` padding for odd kernels, `Valid` otherwise (the only two the presets use).
    let padding = if matches!(stage.conv.padding, PaddingConfig2d::Same) { (kernel - 1) / 2 } else { 0 };
    let z = conv_nhwc(x, stage.conv.weight.val(), bias, padding);
    let pool = if stage.pool.is_some() { 2 } else { 1 };
    let norm = match &stage.norm {
        Some(norm) if norm.training.is_enabled() => norm,
        // A frozen batch norm is the affine map γ (z − μ) / √(σ² + ε) + β of its running
        // statistics.
        Some(norm) => {
            let scale = norm.gamma.val().div(norm.running_var.value().add_scalar(norm.epsilon).sqrt());
            let shift = norm.beta.val().sub(norm.running_mean.value().mul(scale.clone()));
            return affine_pool_relu(z, scale, shift, pool);
        }
        None => {
            let device = z.device();
            return affine_pool_relu(
                z,
                Tensor::ones([channels], &device),
                Tensor::zeros([channels], &device),
                pool,
            );
        }
    };
    let stage = norm_pool_relu(z, norm.gamma.val(), norm.beta.val(), norm.epsilon, pool);
    // The running statistics as `BatchNorm::forward` updates them in training mode.
    let blend = |running: Tensor<1>, batch: Tensor<1>| {
        running.mul_scalar(1.0 - norm.momentum).add(batch.mul_scalar(norm.momentum)).detach()
    };
    norm.running_mean.update(blend(norm.running_mean.value_sync(), stage.mean));
    norm.running_var.update(blend(norm.running_var.value_sync(), stage.variance));
    stage.output
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
    fn large_kernel_on_one_channel_uses_im2col_and_matches_burn() {
        // 7×7 on one channel: 49 taps, past the direct loops (Koch et al.'s first stage is 10×10).
        assert_conv_matches_burn([3, 12, 11, 1], 6, 7, 0, 1e-4);
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

    /// Values and the input gradient of a fixed affine map, max-pool and ReLU against Burn's.
    fn assert_affine_pool_relu_matches_burn(z: [usize; 4], pool: usize) {
        let device = device();
        let channels = z[3];
        let z = random(z, &device);
        // Some negative scales: the map must come before the pooling.
        let scale = Tensor::<1>::random([channels], Distribution::Normal(0.0, 1.0), &device);
        let shift = Tensor::<1>::random([channels], Distribution::Normal(0.0, 1.0), &device);
        let ours = affine_pool_relu(z.clone(), scale.clone(), shift.clone(), pool);
        let mapped = z.clone() * scale.reshape([1, 1, 1, channels]) + shift.reshape([1, 1, 1, channels]);
        let pooled = match pool {
            1 => nchw(mapped),
            _ => MaxPool2dConfig::new([pool, pool]).init().forward(nchw(mapped)),
        };
        let theirs = nhwc(relu(pooled));
        let upstream = Tensor::random(theirs.dims(), Distribution::Normal(0.0, 1.0), &device);
        let ours_grads = (ours.clone() * upstream.clone()).sum().backward();
        let theirs_grads = (theirs.clone() * upstream).sum().backward();
        assert_close("output", ours, theirs, 1e-5);
        assert_close("z grad", z.grad(&ours_grads).unwrap(), z.grad(&theirs_grads).unwrap(), 1e-5);
    }

    #[test]
    fn affine_pool_relu_matches_burn() {
        assert_affine_pool_relu_matches_burn([3, 8, 6, 5], 2);
        assert_affine_pool_relu_matches_burn([2, 7, 5, 3], 2);
        assert_affine_pool_relu_matches_burn([2, 5, 4, 6], 1);
    }

    /// The twin's training pass through the kernels against Burn's own modules, for frozen batch
    /// norms (fine-tuning) and for a network without any (Koch et al.'s): the same features and
    /// the same gradients of every convolution's weights.
    #[test]
    fn frozen_and_missing_norms_train_as_burn_does() {
        use crate::build::BuildNetwork;
        use oneshot_core::architecture::{ConvStageConfig, Preset};
        for batch_norm in [true, false] {
            let device = device();
            let stages = vec![
                ConvStageConfig::new(4, 3, true, true),
                ConvStageConfig::new(6, 3, true, true),
                ConvStageConfig::new(5, 4, false, false),
            ];
            let config = Preset::Web.config();
            let config = oneshot_core::architecture::SiameseConfig {
                input_size: 16,
                stages,
                embedding: 8,
                batch_norm,
                ..config
            };
            let model = config.init(&device);
            let model = if batch_norm { model.freeze_norms() } else { model };
            let images = Tensor::<4>::random([3, 1, 16, 16], Distribution::Normal(0.0, 1.0), &device);
            let stages = &model.twin.stages;
            assert!(applies(stages, &images), "the kernels must take this pass");
            let ours = features(stages, images.clone());
            let theirs = stages.iter().fold(images, |x, stage| stage.forward(x));
            let upstream = Tensor::random(theirs.dims(), Distribution::Normal(0.0, 1.0), &device);
            let ours_grads = (ours.clone() * upstream.clone()).sum().backward();
            let theirs_grads = (theirs.clone() * upstream).sum().backward();
            assert_close("features", ours, theirs, 1e-4);
            for stage in stages {
                let weight = stage.conv.weight.val();
                assert_close(
                    "weight grad",
                    weight.grad(&ours_grads).unwrap(),
                    weight.grad(&theirs_grads).unwrap(),
                    1e-4,
                );
            }
        }
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
