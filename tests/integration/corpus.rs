//! Real-world pictures of digits (made by `scripts/make-corpus.py`: fonts and blown-up handwriting in
//! colours, sizes, rotations, transparency, noise and JPEG artefacts) are understood over HTTP, and
//! `max-mnist predict` gives the same answers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::helpers::{data_dir, spawn_app, upstream_weights, BINARY};

/// The folder `scripts/make-corpus.py` wrote, with its `labels.csv`.
const CORPUS_DIR_VAR: &str = "MNIST_CORPUS_DIR";
const REQUIRED_ACCURACY: f64 = 0.80;

struct Picture {
    path: PathBuf,
    label: u8,
    source: String,
    recipe: String,
}

fn read_corpus(dir: &Path) -> Vec<Picture> {
    let labels = std::fs::read_to_string(dir.join("labels.csv"))
        .unwrap_or_else(|err| panic!("read {}/labels.csv: {err}", dir.display()));
    labels
        .lines()
        .skip(1)
        .map(|line| {
            // file,label,source,recipe — only the recipe may hold commas.
            let fields: Vec<&str> = line.splitn(4, ',').collect();
            assert_eq!(fields.len(), 4, "labels.csv line {line:?}");
            Picture {
                path: dir.join(fields[0]),
                label: fields[1].parse().expect("a digit label"),
                source: fields[2].to_owned(),
                recipe: fields[3].trim_matches('"').to_owned(),
            }
        })
        .collect()
}

#[test]
#[ignore = "needs MNIST_CORPUS_DIR (.ci/run sets it and runs ignored tests)"]
fn most_real_world_pictures_are_understood_and_the_cli_agrees_with_http() {
    let dir = data_dir(CORPUS_DIR_VAR);
    let corpus = read_corpus(&dir);
    assert!(
        corpus.len() >= 200,
        "the corpus has only {} pictures",
        corpus.len()
    );
    let app = spawn_app();

    let mut http_answers = Vec::with_capacity(corpus.len());
    for picture in &corpus {
        let bytes = std::fs::read(&picture.path).expect("read a corpus picture");
        let response = app.predict(bytes);
        assert_eq!(response.status(), 200, "{}", picture.path.display());
        let body: Value = response.json().expect("JSON");
        let answer = body["predictions"][0]["prediction"]
            .as_u64()
            .expect("a prediction");
        http_answers.push(answer);
    }

    let mut by_source: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut misses = Vec::new();
    for (picture, &answer) in corpus.iter().zip(&http_answers) {
        let tally = by_source.entry(&picture.source).or_default();
        tally.1 += 1;
        if answer == u64::from(picture.label) {
            tally.0 += 1;
        } else {
            misses.push(format!(
                "{}: {} read as {answer} ({})",
                file_name(&picture.path),
                picture.label,
                picture.recipe
            ));
        }
    }
    let right: usize = by_source.values().map(|(right, _)| right).sum();
    let accuracy = right as f64 / corpus.len() as f64;
    let mut report = format!(
        "corpus: {right} of {} pictures named right ({:.1} %)\n",
        corpus.len(),
        100.0 * accuracy
    );
    for (source, (right, total)) in &by_source {
        report += &format!(
            "  {source}: {right}/{total} ({:.1} %)\n",
            100.0 * *right as f64 / *total as f64
        );
    }
    report += "misses:\n";
    for miss in &misses {
        report += &format!("  {miss}\n");
    }
    std::fs::write(dir.join("report.txt"), &report).expect("write report.txt");
    println!("{report}");
    assert!(
        accuracy >= REQUIRED_ACCURACY,
        "accuracy {accuracy:.3} < {REQUIRED_ACCURACY}\n{report}"
    );

    let output = Command::new(BINARY)
        .arg("predict")
        .arg("--weights")
        .arg(upstream_weights())
        .args(corpus.iter().map(|picture| &picture.path))
        .output()
        .expect("run max-mnist predict");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let cli_answers: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(cli_answers.len(), corpus.len());
    for ((picture, http), cli) in corpus.iter().zip(&http_answers).zip(&cli_answers) {
        assert_eq!(
            cli["prediction"].as_u64(),
            Some(*http),
            "{}: the CLI and HTTP disagree",
            picture.path.display()
        );
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}
