//! Training kernels for batch-normalised convolutional stages (native, and the page's CPU
//! fine-tuning in WebAssembly, where rayon runs on the one thread): each stage is a
//! [`Conv`] followed by a [`NormPool`], on NHWC maps, with hand-written backward passes.
//!
//! The element-wise loops are compiled twice, for baseline x86-64 and for AVX2 + FMA, and the
//! wider variant runs where the CPU has it ([`with_avx2!`](crate::simd)).

mod adam;
mod conv;
mod norm_pool;

pub use adam::AdamStep;
pub use conv::{Conv, ConvGrads};
pub use norm_pool::{CLIPPED, NormPool, NormPoolForward, Statistics};
