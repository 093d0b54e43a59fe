//! Lake's recorded pen trajectories (`strokes_background_small2.zip`): the strokes behind the
//! scans of five background alphabets, in the same alphabet → character → drawer layout.

use std::path::Path;

use super::{Archive, DataError};
use oneshot_core::strokes::Strokes;

/// Side of the canvas the trajectories were recorded on (the scans' 105 pixels).
pub const OMNIGLOT_FRAME: f32 = 105.0;

/// One character's recorded drawings, in drawer order (the scans' order).
#[derive(Debug)]
pub struct StrokeCharacter {
    /// Folder name, such as `character07`.
    pub name: String,
    /// File stems (`XXXX_YY`, as the scans are named) and the strokes.
    pub drawings: Vec<(String, Strokes)>,
}

/// One alphabet of recorded drawings.
#[derive(Debug)]
pub struct StrokeAlphabet {
    /// Folder name, such as `Greek`.
    pub name: String,
    /// Its characters, in folder order.
    pub characters: Vec<StrokeCharacter>,
}

/// Reads a strokes archive in Lake's layout `ROOT/Alphabet/characterNN/XXXX_YY.txt`, skipping
/// the macOS metadata (`__MACOSX/`, `.DS_Store`) the official zip carries.
pub fn load_strokes(path: &Path) -> Result<Vec<StrokeAlphabet>, DataError> {
    let archive = Archive::open(path)?;
    let layout = |reason: String| DataError::Layout { archive: path.to_path_buf(), reason };
    let mut alphabets: Vec<StrokeAlphabet> = Vec::new();
    for (name, bytes) in archive.files() {
        if name.starts_with("__MACOSX/") || name.ends_with(".DS_Store") {
            continue;
        }
        let parts: Vec<&str> = name.split('/').collect();
        let [_root, alphabet, character, file] = parts[..] else {
            return Err(layout(format!("{name} is not at ROOT/Alphabet/character/drawing.txt")));
        };
        let Some(stem) = file.strip_suffix(".txt") else {
            return Err(layout(format!("{name} is not a .txt stroke file")));
        };
        let text = std::str::from_utf8(bytes).map_err(|_| layout(format!("{name} is not text")))?;
        let strokes = parse_strokes(text).map_err(|reason| layout(format!("{name}: {reason}")))?;
        if alphabets.last().is_none_or(|a| a.name != alphabet) {
            alphabets.push(StrokeAlphabet { name: alphabet.to_string(), characters: Vec::new() });
        }
        let characters = &mut alphabets.last_mut().expect("pushed above").characters;
        if characters.last().is_none_or(|c| c.name != character) {
            characters.push(StrokeCharacter { name: character.to_string(), drawings: Vec::new() });
        }
        characters.last_mut().expect("pushed above").drawings.push((stem.to_string(), strokes));
    }
    if alphabets.is_empty() {
        return Err(layout("no stroke files found".into()));
    }
    Ok(alphabets)
}

/// Parses one stroke file: `START`, then `x,y,t` lines, `BREAK` between strokes. The y axis
/// points up (image row = −y); the result has it pointing down, in the scan's pixel frame
/// (a sample `(x, y)` is the centre of pixel `(x, −y)`, so half a pixel is added).
pub fn parse_strokes(text: &str) -> Result<Strokes, String> {
    let mut strokes: Vec<Vec<[f32; 2]>> = vec![Vec::new()];
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        match line {
            "" | "START" => {}
            "BREAK" => strokes.push(Vec::new()),
            _ => {
                let mut fields = line.split(',').map(|f| f.trim().parse::<f32>());
                match (fields.next(), fields.next()) {
                    (Some(Ok(x)), Some(Ok(y))) => {
                        strokes.last_mut().expect("never empty").push([x + 0.5, 0.5 - y])
                    }
                    _ => return Err(format!("line {} is not x,y,t: {line:?}", number + 1)),
                }
            }
        }
    }
    Strokes::new(strokes, OMNIGLOT_FRAME).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stroke_files_parse_into_pixel_coordinates() {
        let text = "START\n10.0,-20.0,0\n12.0,-20.0,16\nBREAK\n50,-60,40\nBREAK\n";
        let strokes = parse_strokes(text).unwrap();
        assert_eq!(strokes.strokes(), &[vec![[10.5, 20.5], [12.5, 20.5]], vec![[50.5, 60.5]]]);
        assert!(parse_strokes("START\nBREAK\n").is_err());
        assert!(parse_strokes("START\n1,x,0\n").unwrap_err().contains("line 2"));
    }
}
