//! Request bodies of models that take named features: CSV with a header row (the body, or a
//! multipart file), JSON records (one object, a list of them, or `{"data": …}`), rows of numbers in
//! the model's feature order; and TorchServe's example's `{"input_file_path": […]}`, a path on the
//! server, read only from the input directory the operator named, and never written.

use std::path::{Path, PathBuf};

use actix_multipart::Multipart;
use actix_web::{web, HttpRequest};
use max_mnist_core::records::parse_csv;
use max_mnist_core::{Field, Record};
use serde_json::{Map, Value};

use crate::confined::{self, Refusal};
use crate::errors::ApiError;
use crate::inference::check_instance_count;
use crate::instance::Instance;
use crate::upload::{
    content_type, first_part, parse_json, parse_number, read_body, read_multipart, text_part,
};
use crate::ServiceSettings;

pub const TABULAR_HINT: &str = "send a CSV with a header row (`curl -H 'Content-Type: text/csv' --data-binary @rows.csv`, or a multipart `file`), JSON records (an object, a list of objects, or {\"data\": [...]}), or rows of numbers in the model's feature order";

/// The rows of a request, and the class to explain when it names one.
#[derive(Debug)]
pub struct Tabular {
    pub instances: Vec<Instance>,
    pub target: Option<usize>,
}

/// The instances of any body a tabular model takes.
pub async fn read(
    request: &HttpRequest,
    payload: web::Payload,
    settings: &ServiceSettings,
) -> Result<Tabular, ApiError> {
    let limits = &settings.limits;
    let content_type = content_type(request);
    let tabular = if content_type.starts_with("multipart/form-data") {
        let parts = read_multipart(Multipart::new(request.headers(), payload), limits).await?;
        let file = first_part(&parts, &["file", "data"]).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "no `file` or `data` field in the form: {TABULAR_HINT}"
            ))
        })?;
        Tabular {
            instances: csv(&file.data, settings)?,
            target: text_part(&parts, "target")?
                .map(|value| parse_number(&value, "target"))
                .transpose()?,
        }
    } else {
        let body = read_body(payload, limits).await?;
        if content_type.starts_with("application/json") {
            from_json(parse_json(&body, limits)?, settings)?
        } else {
            Tabular {
                instances: csv(&body, settings)?,
                target: None,
            }
        }
    };
    check_instance_count(tabular.instances.len(), limits)?;
    Ok(tabular)
}

/// The rows of a CSV body.
pub fn csv(bytes: &[u8], settings: &ServiceSettings) -> Result<Vec<Instance>, ApiError> {
    Ok(parse_csv(bytes, settings.limits.max_instances)
        .map_err(|err| ApiError::BadRequest(format!("{err}; {TABULAR_HINT}")))?
        .into_iter()
        .map(Instance::Record)
        .collect())
}

/// A JSON body: records, `{"data": records, "target": n}`, or `{"input_file_path": paths}`.
pub fn from_json(value: Value, settings: &ServiceSettings) -> Result<Tabular, ApiError> {
    let target = match value.get("target") {
        None | Some(Value::Null) => None,
        Some(target) => Some(target.as_u64().map(|t| t as usize).ok_or_else(|| {
            ApiError::BadRequest("target must be a whole number, a class of the model".into())
        })?),
    };
    let instances = match value {
        Value::Object(mut fields) if fields.contains_key("input_file_path") => {
            let paths = fields.remove("input_file_path").unwrap_or_default();
            input_files(&paths, settings)?
        }
        Value::Object(mut fields) if fields.contains_key("data") || fields.contains_key("body") => {
            match fields.remove("data").or_else(|| fields.remove("body")) {
                Some(Value::String(text)) => csv(text.as_bytes(), settings)?,
                Some(inner) => records(inner)?,
                None => Vec::new(),
            }
        }
        other => records(other)?,
    };
    Ok(Tabular { instances, target })
}

/// One record, or a list of records or rows of numbers.
fn records(value: Value) -> Result<Vec<Instance>, ApiError> {
    let rows = match value {
        Value::Array(rows) => rows,
        single => vec![single],
    };
    rows.iter()
        .enumerate()
        .map(|(index, row)| {
            instance(row).map_err(|err| {
                ApiError::BadRequest(format!("row {}: {err}; {TABULAR_HINT}", index + 1))
            })
        })
        .collect()
}

