//! The convolutional Siamese network of Koch, Zemel & Salakhutdinov (2015).
//!
//! A twin (convolutions → dense embedding) embeds each image; the head weighs the absolute
//! difference of two embeddings, `logit = w · |h₁ − h₂| + b`, and a sigmoid turns it into the
//! probability that both images show the same character. The layer list comes from a
//! [`SiameseConfig`]: [`Preset::Koch`] is the paper's network, [`Preset::Web`] a compact one for
//! the page.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Distribution, Tensor};
use serde::{Deserialize, Serialize};

use crate::cpu_twin::{ConvValues, DenseValues};

/// One convolutional stage of the twin: conv → (batch norm) → ReLU → (2×2 max-pool).
#[derive(Config, Debug, PartialEq)]
pub struct ConvStageConfig {
    /// Output channels.
    pub channels: usize,
    /// Square kernel size.
    pub kernel: usize,
    /// Pad so the output keeps the input's size (otherwise no padding, as in Koch et al.).
    pub same_padding: bool,
    /// Follow with a 2×2 max-pool.
    pub pool: bool,
}

/// How the weights start out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InitScheme {
    /// Koch et al.: conv weights N(0, 0.01), dense weights N(0, 0.2), biases N(0.5, 0.01).
    Koch,
    /// Burn's defaults (Kaiming uniform), which suit batch-normalised networks.
    Kaiming,
}

/// The named architectures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(clap::ValueEnum))]
pub enum Preset {
    /// Koch et al.'s network on 105×105 input: 38,951,745 parameters.
    Koch,
    /// A compact network for the page: 32×32 input, four 3×3 conv stages with batch norm.
    Web,
}

impl Preset {
    /// The architecture this preset names.
    pub fn config(self) -> SiameseConfig {
        match self {
            Preset::Koch => SiameseConfig {
                preset: self,
                input_size: 105,
                stages: vec![
                    ConvStageConfig::new(64, 10, false, true),
                    ConvStageConfig::new(128, 7, false, true),
                    ConvStageConfig::new(128, 4, false, true),
                    ConvStageConfig::new(256, 4, false, false),
                ],
                batch_norm: false,
                embedding: 4096,
                sigmoid_embedding: true,
                init: InitScheme::Koch,
            },
            Preset::Web => SiameseConfig {
                preset: self,
                input_size: 32,
                stages: vec![
                    ConvStageConfig::new(64, 3, true, true),
                    ConvStageConfig::new(64, 3, true, true),
                    ConvStageConfig::new(128, 3, true, true),
                    ConvStageConfig::new(128, 3, true, true),
                ],
                batch_norm: true,
                embedding: 256,
                sigmoid_embedding: true,
                init: InitScheme::Kaiming,
            },
        }
    }

    /// The preset's name as the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Koch => "koch",
            Preset::Web => "web",
        }
    }
}

/// The whole architecture: twin layers, embedding and head.
#[derive(Config, Debug, PartialEq)]
pub struct SiameseConfig {
    /// Which preset this is (or was derived from).
    pub preset: Preset,
    /// Side of the square input, in pixels.
    pub input_size: usize,
    /// The convolutional stages, in order.
    pub stages: Vec<ConvStageConfig>,
    /// Batch-normalise after every convolution.
    pub batch_norm: bool,
    /// Width of the embedding (the dense layer after the convolutions).
    pub embedding: usize,
    /// Squash the embedding with a sigmoid, as Koch et al. do.
    pub sigmoid_embedding: bool,
    /// Initialisation.
    pub init: InitScheme,
}

impl SiameseConfig {
    /// Side of the last feature map, or `None` if the stages shrink the input to nothing.
    pub fn feature_size(&self) -> Option<usize> {
        self.stages.iter().try_fold(self.input_size, |size, stage| {
            let size = if stage.same_padding { size } else { size.checked_sub(stage.kernel - 1)? };
            let size = if stage.pool { size / 2 } else { size };
            (size > 0).then_some(size)
        })
    }

