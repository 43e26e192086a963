//! Reading request bodies within the configured limits: size, number of multipart parts, time.

use actix_multipart::{Multipart, MultipartError};
use actix_web::error::PayloadError;
use actix_web::web::{Bytes, BytesMut};
use futures_util::StreamExt;

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
            let mut data = BytesMut::new();
            while let Some(chunk) = field.next().await {
                let chunk = chunk.map_err(|err| multipart_error(&err, limits))?;
                total = total.saturating_add(chunk.len());
                if total > limits.max_body_bytes {
                    return Err(ApiError::PayloadTooLarge {
                        limit: limits.max_body_bytes,
                    });
                }
                data.extend_from_slice(&chunk);
            }
            parts.push(Part {
                name,
                data: data.freeze(),
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

/// The first part named one of `names`, in the order of `names`.
pub fn first_part<'a>(parts: &'a [Part], names: &[&str]) -> Option<&'a Part> {
    names
        .iter()
        .find_map(|name| parts.iter().find(|part| part.name == *name))
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