/// A row: a JSON object of named fields, or a list of numbers.
pub fn instance(value: &Value) -> Result<Instance, String> {
    match value {
        Value::Object(fields) => record(fields).map(Instance::Record),
        Value::Array(values) => values
            .iter()
            .map(|v| {
                v.as_f64()
                    .ok_or_else(|| format!("a row of numbers holds {v}"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Instance::Tensor),
        other => Err(format!(
            "{other} is not a row (a JSON object of named fields, or a list of numbers)"
        )),
    }
}

fn record(fields: &Map<String, Value>) -> Result<Record, String> {
    fields
        .iter()
        .map(|(name, value)| {
            let field = match value {
                Value::Null => Field::Missing,
                Value::Number(number) => Field::Number(number.as_f64().unwrap_or(f64::NAN)),
                Value::String(text) if text.trim().is_empty() => Field::Missing,
                Value::String(text) => Field::Text(text.clone()),
                Value::Bool(flag) => Field::Number(f64::from(u8::from(*flag))),
                Value::Array(_) | Value::Object(_) => {
                    return Err(format!("column `{name}` holds {value}, not a value"))
                }
            };
            Ok((name.clone(), field))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Record)
}

/// The CSV files `input_file_path` names, read only from inside the operator's input directory.
fn input_files(paths: &Value, settings: &ServiceSettings) -> Result<Vec<Instance>, ApiError> {
    let Some(dir) = &settings.input_dir else {
        return Err(ApiError::BadRequest(format!(
            "input_file_path names a file on the server, which this server reads only from an input directory its operator names (flag --input-dir, env INPUT_DIR, setting server.input_dir), and none is named: send the CSV itself as the body; {TABULAR_HINT}"
        )));
    };
    let paths: Vec<&str> = match paths {
        Value::String(path) => vec![path.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if paths.is_empty() {
        return Err(ApiError::BadRequest(
            "input_file_path must be a file name or a list of them".into(),
        ));
    }
    let mut instances = Vec::new();
    for path in paths {
        let file = inside(dir, path)?;
        let size = std::fs::metadata(&file)
            .map(|m| m.len())
            .unwrap_or(u64::MAX);
        if size > settings.limits.max_body_bytes as u64 {
            return Err(ApiError::PayloadTooLarge {
                limit: settings.limits.max_body_bytes,
            });
        }
        let bytes = std::fs::read(&file).map_err(|err| {
            ApiError::BadRequest(format!("input_file_path `{path}` cannot be read ({err})"))
        })?;
        instances.extend(csv(&bytes, settings)?);
    }
    Ok(instances)
}

/// The file `path` names in the input directory `dir`, by the one rule of [`confined::resolve`];
/// a 400 saying why not.
fn inside(dir: &Path, path: &str) -> Result<PathBuf, ApiError> {
    let refused = |why: &str| {
        ApiError::BadRequest(format!(
            "input_file_path `{path}` {why}: name a CSV file by its path inside the input directory, or send the CSV itself"
        ))
    };
    confined::resolve(dir, Path::new(path)).map_err(|refusal| match refusal {
        Refusal::Empty => refused("is empty"),
        Refusal::Absolute => refused("is an absolute path"),
        Refusal::Parent => refused("leads out of the input directory (`..`)"),
        Refusal::Directory(_) => refused("cannot be read: the input directory does not exist"),
        Refusal::Missing => refused("is not a file in the input directory"),
        Refusal::LeadsOut => refused("leads out of the input directory (a symlink)"),
        Refusal::NotAFile => refused("is not a regular file"),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn json_records_lists_and_wrappers_are_read() {
        let one = instance(&json!({"pclass": 1, "sex": "female", "age": null, "embarked": ""}));
        match one {
            Ok(Instance::Record(record)) => {
                assert_eq!(record.get("pclass"), Some(&Field::Number(1.0)));
                assert_eq!(record.get("age"), Some(&Field::Missing));
                assert_eq!(record.get("embarked"), Some(&Field::Missing));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(instance(&json!([1, 2.5])), Ok(Instance::Tensor(v)) if v == [1.0, 2.5]));
        assert!(instance(&json!("x")).is_err());
        assert!(instance(&json!({"sex": ["male"]})).is_err());
        assert!(instance(&json!([1, "x"])).is_err());
    }

    #[test]
    fn paths_leaving_the_input_directory_are_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("in.csv"), "a\n1\n").expect("write");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        let outside = tempfile::tempdir().expect("temp dir");
        std::fs::write(outside.path().join("secret.csv"), "a\n1\n").expect("write");
        std::os::unix::fs::symlink(
            outside.path().join("secret.csv"),
            dir.path().join("link.csv"),
        )
        .expect("symlink");
        assert!(inside(dir.path(), "in.csv").is_ok());
        let outside_path = outside.path().join("secret.csv");
        for (path, says) in [
            ("../in.csv", "leads out of the input directory (`..`)"),
            ("link.csv", "leads out of the input directory (a symlink)"),
            (outside_path.to_str().expect("UTF-8"), "is an absolute path"),
            ("sub", "not a regular file"),
            ("missing.csv", "is not a file"),
        ] {
            match inside(dir.path(), path) {
                Err(ApiError::BadRequest(message)) => {
                    assert!(message.contains(says), "{path}: {message}")
                }
                other => panic!("{path}: {other:?}"),
            }
        }
    }
}
