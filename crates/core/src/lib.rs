//! The one-shot recognizer without Burn: what a drawing or picture becomes before the network,
//! the network's architecture, its weights files, and recognition on the CPU through the
//! project's kernels. The same code natively and in the page's first, small WebAssembly build.
//!
//! [`preprocess`] and [`strokes`] (any picture or pen trajectory → the network's input)
//! → [`architecture`] (the Siamese network's layers) → [`weights`] (files: format, checks)
//! → [`recognize`] (embedding and scoring on the CPU). Training, and running on a GPU, are
//! `oneshot-model`'s, with Burn.

pub mod architecture;
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
