//! The page's entry points: thin `wasm-bindgen` glue over `oneshot-core` (every build) and
//! `oneshot-model` (the builds with Burn). Three builds of this crate serve the page:
//!
//! - default features: the small CPU build the page starts with (the Burn-free recognizer);
//! - `burn`: adds fine-tuning on the CPU (Burn's `flex` backend), loaded by the fine-tuning
//!   worker when there is no GPU, and Lake's runs read from a zip for the benchmark in the page;
//! - `webgpu`: Burn on WebGPU, for recognition and fine-tuning where the browser has a GPU.
//!
//! Calls are async where WebGPU reads results back (a synchronous readback panics in the
//! browser). Every input is checked at the boundary ([`input`]) and every failure is a `JsError`
//! with a readable message; the panic hook reports a bug to the console.

mod engine;
#[cfg(feature = "webgpu")]
mod gpu;
mod input;
#[cfg(feature = "burn")]
mod runs;
#[cfg(feature = "burn")]
mod tuning;

use wasm_bindgen::prelude::*;

pub use engine::Engine;
#[cfg(feature = "burn")]
pub use runs::LakeRuns;
#[cfg(feature = "burn")]
pub use tuning::FineTuning;

#[wasm_bindgen(start)]
fn start() {
    console_error_panic_hook::set_once();
}

/// Reads a tensor back without blocking (WebGPU only allows asynchronous readback).
#[cfg(feature = "burn")]
async fn read<const D: usize>(tensor: burn::tensor::Tensor<D>) -> Result<Vec<f32>, JsError> {
    let data = tensor
        .into_data_async()
        .await
        .map_err(|e| JsError::new(&format!("reading results failed: {e:?}")))?;
    data.try_to_vec::<f32>().map_err(|e| JsError::new(&format!("unexpected result type: {e:?}")))
}
