//! Files read from either a zip archive or a folder, so a run set can come in either form.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::DataError;

/// The files of a zip archive or a folder tree, by their `/`-separated relative paths.
#[derive(Debug)]
pub struct Archive {
    path: PathBuf,
    files: BTreeMap<String, Vec<u8>>,
}

impl Archive {
    /// Reads every file of a `.zip` archive, or of a folder tree.
    pub fn open(path: &Path) -> Result<Self, DataError> {
        let io = |source| DataError::Io { path: path.to_path_buf(), source };
        let meta = std::fs::metadata(path).map_err(io)?;
        let files = if meta.is_dir() { read_dir(path)? } else { read_zip(path)? };
        Ok(Self { path: path.to_path_buf(), files })
    }

    /// The files of a zip archive held in memory (a file a page was given, say); `label` names
    /// it in messages. Archives that would unpack to more than 256 MiB, or hold more than
    /// 50,000 files, are refused before they are unpacked.
    pub fn from_zip_bytes(label: &str, bytes: Vec<u8>) -> Result<Self, DataError> {
        let path = PathBuf::from(label);
        let files = read_zip_from(std::io::Cursor::new(bytes), &path)?;
        Ok(Self { path, files })
    }

    /// Where the files came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// All files, by relative path, in path order.
    pub fn files(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.files.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// One file's bytes.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.files.get(name).map(Vec::as_slice)
    }
}

/// The most a zip may unpack to, and the most files it may hold.
const MAX_UNPACKED_BYTES: u64 = 256 << 20;
const MAX_FILES: usize = 50_000;

fn read_zip(path: &Path) -> Result<BTreeMap<String, Vec<u8>>, DataError> {
    let file =
        std::fs::File::open(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })?;
    read_zip_from(std::io::BufReader::new(file), path)
}

fn read_zip_from<R: Read + std::io::Seek>(
    reader: R,
    path: &Path,
) -> Result<BTreeMap<String, Vec<u8>>, DataError> {
    let zip_error = |source| DataError::Zip { path: path.to_path_buf(), source };
    let mut zip = zip::ZipArchive::new(reader).map_err(zip_error)?;
    let too_big = |reason: String| DataError::Layout { archive: path.to_path_buf(), reason };
    if zip.len() > MAX_FILES {
        return Err(too_big(format!("it holds {} files, more than {MAX_FILES}", zip.len())));
    }
    let mut unpacked = 0u64;
    let mut files = BTreeMap::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(zip_error)?;
        if entry.is_dir() {
            continue;
        }
        let name = entry.name().to_string();
        // The declared size may lie: the reading itself is bounded too.
        let room = MAX_UNPACKED_BYTES - unpacked;
        let mut bytes = Vec::with_capacity(entry.size().min(room) as usize);
        (&mut entry)
            .take(room + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| zip_error(zip::result::ZipError::Io(e)))?;
        unpacked += bytes.len() as u64;
        if unpacked > MAX_UNPACKED_BYTES {
            return Err(too_big(format!("it unpacks to more than {} MiB", MAX_UNPACKED_BYTES >> 20)));
        }
        files.insert(name, bytes);
    }
    Ok(files)
}

fn read_dir(root: &Path) -> Result<BTreeMap<String, Vec<u8>>, DataError> {
    let mut files = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let io = |source| DataError::Io { path: dir.clone(), source };
        for entry in std::fs::read_dir(&dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let bytes =
                std::fs::read(&path).map_err(|source| DataError::Io { path: path.clone(), source })?;
            let relative = path.strip_prefix(root).unwrap_or(&path);
            let name =
                relative.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
            files.insert(name, bytes);
        }
    }
    Ok(files)
}
