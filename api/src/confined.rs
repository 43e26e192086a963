//! A file a client names inside a directory the operator chose (the model store, the input
//! directory): resolved with every link followed, and refused unless it is a regular file that
//! stays inside. The one check behind both, so that they cannot drift apart.

use std::path::{Path, PathBuf};

/// Why a path was refused.
#[derive(Debug)]
pub enum Refusal {
    /// The directory itself cannot be resolved.
    Directory(std::io::Error),
    /// Nothing is there.
    Missing,
    /// It resolves outside the directory (`..`, an absolute path, a link out).
    LeadsOut,
    /// It is a directory or another non-regular file.
    NotAFile,
}

/// `path` (relative to `dir`, or absolute) resolved inside `dir`.
pub fn resolve_inside(dir: &Path, path: &Path) -> Result<PathBuf, Refusal> {
    let root = dir.canonicalize().map_err(Refusal::Directory)?;
    let resolved = root
        .join(path)
        .canonicalize()
        .map_err(|_| Refusal::Missing)?;
    if !resolved.starts_with(&root) {
        return Err(Refusal::LeadsOut);
    }
    if !resolved.is_file() {
        return Err(Refusal::NotAFile);
    }
    Ok(resolved)
}