    /// Builds the network with fresh weights on `device`.
    ///
    /// # Panics
    /// If the stages shrink the input to nothing (a programming error in a preset).
    pub fn init(&self, device: &Device) -> Siamese {
        let feature = self.feature_size().expect("the stages shrink the input to nothing");
        let (conv_init, dense_init) = match self.init {
            InitScheme::Koch => {
                (Initializer::Normal { mean: 0.0, std: 0.01 }, Initializer::Normal { mean: 0.0, std: 0.2 })
            }
            InitScheme::Kaiming => {
                (Conv2dConfig::new([1, 1], [1, 1]).initializer, LinearConfig::new(1, 1).initializer)
            }
        };
        let mut in_channels = 1;
        let mut stages = Vec::with_capacity(self.stages.len());
        for stage in &self.stages {
            let padding = if stage.same_padding { PaddingConfig2d::Same } else { PaddingConfig2d::Valid };
            let conv = Conv2dConfig::new([in_channels, stage.channels], [stage.kernel, stage.kernel])
                .with_padding(padding)
                .with_initializer(conv_init.clone())
                .init(device);
            stages.push(ConvStage {
                conv: self.koch_bias(conv, device),
                norm: self.batch_norm.then(|| BatchNormConfig::new(stage.channels).init(device)),
                pool: stage.pool.then(|| MaxPool2dConfig::new([2, 2]).init()),
            });
            in_channels = stage.channels;
        }
        let flat = in_channels * feature * feature;
        let embed = LinearConfig::new(flat, self.embedding).with_initializer(dense_init.clone()).init(device);
        let head = LinearConfig::new(self.embedding, 1).with_initializer(dense_init).init(device);
        Siamese {
            twin: Twin { stages, embed: self.koch_bias(embed, device), sigmoid: self.sigmoid_embedding },
            head: self.koch_bias(head, device),
        }
    }

    /// Koch et al. start every bias at N(0.5, 0.01); Burn's layers draw biases like weights.
    fn koch_bias<M: HasBias>(&self, mut layer: M, device: &Device) -> M {
        if self.init == InitScheme::Koch
            && let Some(bias) = layer.bias_mut()
        {
            let shape = bias.shape();
            *bias = Param::from_tensor(Tensor::random(shape, Distribution::Normal(0.5, 0.01), device));
        }
        layer
    }
}

/// Layers with an optional bias vector.
trait HasBias {
    fn bias_mut(&mut self) -> Option<&mut Param<Tensor<1>>>;
}

impl HasBias for Conv2d {
    fn bias_mut(&mut self) -> Option<&mut Param<Tensor<1>>> {
        self.bias.as_mut()
    }
}

impl HasBias for Linear {
    fn bias_mut(&mut self) -> Option<&mut Param<Tensor<1>>> {
        self.bias.as_mut()
    }
}

/// One convolutional stage of the twin.
#[derive(Module, Debug)]
pub struct ConvStage {
    conv: Conv2d,
    norm: Option<BatchNorm>,
    pool: Option<MaxPool2d>,
}

impl ConvStage {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.conv.forward(x);
        let x = match &self.norm {
            Some(norm) => norm.forward(x),
            None => x,
        };
        // Max-pooling before the ReLU gives the same result (both are monotone) on a quarter
        // of the values.
        let x = match &self.pool {
            Some(pool) => pool.forward(x),
            None => x,
        };
        relu(x)
    }

    /// The training forward pass through the kernels of [`crate::cpu_train`], on NHWC maps;
    /// same function as [`forward`](Self::forward) in training mode, running statistics included.
    #[cfg(not(target_arch = "wasm32"))]
    fn forward_nhwc(&self, x: Tensor<4>) -> Tensor<4> {
        use crate::cpu_train::{conv_nhwc, norm_pool_relu};
        let norm = self.norm.as_ref().expect("the CPU training kernels need a batch norm");
        let [channels, _, kernel, _] = self.conv.weight.dims();
        let bias =
            self.conv.bias.as_ref().map_or_else(|| Tensor::zeros([channels], &x.device()), |bias| bias.val());
        // `Same` padding for odd kernels, `Valid` otherwise (the only two the presets use).
        let padding = if matches!(self.conv.padding, PaddingConfig2d::Same) { (kernel - 1) / 2 } else { 0 };
        let z = conv_nhwc(x, self.conv.weight.val(), bias, padding);
        let pool = if self.pool.is_some() { 2 } else { 1 };
        let stage = norm_pool_relu(z, norm.gamma.val(), norm.beta.val(), norm.epsilon, pool);
        // The running statistics as `BatchNorm::forward` updates them in training mode.
        let blend = |running: Tensor<1>, batch: Tensor<1>| {
            running.mul_scalar(1.0 - norm.momentum).add(batch.mul_scalar(norm.momentum)).detach()
        };
        norm.running_mean.update(blend(norm.running_mean.value_sync(), stage.mean));
        norm.running_var.update(blend(norm.running_var.value_sync(), stage.variance));
        stage.output
    }

    /// The same function without the batch norm, which in inference mode is a fixed affine map
    /// per channel: `γ (x − μ) / √(σ² + ε) + β`, folded into the convolution's weights and bias.
    fn fold_norm(mut self) -> Self {
        let Some(norm) = self.norm.take() else { return self };
        let scale = norm.gamma.val() / norm.running_var.value().add_scalar(norm.epsilon).sqrt();
        let shift = norm.beta.val() - norm.running_mean.value() * scale.clone();
        let channels = scale.dims()[0];
        let weight = self.conv.weight.val() * scale.clone().reshape([channels, 1, 1, 1]);
        let bias = match &self.conv.bias {
            Some(bias) => bias.val() * scale + shift,
            None => shift,
        };
        self.conv.weight = Param::from_tensor(weight);
        self.conv.bias = Some(Param::from_tensor(bias));
        self
    }
}

