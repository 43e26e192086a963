//! `max-mnist fetch-assets`: download the weights archive, unpack it, verify the checksums.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};

use crate::checksums;

pub struct FetchRequest {
    /// A URL (`http://`, `https://`) or a local directory holding `file`.
    pub bucket: String,
    pub file: String,
    pub dest: PathBuf,
    pub checksums: PathBuf,
}

/// Where to take `file` from: `--bucket` when given; else the asset cache (flag `--asset-cache`, env
/// `MNIST_ASSET_CACHE`) when it holds `file`; else the configured bucket. A cache is a local
/// directory, so it is read as a bucket is, and its archive is checked against the same checksums.
pub fn source_bucket(
    flag: Option<String>,
    cache: Option<&Path>,
    configured: &str,
    file: &str,
) -> String {
    let cache = cache.filter(|dir| !dir.as_os_str().is_empty());
    match (flag, cache) {
        (Some(bucket), Some(dir)) => {
            eprintln!(
                "--bucket {bucket} is given, so the asset cache {} (--asset-cache, MNIST_ASSET_CACHE) is not used",
                dir.display()
            );
            bucket
        }
        (Some(bucket), None) => bucket,
        (None, Some(dir)) if dir.join(file).is_file() => {
            eprintln!(
                "taking {file} from the asset cache {} (--asset-cache, MNIST_ASSET_CACHE) instead of downloading it",
                dir.display()
            );
            dir.to_string_lossy().into_owned()
        }
        (None, Some(dir)) => {
            eprintln!(
                "the asset cache {} (--asset-cache, MNIST_ASSET_CACHE) holds no {file}: downloading it from {configured}",
                dir.display()
            );
            configured.to_owned()
        }
        (None, None) => configured.to_owned(),
    }
}

/// Fetches, unpacks and verifies; on a mismatch, deletes what it fetched.
pub fn fetch(request: &FetchRequest) -> anyhow::Result<()> {
    if request.file.is_empty() || request.file.contains(['/', '\\']) {
        bail!(
            "the asset file name `{}` must be a plain file name",
            request.file
        );
    }
    std::fs::create_dir_all(&request.dest)
        .with_context(|| format!("cannot create {}", request.dest.display()))?;
    let archive = request.dest.join(&request.file);
    let source = format!("{}/{}", request.bucket.trim_end_matches('/'), request.file);
    let outcome = download(&source, &archive).and_then(|()| unpack(&archive, &request.dest));
    let fetched = match outcome {
        Ok(fetched) => fetched,
        Err(err) => {
            remove(std::slice::from_ref(&archive));
            return Err(err);
        }
    };
    if let Err(err) = checksums::verify(&request.checksums, false) {
        remove(&fetched);
        return Err(err.context(format!(
            "the files fetched from {source} do not match {}; they were deleted",
            request.checksums.display()
        )));
    }
    for path in &fetched {
        eprintln!("fetched {}", path.display());
    }
    Ok(())
}

fn download(source: &str, target: &Path) -> anyhow::Result<()> {
    if !(source.starts_with("http://") || source.starts_with("https://")) {
        let local = source.strip_prefix("file://").unwrap_or(source);
        std::fs::copy(local, target).with_context(|| format!("cannot copy {local}"))?;
        return Ok(());
    }
    let client = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .timeout(Duration::from_secs(600))
        .user_agent(concat!("max-mnist/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot start an HTTP client")?;
    let response = client
        .get(source)
        .send()
        .with_context(|| format!("cannot download {source}: check the network and --bucket"))?;
    let status = response.status();
    if !status.is_success() {
        bail!("cannot download {source}: the server answered {status}; check --bucket and --file");
    }
    let progress = match response.content_length() {
        Some(len) => ProgressBar::new(len).with_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} ({eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner(),
    }
    .with_message(format!("downloading {source}"));
    let mut file = BufWriter::new(
        File::create(target).with_context(|| format!("cannot create {}", target.display()))?,
    );
    std::io::copy(&mut progress.wrap_read(response), &mut file)
        .with_context(|| format!("download of {source} interrupted"))?;
    progress.finish_and_clear();
    Ok(())
}

/// Unpacks a `.tar.gz`/`.tgz` into `dest` and deletes it, as MAX's Dockerfile does; any other file
/// (a bare `.pt`, say) is kept as it is. Returns the files now in place.
fn unpack(archive: &Path, dest: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let name = archive.to_string_lossy();
    if !(name.ends_with(".tar.gz") || name.ends_with(".tgz")) {
        return Ok(vec![archive.to_owned()]);
    }
    let file = File::open(archive).with_context(|| format!("cannot open {}", archive.display()))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut unpacked = Vec::new();
    let entries = tar
        .entries()
        .with_context(|| format!("{} is not a tar.gz archive", archive.display()))?;
    for entry in entries {
        let result = entry.and_then(|mut entry| {
            let path = dest.join(entry.path()?);
            entry.unpack_in(dest)?;
            Ok((entry.header().entry_type().is_file(), path))
        });
        match result {
            Ok((true, path)) => unpacked.push(path),
            Ok((false, _)) => {}
            Err(err) => {
                remove(&unpacked);
                bail!("cannot unpack {}: {err}", archive.display());
            }
        }
    }
    std::fs::remove_file(archive)
        .with_context(|| format!("cannot remove {}", archive.display()))?;
    Ok(unpacked)
}

fn remove(paths: &[PathBuf]) {
    for path in paths {
        if let Err(err) = std::fs::remove_file(path) {
            if err.kind() != std::io::ErrorKind::NotFound {
                log::warn!("cannot remove {}: {err}", path.display());
            }
        }
    }
}
