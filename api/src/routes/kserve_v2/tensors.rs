//! What tensors a model takes, from its description: BYTES of encoded files (image models), or
//! numbers whose shape is a batch of the model's instance shapes (`[N,H,W]`, `[N,1,H,W]`,
//! `[N,H×W]` for a grayscale image model, `[N,F]` for a model of F features).

use max_mnist_core::model::InputInfo;
use max_mnist_core::InputKind;
use serde_json::Value;

use super::binary;
use super::types::InferInput;
use crate::instance::Instance;
use crate::upload::decode_base64;

const NUMERIC: [&str; 5] = ["FP32", "FP64", "UINT8", "INT32", "INT64"];

/// What to send, for a model's input.
pub fn hint(info: &InputInfo) -> String {
    let shapes: Vec<String> = info
        .instance_shapes()
        .iter()
        .map(|shape| {
            let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
            format!("[N,{}]", dims.join(","))
        })
        .collect();
    let numbers = format!("{} of shape {}", NUMERIC.join("/"), shapes.join(" or "));
    match info.kind {
        InputKind::Image => format!(
            "send one input: BYTES of base64 images (shape [N]), or {numbers} (intensities 0..1 or 0..255)"
        ),
        InputKind::Features => format!("send one input: {numbers}"),
    }
}

/// The instances an input holds, from its JSON `data` or from the binary bytes.
pub fn instances(
    input: &InferInput,
    binary: &[u8],
    info: &InputInfo,
) -> Result<Vec<Instance>, String> {
    let binary_size = input
        .parameters
        .get("binary_data_size")
        .and_then(Value::as_u64)
        .map(|size| usize::try_from(size).unwrap_or(usize::MAX));
    let raw = match binary_size {
        Some(size) => Some(binary.get(..size).ok_or_else(|| {
            format!(
                "binary_data_size is {size}, but {} bytes follow the JSON",
                binary.len()
            )
        })?),
        None => None,
    };
    let datatype = input.datatype.to_ascii_uppercase();
    if datatype == "BYTES" {
        if info.kind != InputKind::Image {
            return Err("this model takes numbers, not BYTES".into());
        }
        let files = match (raw, &input.data) {
            (Some(raw), _) => binary::elements(raw)?,
            (None, Some(data)) => json_strings(data)?,
            (None, None) => return Err("no `data` and no binary data".into()),
        };
        check_shape(&input.shape, &[files.len()])?;
        return Ok(files);
    }
    if !NUMERIC.contains(&datatype.as_str()) {
        return Err(format!("datatype {datatype} is not supported"));
    }
    let values = match (raw, &input.data) {
        (Some(raw), _) => binary::numbers(raw, &datatype)?,
        (None, Some(data)) => {
            let mut values = Vec::new();
            json_numbers(data, &mut values)?;
            values
        }
        (None, None) => return Err("no `data` and no binary data".into()),
    };
    let per_instance = info.len().max(1);
    if !values.len().is_multiple_of(per_instance) {
        return Err(format!(
            "{} values are not a whole number of instances of {per_instance}",
            values.len()
        ));
    }
    let count = values.len() / per_instance;
    let shape_ok = info
        .instance_shapes()
        .iter()
        .any(|shape| check_shape(&input.shape, &[&[count], shape.as_slice()].concat()).is_ok());
    if !shape_ok {
        return Err(format!(
            "shape {:?} with {} values",
            input.shape,
            values.len()
        ));
    }
    Ok(values
        .chunks_exact(per_instance)
        .map(|chunk| Instance::Tensor(chunk.to_vec()))
        .collect())
}

/// `declared` matches `actual`, with −1 standing for any size.
fn check_shape(declared: &[i64], actual: &[usize]) -> Result<(), String> {
    let matches = declared.len() == actual.len()
        && declared
            .iter()
            .zip(actual)
            .all(|(&d, &a)| d == -1 || usize::try_from(d).is_ok_and(|d| d == a));
    if matches {
        Ok(())
    } else {
        Err(format!(
            "shape {declared:?} does not match the data's {actual:?}"
        ))
    }
}

