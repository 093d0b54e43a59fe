//! A fresh network of an architecture, initialised as the architecture says.

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::MaxPool2dConfig;
use burn::nn::{BatchNormConfig, Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::{Device, Distribution, Tensor};
use oneshot_core::architecture::{InitScheme, SiameseConfig};

use crate::network::{ConvStage, Siamese, Twin};

/// Building a network from its architecture (`use oneshot_model::BuildNetwork` for
/// `config.init(&device)`).
pub trait BuildNetwork {
    /// The network with fresh weights on `device`.
    ///
    /// # Panics
    /// If the stages shrink the input to nothing (check `feature_size` on untrusted input).
    fn init(&self, device: &Device) -> Siamese;
}

impl BuildNetwork for SiameseConfig {
    /// Builds the network with fresh weights on `device`.
    ///
    /// # Panics
    /// If the stages shrink the input to nothing (a programming error in a preset).
    fn init(&self, device: &Device) -> Siamese {
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
                conv: koch_bias(self, conv, device),
                norm: self.batch_norm.then(|| BatchNormConfig::new(stage.channels).init(device)),
                pool: stage.pool.then(|| MaxPool2dConfig::new([2, 2]).init()),
            });
            in_channels = stage.channels;
        }
        let flat = in_channels * feature * feature;
        let embed = LinearConfig::new(flat, self.embedding).with_initializer(dense_init.clone()).init(device);
        let head = LinearConfig::new(self.embedding, 1).with_initializer(dense_init).init(device);
        // Zero at first: the head starts as Koch et al.'s weighted L1 and learns the term.
        let product = self.product_head.then(|| {
            LinearConfig::new(self.embedding, 1)
                .with_bias(false)
                .with_initializer(Initializer::Zeros)
                .init(device)
        });
        Siamese {
            twin: Twin { stages, embed: koch_bias(self, embed, device), sigmoid: self.sigmoid_embedding },
            head: koch_bias(self, head, device),
            product,
        }
    }
}

/// Koch et al. start every bias at N(0.5, 0.01); Burn's layers draw biases like weights.
fn koch_bias<M: HasBias>(config: &SiameseConfig, mut layer: M, device: &Device) -> M {
    if config.init == InitScheme::Koch
        && let Some(bias) = layer.bias_mut()
    {
        let shape = bias.shape();
        *bias = Param::from_tensor(Tensor::random(shape, Distribution::Normal(0.5, 0.01), device));
    }
    layer
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