/// One twin: images in, embeddings out.
#[derive(Module, Debug)]
pub struct Twin {
    stages: Vec<ConvStage>,
    embed: Linear,
    #[module(skip)]
    sigmoid: bool,
}

/// The Siamese network: a twin shared by both inputs and the weighted-L1 head.
#[derive(Module, Debug)]
pub struct Siamese {
    twin: Twin,
    head: Linear,
}

impl Twin {
    /// The convolutional stages: `[n, 1, size, size]` → `[n, channels, side, side]`.
    fn features(&self, images: Tensor<4>) -> Tensor<4> {
        #[cfg(not(target_arch = "wasm32"))]
        if self.trains_on_cpu_kernels(&images) {
            // One input channel: NCHW and NHWC are the same values.
            let [n, _, height, width] = images.dims();
            let x = self
                .stages
                .iter()
                .fold(images.reshape([n, height, width, 1]), |x, stage| stage.forward_nhwc(x));
            return x.permute([0, 3, 1, 2]);
        }
        self.stages.iter().fold(images, |x, stage| stage.forward(x))
    }

    /// Whether a forward pass on `images` is a training pass that the CPU training kernels can
    /// run: autodiff over `flex`, one input channel, and a batch norm in training mode after
    /// every convolution (Burn's path keeps everything else, e.g. frozen norms when fine-tuning).
    #[cfg(not(target_arch = "wasm32"))]
    fn trains_on_cpu_kernels(&self, images: &Tensor<4>) -> bool {
        let device = images.device();
        // (Device equality ignores autodiff, hence both checks.)
        device.is_autodiff()
            && device == Device::flex()
            && images.dims()[1] == 1
            && images.dtype() == burn::tensor::DType::F32
            && self
                .stages
                .iter()
                .all(|stage| stage.norm.as_ref().is_some_and(|norm| norm.training.is_enabled()))
    }
}

impl Siamese {
    /// Embeds a batch of preprocessed images `[n, 1, size, size]` into `[n, embedding]`.
    pub fn embed(&self, images: Tensor<4>) -> Tensor<2> {
        let x = self.twin.features(images);
        let x = self.twin.embed.forward(x.flatten(1, 3));
        if self.twin.sigmoid { sigmoid(x) } else { x }
    }

    /// Logits for matching pairs of embeddings, row by row: `[n, d]`, `[n, d]` → `[n]`.
    pub fn pair_logits(&self, a: Tensor<2>, b: Tensor<2>) -> Tensor<1> {
        self.head.forward((a - b).abs()).flatten(0, 1)
    }

    /// Logits for every query against every support: `[q, d]`, `[s, d]` → `[q, s]`.
    pub fn cross_logits(&self, queries: Tensor<2>, supports: Tensor<2>) -> Tensor<2> {
        let [q, d] = queries.dims();
        let [s, _] = supports.dims();
        let diff = queries.unsqueeze_dim::<3>(1).expand([q, s, d])
            - supports.unsqueeze_dim::<3>(0).expand([q, s, d]);
        self.head.forward(diff.abs()).reshape([q, s])
    }

    /// Probabilities that each query shows the same character as each support: `[q, s]`.
    pub fn cross_scores(&self, queries: Tensor<2>, supports: Tensor<2>) -> Tensor<2> {
        sigmoid(self.cross_logits(queries, supports))
    }

    /// The network for inference only, with every batch norm folded into its convolution
    /// (fewer passes over the feature maps; same outputs to rounding). Do not train or save it:
    /// its architecture no longer matches its config.
    pub fn folded(&self) -> Self {
        let mut model = self.valid();
        model.twin.stages = model.twin.stages.into_iter().map(ConvStage::fold_norm).collect();
        model
    }

