//! A file named inside a directory the operator chose (the model store, the input directory): one
//! rule for every caller, so that they cannot drift apart. The name is a relative path: not
//! empty, not absolute, no `..`; it is resolved with every link followed, and must be a regular
//! file that stays inside the directory.

use std::path::{Component, Path, PathBuf};

/// Why a path was refused.
#[derive(Debug)]
pub enum Refusal {
    /// The name is empty.
    Empty,
    /// The name is an absolute path.
    Absolute,
    /// The name has a `..` (or a Windows prefix) in it.
    Parent,
    /// The directory itself cannot be resolved.
    Directory(std::io::Error),
    /// Nothing is there.
    Missing,
    /// It resolves outside the directory: a symlink leads out.
    LeadsOut,
    /// It is a directory or another non-regular file.
    NotAFile,
}

/// The file `name` (a relative path) names inside `dir`, resolved.
pub fn resolve(dir: &Path, name: &Path) -> Result<PathBuf, Refusal> {
    check_name(name)?;
    let root = dir.canonicalize().map_err(Refusal::Directory)?;
    let resolved = root
        .join(name)
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

/// The checks of [`resolve`] that need no directory: a relative path, not empty, without `..`.
pub fn check_name(name: &Path) -> Result<(), Refusal> {
    let text = name.to_string_lossy();
    if text.trim().is_empty() {
        return Err(Refusal::Empty);
    }
    if name.is_absolute() || text.starts_with('\\') {
        return Err(Refusal::Absolute);
    }
    if name
        .components()
        .any(|component| !matches!(component, Component::Normal(_) | Component::CurDir))
    {
        return Err(Refusal::Parent);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_relative_path_to_a_regular_file_inside_resolves() {
        let root = tempfile::tempdir().expect("temp dir");
        let dir = root.path().join("dir");
        std::fs::create_dir_all(dir.join("sub")).expect("dir");
        std::fs::write(dir.join("sub/in.csv"), "a\n1\n").expect("write");
        std::fs::write(root.path().join("secret"), "s").expect("write");
        std::os::unix::fs::symlink(root.path().join("secret"), dir.join("out")).expect("link");
        std::os::unix::fs::symlink(dir.join("sub/in.csv"), dir.join("alias")).expect("link");
        for inside in ["sub/in.csv", "./sub/in.csv", "alias"] {
            assert!(resolve(&dir, Path::new(inside)).is_ok(), "{inside}");
        }
        let inside_but_absolute = dir.join("sub/in.csv");
        for (name, refusal) in [
            ("", "Empty"),
            (" ", "Empty"),
            (inside_but_absolute.to_str().expect("UTF-8"), "Absolute"),
            ("\\sub\\in.csv", "Absolute"),
            ("../secret", "Parent"),
            ("sub/../../secret", "Parent"),
            ("out", "LeadsOut"),
            ("missing", "Missing"),
            ("sub", "NotAFile"),
        ] {
            let got = format!("{:?}", resolve(&dir, Path::new(name)).err());
            assert!(got.contains(refusal), "{name}: {got}");
        }
        assert!(matches!(
            resolve(&root.path().join("none"), Path::new("a")),
            Err(Refusal::Directory(_))
        ));
    }
}
