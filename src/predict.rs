//! `max-mnist predict FILE…`: one JSON line per file, the same answer as `POST /model/predict`.

use std::path::PathBuf;
use std::process::ExitCode;

use max_mnist_core::{ClassProbability, Model, RawInput};
use serde::Serialize;

#[derive(Serialize)]
#[serde(untagged)]
enum Line<'a> {
    Prediction {
        file: &'a str,
        prediction: usize,
        probability: f32,
    },
    Error {
        file: &'a str,
        error: String,
    },
}

pub fn run(model: &dyn Model, files: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    for path in files {
        let file = path.to_string_lossy();
        let line = match classify(model, path) {
            Ok(top) => Line::Prediction {
                file: &file,
                prediction: top.class,
                probability: top.probability,
            },
            Err(error) => {
                failed = true;
                Line::Error { file: &file, error }
            }
        };
        match serde_json::to_string(&line) {
            Ok(json) => println!("{json}"),
            Err(err) => {
                failed = true;
                eprintln!("cannot write the result for {file}: {err}");
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn classify(model: &dyn Model, path: &PathBuf) -> Result<ClassProbability, String> {
    let bytes = std::fs::read(path).map_err(|err| format!("cannot read the file: {err}"))?;
    max_mnist_core::classify(model, &[RawInput::File(&bytes)])
        .map_err(|err| err.to_string())?
        .first()
        .and_then(|classification| classification.top_k(1).first().copied())
        .ok_or_else(|| "the model returned no prediction".to_owned())
}
