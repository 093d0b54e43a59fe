//! One-shot character recognition with a convolutional Siamese network (Koch, Zemel &
//! Salakhutdinov, 2015), trained on Omniglot with Burn, run natively and in the browser.
//!
//! The modules follow the pipeline:
//! [`preprocess`] (any picture → network input) → [`data`] (Omniglot, Lake's runs, splits; native)
//! → [`model`] (the twin and head; natively its training passes run through the kernels of
//! [`cpu_train`]) → [`objective`] (losses) → [`train`] / [`eval`] (native)
//! → [`weights`] (files) → [`recognize`] (embedding and scoring; on the CPU through the
//! hand-written kernels of [`cpu_twin`]) → `web` (the page's wasm glue);
//! [`bench`] and [`export`] (native) measure it against other stacks.

pub mod cpu_twin;
pub mod finetune;
pub mod model;
pub mod objective;
pub mod preprocess;
pub mod recognize;
pub mod strokes;
pub mod weights;

#[cfg(not(target_arch = "wasm32"))]
pub mod bench;
#[cfg(not(target_arch = "wasm32"))]
pub mod cpu_train;
#[cfg(not(target_arch = "wasm32"))]
pub mod data;
#[cfg(not(target_arch = "wasm32"))]
pub mod eval;
#[cfg(not(target_arch = "wasm32"))]
pub mod export;
#[cfg(not(target_arch = "wasm32"))]
pub mod plot;
#[cfg(not(target_arch = "wasm32"))]
pub mod stroke_eval;
#[cfg(not(target_arch = "wasm32"))]
pub mod train;
#[cfg(target_arch = "wasm32")]
pub mod web;

/// Writes a file through a temporary sibling and a rename, so readers never see half a file.
#[cfg(not(target_arch = "wasm32"))]
pub fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
