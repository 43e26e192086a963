//! Reading request bodies within the configured limits: size, multipart parts, JSON depth, time.

use actix_multipart::{Multipart, MultipartError};
use actix_web::error::PayloadError;
use actix_web::web::{self, Bytes, BytesMut};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::errors::{ApiError, UPLOAD_HINT};
use crate::settings::RequestLimits;

/// One part of a multipart body, read whole.
#[derive(Debug, Clone)]
pub struct Part {
    /// The part's form-field name (`""` when it has none).
    pub name: String,
    pub data: Bytes,
}

/// Reads every part of a multipart body, refusing more than `limits.max_multipart_parts` parts,
/// more than `limits.max_body_bytes` bytes, or a body slower than `limits.request_timeout`.
pub async fn read_multipart(
    mut multipart: Multipart,
    limits: &RequestLimits,
) -> Result<Vec<Part>, ApiError> {
    let read = async {
        let mut parts = Vec::new();
        let mut total = 0usize;
        while let Some(field) = multipart.next().await {
            let mut field = field.map_err(|err| multipart_error(&err, limits))?;
            if parts.len() == limits.max_multipart_parts {
                return Err(ApiError::BadRequest(format!(
                    "the multipart body has more than {} parts (setting limits.max_multipart_parts): {UPLOAD_HINT}",
                    limits.max_multipart_parts
                )));
            }
            let name = field.name().unwrap_or_default().to_owned();
            // A part that arrives in one chunk is kept as it is, without a copy.
            let mut data = Bytes::new();
            let mut joined: Option<BytesMut> = None;
            while let Some(chunk) = field.next().await {
                let chunk = chunk.map_err(|err| multipart_error(&err, limits))?;
                total = total.saturating_add(chunk.len());
                if total > limits.max_body_bytes {
                    return Err(ApiError::PayloadTooLarge {
                        limit: limits.max_body_bytes,
                    });
                }
                match joined.as_mut() {
                    Some(buffer) => buffer.extend_from_slice(&chunk),
                    None if data.is_empty() => data = chunk,
                    None => {
                        let mut buffer = BytesMut::from(&data[..]);
                        buffer.extend_from_slice(&chunk);
                        joined = Some(buffer);
                    }
                }
            }
            parts.push(Part {
                name,
                data: joined.map_or(data, BytesMut::freeze),
            });
        }
        Ok(parts)
    };
    actix_web::rt::time::timeout(limits.request_timeout, read)
        .await
        .map_err(|_| ApiError::Timeout {
            seconds: limits.request_timeout.as_secs(),
        })?
}

/// The request's `Content-Type`, lower-cased (empty when absent).
pub fn content_type(request: &actix_web::HttpRequest) -> String {
    request
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// The first part named one of `names`, in the order of `names`.
pub fn first_part<'a>(parts: &'a [Part], names: &[&str]) -> Option<&'a Part> {
    names
        .iter()
        .find_map(|name| parts.iter().find(|part| part.name == *name))
}

/// The text of the first part named `name`, if there is one.
pub fn text_part(parts: &[Part], name: &str) -> Result<Option<String>, ApiError> {
    first_part(parts, &[name])
        .map(|part| {
            std::str::from_utf8(&part.data)
                .map(|text| text.trim().to_owned())
                .map_err(|_| ApiError::BadRequest(format!("the field `{name}` must be text")))
        })
        .transpose()
}

/// A whole number; a 400 naming the field otherwise. (Its range is the model's to check.)
pub fn parse_number(value: &str, name: &str) -> Result<usize, ApiError> {
    value
        .trim()
        .parse::<usize>()
        .map_err(|_| ApiError::BadRequest(format!("{name} must be a whole number, got `{value}`")))
}

/// Turns multipart refusals into errors that say what to do.
fn multipart_error(err: &MultipartError, limits: &RequestLimits) -> ApiError {
    match err {
        MultipartError::ContentTypeMissing
        | MultipartError::ContentTypeParse
        | MultipartError::ContentTypeIncompatible => ApiError::UnsupportedMediaType(format!(
            "this route takes multipart/form-data: {UPLOAD_HINT}"
        )),
        err if is_overflow(err) => ApiError::PayloadTooLarge {
            limit: limits.max_body_bytes,
        },
        err => ApiError::BadRequest(format!("malformed multipart body ({err}): {UPLOAD_HINT}")),
    }
}

