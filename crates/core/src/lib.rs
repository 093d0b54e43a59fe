//! The one-shot recognizer itself, the same code natively and in the page (WebAssembly):
//!
//! [`preprocess`] and [`strokes`] (any picture or pen trajectory → the network's input)
//! → [`model`] (the Siamese network; natively its training passes run on the project's CPU
//! kernels) → [`objective`] (losses) → [`weights`] (files) → [`recognize`] (embedding and
//! scoring; on the CPU through `oneshot_kernels`) → [`finetune`] (a few steps on a user's own
//! drawings).

pub mod finetune;
pub mod model;
pub mod objective;
pub mod preprocess;
pub mod recognize;
pub mod strokes;
pub mod weights;

/// Writes a file through a temporary sibling and a rename, so readers never see half a file.
#[cfg(not(target_arch = "wasm32"))]
pub fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
