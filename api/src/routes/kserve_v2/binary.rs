//! Triton's binary tensor extension (what `tritonclient` sends by default): a body is the JSON
//! request, `Inference-Header-Content-Length` bytes long, followed by the tensors' raw bytes.

use actix_web::web::{Bytes, BytesMut};
use actix_web::HttpRequest;

use super::types::OutputData;
use crate::errors::ApiError;
use crate::instance::Instance;
use crate::upload::decode_base64;

/// The header that splits a body into its JSON part and its tensor bytes.
pub const HEADER_LENGTH: &str = "Inference-Header-Content-Length";

/// The JSON part and the binary tensor bytes of a body (all JSON without the extension's header).
pub fn split<'a>(request: &HttpRequest, body: &'a Bytes) -> Result<(&'a [u8], &'a [u8]), ApiError> {
    let Some(length) = request.headers().get(HEADER_LENGTH) else {
        return Ok((body, &[]));
    };
    let length: usize = length
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .ok_or_else(|| ApiError::BadRequest(format!("{HEADER_LENGTH} must be a byte count")))?;
    if length > body.len() {
        return Err(ApiError::BadRequest(format!(
            "{HEADER_LENGTH} is {length}, but the body has {} bytes",
            body.len()
        )));
    }
    Ok(body.split_at(length))
}

/// BYTES elements: each a 4-byte little-endian length, then its bytes (an image file, or its
/// base64 text).
pub fn elements(mut raw: &[u8]) -> Result<Vec<Instance>, String> {
    let mut files = Vec::new();
    while !raw.is_empty() {
        let (length, rest) = raw
            .split_first_chunk::<4>()
            .ok_or("a BYTES element's length is cut short")?;
        let length = u32::from_le_bytes(*length) as usize;
        let element = rest
            .get(..length)
            .ok_or_else(|| format!("a BYTES element of {length} bytes is cut short"))?;
        let file = std::str::from_utf8(element)
            .ok()
            .and_then(|text| decode_base64(text).ok())
            .unwrap_or_else(|| Bytes::copy_from_slice(element));
        files.push(Instance::File(file));
        raw = rest.get(length..).unwrap_or_default();
    }
    Ok(files)
}

/// Little-endian numbers of `datatype`.
pub fn numbers(raw: &[u8], datatype: &str) -> Result<Vec<f64>, String> {
    fn read<const N: usize>(raw: &[u8], convert: fn([u8; N]) -> f64) -> Result<Vec<f64>, String> {
        if !raw.len().is_multiple_of(N) {
            return Err(format!("{} bytes are not whole {N}-byte values", raw.len()));
        }
        Ok(raw
            .chunks_exact(N)
            .map(|chunk| chunk.try_into().map_or(f64::NAN, convert))
            .collect())
    }
    match datatype {
        "FP32" => read::<4>(raw, |b| f64::from(f32::from_le_bytes(b))),
        "FP64" => read::<8>(raw, f64::from_le_bytes),
        "UINT8" => read::<1>(raw, |b| f64::from(b[0])),
        "INT32" => read::<4>(raw, |b| f64::from(i32::from_le_bytes(b))),
        "INT64" => read::<8>(raw, |b| i64::from_le_bytes(b) as f64),
        other => Err(format!("datatype {other} is not supported")),
    }
}

/// Appends an output's values, little-endian; returns how many bytes they took.
pub fn append(binary: &mut BytesMut, data: OutputData<'_>) -> usize {
    let before = binary.len();
    match data {
        OutputData::Int64(values) => values
            .iter()
            .for_each(|v| binary.extend_from_slice(&v.to_le_bytes())),
        OutputData::Fp32(values) => values
            .iter()
            .for_each(|v| binary.extend_from_slice(&v.to_le_bytes())),
        OutputData::Fp64(values) => values
            .iter()
            .for_each(|&v| binary.extend_from_slice(&f64::from(v).to_le_bytes())),
    }
    binary.len() - before
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_and_numbers_are_read_and_cut_ones_refused() {
        let mut raw = Vec::new();
        for element in [&b"\x89PNG"[..], b"iVBORw0KGgo="] {
            raw.extend_from_slice(&(element.len() as u32).to_le_bytes());
            raw.extend_from_slice(element);
        }
        let files = elements(&raw).expect("two elements");
        assert!(matches!(&files[..], [Instance::File(a), Instance::File(b)]
            if a.as_ref() == b"\x89PNG" && b.as_ref() == b"\x89PNG\r\n\x1a\n"));
        assert!(elements(&raw[..raw.len() - 1]).is_err());
        assert!(elements(&[1, 0]).is_err());

        let floats: Vec<u8> = [0.5f32, 1.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(numbers(&floats, "FP32"), Ok(vec![0.5, 1.0]));
        assert_eq!(numbers(&[0, 255], "UINT8"), Ok(vec![0.0, 255.0]));
        assert!(numbers(&floats[..7], "FP32").is_err());
        assert!(numbers(&floats, "BF16").is_err());
    }

    #[test]
    fn outputs_are_appended_little_endian() {
        let mut binary = BytesMut::new();
        assert_eq!(append(&mut binary, OutputData::Int64(&[7])), 8);
        assert_eq!(append(&mut binary, OutputData::Fp32(&[1.0])), 4);
        assert_eq!(&binary[..], &[7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x3f]);
        assert_eq!(append(&mut binary, OutputData::Fp64(&[-2.0])), 8);
        assert_eq!(&binary[12..], &(-2.0f64).to_le_bytes());
    }
}
