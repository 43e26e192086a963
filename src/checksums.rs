//! `sha512sum -c`: each line is `<128 hex digits>  <path>` (or ` *<path>`), paths relative to the
//! working directory.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use sha2::{Digest, Sha512};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChecksumLine {
    pub sha512: String,
    pub path: PathBuf,
}

pub fn parse(text: &str) -> anyhow::Result<Vec<ChecksumLine>> {
    let mut lines = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed = line.split_once(' ').and_then(|(hash, rest)| {
            let path = rest.strip_prefix(' ').or_else(|| rest.strip_prefix('*'))?;
            let valid = hash.len() == 128 && hash.bytes().all(|b| b.is_ascii_hexdigit());
            (valid && !path.is_empty()).then(|| ChecksumLine {
                sha512: hash.to_ascii_lowercase(),
                path: PathBuf::from(path),
            })
        });
        match parsed {
            Some(parsed) => lines.push(parsed),
            None => bail!(
                "line {} is not `<sha512 hex>  <path>` (the format of `sha512sum`): {line}",
                number + 1
            ),
        }
    }
    Ok(lines)
}

pub fn sha512_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha512::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect())
}

/// Checks every line of the checksum file, printing `path: OK` or `path: FAILED …` as `sha512sum -c`
/// does; fails naming every file that differs or, unless `skip_missing`, is missing.
pub fn verify(checksums: &Path, skip_missing: bool) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(checksums)
        .with_context(|| format!("cannot read the checksum file {}", checksums.display()))?;
    let lines = parse(&text).with_context(|| format!("in {}", checksums.display()))?;
    if lines.is_empty() {
        bail!("{} lists no files to check", checksums.display());
    }
    let mut failures = Vec::new();
    for line in &lines {
        if skip_missing && !line.path.exists() {
            eprintln!("{}: skipped, not present", line.path.display());
            continue;
        }
        match sha512_file(&line.path) {
            Ok(actual) if actual == line.sha512 => eprintln!("{}: OK", line.path.display()),
            Ok(actual) => {
                eprintln!("{}: FAILED", line.path.display());
                failures.push(format!(
                    "{}: SHA-512 is {actual}, {} expects {}",
                    line.path.display(),
                    checksums.display(),
                    line.sha512
                ));
            }
            Err(err) => {
                eprintln!("{}: FAILED open or read", line.path.display());
                failures.push(format!("{}: {err}", line.path.display()));
            }
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        bail!("checksum verification failed:\n  {}", failures.join("\n  "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "d49e3b79e8625288e59e642314694dd2c7f3b53bd4745af89674d0b01a4979cde856f1d8eaf7b7351f199a6371920be1cb2c44de5256459b0b4cdc4f89c68aae";

    #[test]
    fn parses_text_and_binary_mode_lines() {
        let text = format!(
            "# weights\n{HASH}  assets/a.pt\n\n{} *b.pt\n",
            HASH.to_uppercase()
        );
        let lines = parse(&text).expect("parses");
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].path, PathBuf::from("assets/a.pt"));
        assert_eq!(lines[1].sha512, HASH);
        assert_eq!(lines[1].path, PathBuf::from("b.pt"));
    }

    #[test]
    fn refuses_malformed_lines() {
        for bad in [
            "abc  file",
            &format!("{HASH}file"),
            &format!("{HASH}  "),
            &format!("{}  x", &HASH[1..]),
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hashes_a_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("abc");
        std::fs::write(&path, b"abc").expect("write");
        assert!(sha512_file(&path)
            .expect("hash")
            .starts_with("ddaf35a193617aba"));
    }
}
