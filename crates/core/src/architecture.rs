//! The architecture of the convolutional Siamese network of Koch, Zemel & Salakhutdinov (2015):
//! a twin (convolutional stages → dense embedding) embeds each image; the head weighs the
//! absolute difference of two embeddings, `logit = w · |h₁ − h₂| + b`, and a sigmoid turns it
//! into the probability that both images show the same character. [`Preset::Koch`] is the
//! paper's network, [`Preset::Web`] the page's.

use oneshot_kernels::{NetShape, StageShape};
use serde::{Deserialize, Serialize};

/// One convolutional stage of the twin: conv → (batch norm) → ReLU → (2×2 max-pool).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

impl ConvStageConfig {
    /// A stage of `channels` outputs and a `kernel`×`kernel` convolution.
    pub fn new(channels: usize, kernel: usize, same_padding: bool, pool: bool) -> Self {
        Self { channels, kernel, same_padding, pool }
    }
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
                product_head: false,
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
                // 512 was trained too: framed for recognition, it ties 256 (both 90.19 % on
                // 20,000 fresh validation trials; docs/training.md, "The wider embedding and the
                // framing") at a third more download.
                embedding: 256,
                sigmoid_embedding: true,
                init: InitScheme::Kaiming,
                product_head: false,
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Add a product term to the head, `logit = w · |h₁ − h₂| + u · (h₁ ⊙ h₂) + b`: the
    /// weighted L1 distance alone scores two embeddings that both lack a feature like two that
    /// both have it. Absent from older files' headers (false), and left out when false so
    /// their headers stay as they were.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub product_head: bool,
}

impl SiameseConfig {
    /// Whether networks of these two architectures can answer together, or one stand where the
    /// other is expected: the same twin, input and embedding. Their heads may differ in the
    /// product term, since each network scores with its own head.
    pub fn same_twin(&self, other: &SiameseConfig) -> bool {
        *self == SiameseConfig { product_head: self.product_head, ..other.clone() }
    }

    /// Side of the last feature map, or `None` if the stages shrink the input to nothing.
    pub fn feature_size(&self) -> Option<usize> {
        self.stages.iter().try_fold(self.input_size, |size, stage| {
            let size = if stage.same_padding { size } else { size.checked_sub(stage.kernel - 1)? };
            let size = if stage.pool { size / 2 } else { size };
            (size > 0).then_some(size)
        })
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

impl SiameseConfig {
    /// The shape the CPU kernels need to know.
    pub fn net_shape(&self) -> NetShape {
        NetShape {
            input_size: self.input_size,
            stages: self
                .stages
                .iter()
                .map(|s| StageShape {
                    channels: s.channels,
                    kernel: s.kernel,
                    same_padding: s.same_padding,
                    pool: s.pool,
                })
                .collect(),
            embedding: self.embedding,
            sigmoid_embedding: self.sigmoid_embedding,
        }
    }
}
