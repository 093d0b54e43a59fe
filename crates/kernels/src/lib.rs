//! The project's CPU kernels, on plain `f32` slices: they know shapes, not networks.
//!
//! - [`Embedder`] (inference, native and WebAssembly): a folded network's convolutional stages
//!   and dense layer, NHWC from stage to stage, each stage one fused pass (direct convolution
//!   for one input channel, Winograd F(4×4, 3×3) or F(2×2, 3×3) for 3×3 "same" convolutions
//!   followed by a 2×2 max-pool, im2col otherwise; bias, pooling and ReLU on the way out).
//! - [`training`] (native, and in WebAssembly with the `training` feature): a stride-1
//!   convolution and a batch norm (train-mode, or a fixed affine map) → max-pool → ReLU stage,
//!   each with its backward pass, parallel over images; the model crate plugs them into Burn's
//!   autodiff.
//! - Underneath: SIMD vectors ([`simd`]: four lanes everywhere, eight with AVX2 for the training
//!   passes' Winograd transforms), Winograd transforms, weight layouts and matrix products
//!   (`gemm` natively, a packed 4×8 kernel in WebAssembly).
//!
//! Nothing here depends on Burn or on the model: the callers lay their tensors out as slices.

#[macro_use]
pub mod simd;
mod inference;
mod layout;
mod matmul;
#[cfg(any(not(target_arch = "wasm32"), feature = "training"))]
pub mod training;
mod winograd;

pub use inference::{ConvValues, DenseValues, Embedder, NetShape, StageShape};

/// Helpers shared by the kernels' tests.
#[cfg(test)]
mod test_values {
    /// Deterministic values in (−1, 1), different at every index.
    pub(crate) fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len as u32)
            .map(|i| {
                let h =
                    (i.wrapping_mul(2_654_435_761) ^ seed.wrapping_mul(40_503)).wrapping_mul(2_246_822_519);
                (h >> 8) as f32 / (1u32 << 23) as f32 - 1.0
            })
            .collect()
    }
}