/// BYTES elements as JSON strings: base64 files.
fn json_strings(data: &Value) -> Result<Vec<Instance>, String> {
    let mut strings = Vec::new();
    collect_strings(data, &mut strings)?;
    strings
        .into_iter()
        .enumerate()
        .map(|(index, text)| {
            decode_base64(text)
                .map(Instance::File)
                .map_err(|err| format!("element {index}: {err}"))
        })
        .collect()
}

fn collect_strings<'a>(data: &'a Value, out: &mut Vec<&'a str>) -> Result<(), String> {
    match data {
        Value::String(text) => {
            out.push(text);
            Ok(())
        }
        Value::Array(items) => items.iter().try_for_each(|item| collect_strings(item, out)),
        _ => Err("BYTES data must be strings (base64 images)".into()),
    }
}

fn json_numbers(data: &Value, out: &mut Vec<f64>) -> Result<(), String> {
    match data {
        Value::Number(number) => {
            out.push(number.as_f64().unwrap_or(f64::NAN));
            Ok(())
        }
        Value::Array(items) => items.iter().try_for_each(|item| json_numbers(item, out)),
        _ => Err("numeric data must be numbers".into()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn image_info() -> InputInfo {
        InputInfo {
            kind: InputKind::Image,
            name: "input-0".into(),
            shape: vec![1, 28, 28],
            feature_names: Vec::new(),
        }
    }

    fn input(datatype: &str, shape: &[i64], data: Value) -> InferInput {
        InferInput {
            name: "input-0".into(),
            shape: shape.to_vec(),
            datatype: datatype.into(),
            parameters: Default::default(),
            data: Some(data),
        }
    }

    #[test]
    fn shapes_match_with_minus_one_as_a_wildcard() {
        assert!(check_shape(&[-1], &[3]).is_ok());
        assert!(check_shape(&[2, 784], &[2, 784]).is_ok());
        assert!(check_shape(&[-1, 28, 28], &[5, 28, 28]).is_ok());
        assert!(check_shape(&[2, 784], &[3, 784]).is_err());
        assert!(check_shape(&[784], &[1, 784]).is_err());
        assert!(check_shape(&[-2], &[1]).is_err());
    }

    #[test]
    fn numeric_batches_of_each_instance_shape_are_read() {
        let info = image_info();
        for shape in [[2, 784].as_slice(), &[2, 28, 28], &[-1, 1, 28, 28]] {
            let read = instances(&input("FP32", shape, json!(vec![0.5; 1568])), &[], &info)
                .expect("two instances");
            assert_eq!(read.len(), 2, "{shape:?}");
        }
        for (shape, count) in [([3, 784], 1568), ([2, 784], 1567)] {
            assert!(
                instances(&input("FP32", &shape, json!(vec![0.5; count])), &[], &info).is_err()
            );
        }
        assert!(instances(&input("BF16", &[1, 784], json!(vec![0.5; 784])), &[], &info).is_err());
    }

    #[test]
    fn the_hint_names_the_models_shapes() {
        assert_eq!(
            hint(&image_info()),
            "send one input: BYTES of base64 images (shape [N]), or FP32/FP64/UINT8/INT32/INT64 of shape [N,784] or [N,28,28] or [N,1,28,28] (intensities 0..1 or 0..255)"
        );
        let features = InputInfo {
            kind: InputKind::Features,
            shape: vec![12],
            ..image_info()
        };
        assert_eq!(
            hint(&features),
            "send one input: FP32/FP64/UINT8/INT32/INT64 of shape [N,12]"
        );
        let bytes = input("BYTES", &[1], json!(["iVBORw0KGgo="]));
        assert!(instances(&bytes, &[], &features).is_err());
    }
}
