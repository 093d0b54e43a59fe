//! The architecture: presets, the layer list, and building a fresh network from it.

use burn::config::Config;
use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::MaxPool2dConfig;
use burn::nn::{BatchNormConfig, Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::{Device, Distribution, Tensor};
use serde::{Deserialize, Serialize};

use super::network::{ConvStage, Siamese, Twin};

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

    /// Every preset.
    pub const ALL: [Preset; 2] = [Preset::Koch, Preset::Web];

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

impl std::str::FromStr for Preset {
    type Err = String;

    /// A preset by its name (`koch` or `web`).
    fn from_str(name: &str) -> Result<Self, String> {
        Preset::ALL.into_iter().find(|p| p.name() == name).ok_or_else(|| {
            let known: Vec<&str> = Preset::ALL.iter().map(|p| p.name()).collect();
            format!("unknown preset {name:?}; known presets: {}", known.join(", "))
        })
    }
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
