//! The Omniglot image archives: alphabet → character → drawings by 20 drawers.

use std::path::Path;

use super::{Archive, DataError, decode_png};
use oneshot_core::preprocess::InkImage;

/// One character: its folder name and one drawing per drawer, in drawer order.
#[derive(Debug)]
pub struct Character {
    /// Folder name, such as `character07`.
    pub name: String,
    /// The drawings, drawer 01 first.
    pub drawings: Vec<InkImage>,
}

/// One alphabet and its characters, in folder order.
#[derive(Debug)]
pub struct Alphabet {
    /// Folder name, such as `Tifinagh`.
    pub name: String,
    /// Its characters.
    pub characters: Vec<Character>,
}

/// An Omniglot archive (`images_background.zip` or `images_evaluation.zip`), decoded.
#[derive(Debug)]
pub struct Omniglot {
    /// The alphabets, in name order.
    pub alphabets: Vec<Alphabet>,
}

impl Omniglot {
    /// Reads and decodes an archive in the official layout
    /// `ROOT/Alphabet/characterNN/XXXX_YY.png`. Any other file is an error.
    pub fn load(path: &Path) -> Result<Self, DataError> {
        let archive = Archive::open(path)?;
        let layout = |reason: String| DataError::Layout { archive: path.to_path_buf(), reason };
        // Parse every path first, so a stray file is reported before any decoding work.
        let mut entries = Vec::new();
        for (name, bytes) in archive.files() {
            let parts: Vec<&str> = name.split('/').collect();
            let [_root, alphabet, character, file] = parts[..] else {
                return Err(layout(format!("{name} is not at ROOT/Alphabet/character/image.png")));
            };
            if !file.ends_with(".png") {
                return Err(layout(format!("{name} is not a .png file")));
            }
            entries.push((alphabet, character, name, bytes));
        }
        if entries.is_empty() {
            return Err(layout("no images found".into()));
        }
        let images = decode_parallel(&entries, path)?;

        let mut alphabets: Vec<Alphabet> = Vec::new();
        // Archive paths are sorted, so each alphabet and character is one contiguous run.
        for ((alphabet, character, _, _), image) in entries.iter().zip(images) {
            if alphabets.last().is_none_or(|a| a.name != *alphabet) {
                alphabets.push(Alphabet { name: alphabet.to_string(), characters: Vec::new() });
            }
            let characters = &mut alphabets.last_mut().expect("pushed above").characters;
            if characters.last().is_none_or(|c| c.name != *character) {
                characters.push(Character { name: character.to_string(), drawings: Vec::new() });
            }
            characters.last_mut().expect("pushed above").drawings.push(image);
        }
        Ok(Self { alphabets })
    }

    /// Number of characters over all alphabets.
    pub fn num_characters(&self) -> usize {
        self.alphabets.iter().map(|a| a.characters.len()).sum()
    }

    /// Number of images over all alphabets.
    pub fn num_images(&self) -> usize {
        self.alphabets.iter().flat_map(|a| &a.characters).map(|c| c.drawings.len()).sum()
    }
}

/// PNG decoding is most of the load time; spread it over the cores.
fn decode_parallel(entries: &[(&str, &str, &str, &[u8])], path: &Path) -> Result<Vec<InkImage>, DataError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let chunk = entries.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = entries
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|(_, _, name, bytes)| decode_png(bytes, path, name))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut images = Vec::with_capacity(entries.len());
        for handle in handles {
            images.extend(handle.join().expect("PNG decoding thread panicked")?);
        }
        Ok(images)
    })
}