fn is_overflow(err: &MultipartError) -> bool {
    match err {
        MultipartError::Payload(PayloadError::Overflow) => true,
        MultipartError::Field { source, .. } => {
            source.as_error::<MultipartError>().is_some_and(is_overflow)
        }
        _ => false,
    }
}

/// Reads a whole non-multipart body, refusing more than `limits.max_body_bytes` bytes or a body
/// slower than `limits.request_timeout`.
pub async fn read_body(
    mut payload: web::Payload,
    limits: &RequestLimits,
) -> Result<Bytes, ApiError> {
    let read = async {
        let mut body = BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|err| match err {
                PayloadError::Overflow => ApiError::PayloadTooLarge {
                    limit: limits.max_body_bytes,
                },
                err => ApiError::BadRequest(format!("the request body could not be read: {err}")),
            })?;
            if body.len().saturating_add(chunk.len()) > limits.max_body_bytes {
                return Err(ApiError::PayloadTooLarge {
                    limit: limits.max_body_bytes,
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    };
    actix_web::rt::time::timeout(limits.request_timeout, read)
        .await
        .map_err(|_| ApiError::Timeout {
            seconds: limits.request_timeout.as_secs(),
        })?
}

/// Base64 (standard or URL-safe alphabet, padding optional, an optional `data:…;base64,` prefix).
pub fn decode_base64(text: &str) -> Result<Bytes, ApiError> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    use base64::Engine;
    let text = text.trim();
    let text = text.split_once(";base64,").map_or(text, |(_, data)| data);
    let text = text.trim_end_matches('=');
    STANDARD_NO_PAD
        .decode(text)
        .or_else(|_| URL_SAFE_NO_PAD.decode(text))
        .map(Bytes::from)
        .map_err(|err| {
            ApiError::BadRequest(format!(
                "the image is not valid base64 ({err}): encode the file's bytes with base64"
            ))
        })
}

/// Parses a JSON body after checking that it nests no deeper than `limits.max_json_depth`.
pub fn parse_json<T: DeserializeOwned>(body: &[u8], limits: &RequestLimits) -> Result<T, ApiError> {
    let depth = json_depth(body);
    if depth > limits.max_json_depth {
        return Err(ApiError::BadRequest(format!(
            "the JSON body nests {depth} levels deep, more than {} (setting limits.max_json_depth)",
            limits.max_json_depth
        )));
    }
    serde_json::from_slice(body).map_err(|err| {
        ApiError::BadRequest(format!("the body is not the JSON this route takes: {err}"))
    })
}

/// The deepest nesting of arrays and objects, found without parsing (strings skipped).
fn json_depth(body: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &byte in body {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {

    use super::*;

    fn limits() -> RequestLimits {
        RequestLimits::small()
    }

    #[test]
    fn base64_in_every_usual_spelling_decodes() {
        for text in [
            "iVBORw0KGgo=",
            "iVBORw0KGgo",
            " data:image/png;base64,iVBORw0KGgo=\n",
        ] {
            assert_eq!(
                decode_base64(text).ok().as_deref(),
                Some(&b"\x89PNG\r\n\x1a\n"[..]),
                "{text}"
            );
        }
        assert_eq!(
            decode_base64("-_8").ok().as_deref(),
            Some(&[0xfb, 0xff][..])
        );
        assert!(matches!(
            decode_base64("not base64!"),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[test]
    fn depth_counts_arrays_and_objects_but_not_brackets_in_strings() {
        assert_eq!(json_depth(b"42"), 0);
        assert_eq!(json_depth(br#"{"a": [1, [2]], "b": {}}"#), 3);
        assert_eq!(json_depth(br#"{"data": "[[[[[[\"]]]"}"#), 1);
        assert_eq!(json_depth(br#"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["#), 38);
    }

    #[test]
    fn deep_or_malformed_json_is_a_400_naming_the_problem() {
        let deep = "[".repeat(5) + &"]".repeat(5);
        match parse_json::<serde_json::Value>(deep.as_bytes(), &limits()) {
            Err(ApiError::BadRequest(message)) => {
                assert!(message.contains("limits.max_json_depth"), "{message}")
            }
            other => panic!("expected a 400, got {other:?}"),
        }
        match parse_json::<serde_json::Value>(br#"{"instances": ["#, &limits()) {
            Err(ApiError::BadRequest(message)) => assert!(message.contains("EOF"), "{message}"),
            other => panic!("expected a 400, got {other:?}"),
        }
        let value: serde_json::Value =
            parse_json(br#"{"instances": [[1, 2]]}"#, &limits()).expect("parses");
        assert_eq!(value["instances"][0][1], 2);
    }
}