    /// The twin's convolutions and dense layer as plain values, for the [`CpuTwin`]
    /// kernels; `None` while a batch norm is left (call [`folded`](Self::folded) first) or if a
    /// tensor cannot be read back synchronously (a GPU device).
    ///
    /// [`CpuTwin`]: crate::cpu_twin::CpuTwin
    pub fn twin_values(&self) -> Option<(Vec<ConvValues>, DenseValues)> {
        let values = |tensor: Tensor<1>| tensor.into_data().try_to_vec::<f32>().ok();
        let mut convs = Vec::with_capacity(self.twin.stages.len());
        for stage in &self.twin.stages {
            if stage.norm.is_some() {
                return None;
            }
            let weight = stage.conv.weight.val().flatten(0, 3);
            let bias = match &stage.conv.bias {
                Some(bias) => values(bias.val())?,
                None => vec![0.0; stage.conv.weight.dims()[0]],
            };
            convs.push(ConvValues { weight: values(weight)?, bias });
        }
        let embed = &self.twin.embed;
        let bias = match &embed.bias {
            Some(bias) => values(bias.val())?,
            None => vec![0.0; embed.weight.dims()[1]],
        };
        Some((convs, DenseValues { weight: values(embed.weight.val().flatten(0, 1))?, bias }))
    }

    /// Freezes the whole twin, so only the head trains.
    pub fn freeze_twin(mut self) -> Self {
        self.twin = self.twin.freeze();
        self
    }

    /// Freezes the batch norms (their statistics and affine parameters), so a few examples
    /// cannot overwrite what the running statistics learnt.
    pub fn freeze_norms(mut self) -> Self {
        for stage in &mut self.twin.stages {
            stage.norm = stage.norm.take().map(Module::freeze);
        }
        self
    }

    /// The embedding layer's weight, for tests that look at gradients.
    #[cfg(test)]
    pub(crate) fn embed_weight(&self) -> Tensor<2> {
        self.twin.embed.weight.val()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Tolerance;

    fn device() -> Device {
        let device = Device::flex();
        device.seed(42);
        device
    }

    #[test]
    fn koch_preset_has_the_papers_parameter_count() {
        let config = Preset::Koch.config();
        assert_eq!(config.feature_size(), Some(6));
        assert_eq!(config.init(&device()).num_params(), 38_951_745);
    }

    #[test]
    fn web_preset_is_small() {
        let params = Preset::Web.config().init(&device()).num_params();
        assert!(params <= 1_000_000, "{params} parameters");
    }

    #[test]
    fn scores_are_symmetric_probabilities() {
        let device = device();
        let model = Preset::Web.config().init(&device);
        let images = Tensor::<4>::random([5, 1, 32, 32], Distribution::Uniform(0.0, 1.0), &device);
        let e = model.embed(images);
        let forward = model.cross_scores(e.clone(), e.clone());
        let backward = forward.clone().transpose();
        forward.to_data().assert_approx_eq::<f32>(&backward.to_data(), Tolerance::absolute(1e-6));
        let values = forward.into_data().try_to_vec::<f32>().unwrap();
        assert!(values.iter().all(|v| (0.0..=1.0).contains(v)));
        // Pairwise logits agree with the cross-product form.
        let pairs = model.pair_logits(e.clone().narrow(0, 0, 2), e.clone().narrow(0, 3, 2));
        let cross = model.cross_logits(e.clone(), e);
        let expected = [
            cross.clone().slice([0..1, 3..4]).into_scalar::<f32>(),
            cross.slice([1..2, 4..5]).into_scalar::<f32>(),
        ];
        let got = pairs.into_data().try_to_vec::<f32>().unwrap();
        assert!((got[0] - expected[0]).abs() < 1e-5 && (got[1] - expected[1]).abs() < 1e-5);
    }

    #[test]
    fn folding_the_batch_norms_keeps_the_outputs() {
        let device = device();
        let config = Preset::Web.config();
        // Train-mode passes move the running statistics away from 0 and 1, so folding has work to do.
        let model = config.init(&device.clone().autodiff()).train();
        for _ in 0..3 {
            let _ = model.embed(Tensor::random(
                [8, 1, 32, 32],
                Distribution::Uniform(0.0, 1.0),
                &device.clone().autodiff(),
            ));
        }
        let model = model.valid();
        let images = Tensor::<4>::random([4, 1, 32, 32], Distribution::Uniform(0.0, 1.0), &device);
        let folded = model.folded();
        assert!(folded.twin.stages.iter().all(|stage| stage.norm.is_none()));
        folded
            .embed(images.clone())
            .into_data()
            .assert_approx_eq::<f32>(&model.embed(images).into_data(), Tolerance::absolute(1e-5));
    }

    #[test]
    fn koch_init_draws_biases_around_one_half() {
        let model = Preset::Koch.config().init(&device());
        let bias = model.head.bias.as_ref().unwrap().val().into_scalar::<f32>();
        assert!((bias - 0.5).abs() < 0.05, "head bias {bias}");
    }
}
