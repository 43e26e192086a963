//! The MAX routes' options (`top_k`, `target`, `steps`, `format`; `format` also on TorchServe's
//! `/explanations`), read from the query string or
//! the form, as MAX's request parsers read both. An option given both ways with different values
//! is refused rather than one of them silently winning. The query string is read by the one rule
//! of [`Parameters`]: a name the route does not take is a 400.

use actix_web::http::header::ACCEPT;
use actix_web::HttpRequest;

use crate::errors::ApiError;
use crate::parameters::Parameters;
use crate::upload::{parse_number, text_part, Part};

/// The options of `/model/predict`.
pub const PREDICT_OPTIONS: &[&str] = &["top_k"];
/// The options of `/model/explain`.
pub const EXPLAIN_OPTIONS: &[&str] = &["target", "steps", "format"];
/// The options of TorchServe's `/explanations/{model}` (its own `target` is in the body).
pub const EXPLANATIONS_OPTIONS: &[&str] = &["format"];

pub struct Options<'a> {
    query: Parameters,
    parts: &'a [Part],
}

impl<'a> Options<'a> {
    /// The options of a request to a route that takes `known`.
    pub fn new(request: &HttpRequest, parts: &'a [Part], known: &[&str]) -> Result<Self, ApiError> {
        let query = Parameters::from_query(request.query_string(), known)?;
        Ok(Self { query, parts })
    }

    /// The option's text, from the query string or the form.
    pub fn text(&self, name: &str) -> Result<Option<String>, ApiError> {
        let from_query = self.query.text(name).map(|value| value.trim().to_owned());
        let from_form = text_part(self.parts, name)?;
        match (from_query, from_form) {
            (Some(query), Some(form)) if query != form => Err(ApiError::BadRequest(format!(
                "{name} is `{query}` in the query string and `{form}` in the form: give it once"
            ))),
            (query, form) => Ok(query.or(form)),
        }
    }

    /// The option as a whole number.
    pub fn number(&self, name: &str) -> Result<Option<usize>, ApiError> {
        self.text(name)?
            .map(|value| parse_number(&value, name))
            .transpose()
    }

    /// Whether the answer should be a picture: `format=png`, or, without `format`, an `Accept`
    /// header that names `image/png` (a browser's `*/*` does not count).
    pub fn wants_png(&self, request: &HttpRequest) -> Result<bool, ApiError> {
        match self
            .text("format")?
            .map(|f| f.to_ascii_lowercase())
            .as_deref()
        {
            Some("png") => Ok(true),
            Some("json") => Ok(false),
            Some(other) => Err(ApiError::BadRequest(format!(
                "format must be `json` or `png`, got `{other}`"
            ))),
            None => Ok(request
                .headers()
                .get(ACCEPT)
                .and_then(|value| value.to_str().ok())
                .is_some_and(|accept| accept.to_ascii_lowercase().contains("image/png"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;
    use actix_web::web::Bytes;

    use super::*;

    fn part(name: &str, data: &str) -> Part {
        Part {
            name: name.into(),
            data: Bytes::copy_from_slice(data.as_bytes()),
        }
    }

    const KNOWN: &[&str] = &["top_k", "steps", "target", "format"];

    #[test]
    fn options_come_from_the_query_or_the_form_and_must_agree() {
        let request = TestRequest::with_uri("/model/predict?top_k=3&steps=15").to_http_request();
        let parts = [part("top_k", " 3 "), part("target", "7")];
        let options = Options::new(&request, &parts, KNOWN).expect("reads");
        assert_eq!(options.number("top_k").ok(), Some(Some(3)));
        assert_eq!(options.number("steps").ok(), Some(Some(15)));
        assert_eq!(options.number("target").ok(), Some(Some(7)));
        assert_eq!(options.number("format").ok(), Some(None));
        let conflicting = [part("top_k", "4")];
        let options = Options::new(&request, &conflicting, KNOWN).expect("reads");
        match options.number("top_k") {
            Err(ApiError::BadRequest(message)) => {
                assert!(
                    message.contains("`3` in the query string and `4` in the form"),
                    "{message}"
                )
            }
            other => panic!("expected a 400, got {other:?}"),
        }
        let bad = [part("steps", "many")];
        let plain = TestRequest::with_uri("/model/explain").to_http_request();
        assert!(Options::new(&plain, &bad, KNOWN)
            .expect("reads")
            .number("steps")
            .is_err());
    }

    #[test]
    fn a_query_parameter_the_route_does_not_take_is_refused_and_the_first_value_counts() {
        let request = TestRequest::with_uri("/model/predict?topk=3").to_http_request();
        match Options::new(&request, &[], PREDICT_OPTIONS) {
            Err(ApiError::BadRequest(message)) => assert!(
                message.contains("unknown parameter `topk`: this route takes top_k"),
                "{message}"
            ),
            Err(other) => panic!("expected a 400, got {other:?}"),
            Ok(_) => panic!("expected a 400, got options"),
        }
        let request = TestRequest::with_uri("/model/predict?top_k=2&top_k=5").to_http_request();
        let options = Options::new(&request, &[], PREDICT_OPTIONS).expect("reads");
        assert_eq!(options.number("top_k").ok(), Some(Some(2)));
    }

    #[test]
    fn a_picture_is_asked_for_by_format_or_accept() {
        let with = |uri: &str, accept: &str| {
            let request = TestRequest::with_uri(uri)
                .insert_header((ACCEPT, accept))
                .to_http_request();
            Options::new(&request, &[], EXPLAIN_OPTIONS).and_then(|o| o.wants_png(&request))
        };
        assert!(with("/model/explain?format=png", "*/*").expect("png"));
        assert!(!with("/model/explain?format=json", "image/png").expect("json"));
        assert!(with("/model/explain", "image/png").expect("accept"));
        assert!(!with("/model/explain", "*/*").expect("json"));
        assert!(with("/model/explain?format=gif", "*/*").is_err());
    }
}
