//! A request's parameters (its query string, or the management API's JSON body), one rule for
//! every route that takes any: a name the route does not take is refused with a 400 naming the
//! ones it does, so that a misspelt parameter (`modle_name`, `topk`) does not pass unnoticed; the
//! first value of a name counts (as TorchServe's `NettyUtils.getParameter` and Flask's
//! `request.args.get` take it), the others are logged, once. The management API reads numbers and
//! booleans as TorchServe does (`getIntParameter`, Java's `Boolean.parseBoolean`): a number that
//! is empty or does not parse as a Java `int` is the default, and any boolean but `true` (in any
//! case) is false, each value set aside logged.

use crate::errors::ApiError;
use crate::settings::RequestLimits;
use crate::upload::parse_json;

pub struct Parameters {
    /// In the order given; a name may come more than once (the first counts).
    pairs: Vec<(String, String)>,
}

impl Parameters {
    /// The query string's parameters, each one of `known`.
    pub fn from_query(query: &str, known: &[&str]) -> Result<Self, ApiError> {
        let pairs = actix_web::web::Query::<Vec<(String, String)>>::from_query(query)
            .map_err(|err| ApiError::BadRequest(format!("the query string cannot be read: {err}")))?
            .into_inner();
        Self::checked(pairs, known)
    }

    /// A JSON object's members as parameters (TorchServe's `RegisterModelRequest` read from a
    /// JSON body): strings as they are, numbers and booleans as they are written.
    pub fn from_json(
        body: &[u8],
        known: &[&str],
        limits: &RequestLimits,
    ) -> Result<Self, ApiError> {
        let object: serde_json::Map<String, serde_json::Value> = parse_json(body, limits)?;
        let mut pairs = Vec::with_capacity(object.len());
        for (key, value) in object {
            let text = match value {
                serde_json::Value::Null => continue,
                serde_json::Value::String(text) => text,
                serde_json::Value::Bool(flag) => flag.to_string(),
                serde_json::Value::Number(number) => number.to_string(),
                serde_json::Value::Array(_) | serde_json::Value::Object(_) => {
                    return Err(ApiError::BadRequest(format!(
                        "`{key}` is a JSON array or object: give a string, a number or a boolean"
                    )))
                }
            };
            pairs.push((key, text));
        }
        Self::checked(pairs, known)
    }

    fn checked(pairs: Vec<(String, String)>, known: &[&str]) -> Result<Self, ApiError> {
        if let Some((key, _)) = pairs.iter().find(|(key, _)| !known.contains(&key.as_str())) {
            let takes = if known.is_empty() {
                "this route takes no parameter".to_owned()
            } else {
                format!("this route takes {}", known.join(", "))
            };
            return Err(ApiError::BadRequest(format!(
                "unknown parameter `{key}`: {takes}"
            )));
        }
        for key in known {
            let given: Vec<&str> = pairs
                .iter()
                .filter(|(name, _)| name == key)
                .map(|(_, value)| value.as_str())
                .collect();
            if let [first, _, ..] = given.as_slice() {
                log::warn!(
                    "`{key}` is given {} times: the first, `{}`, is used, as TorchServe does",
                    given.len(),
                    first.escape_debug()
                );
            }
        }
        Ok(Self { pairs })
    }

    /// The first value of `key`, as given (possibly empty).
    pub fn text(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }

    /// `key` as a Java `int`, or `default` when it is absent, empty or not one.
    pub fn int(&self, key: &str, default: i32) -> i32 {
        let Some(value) = self.text(key) else {
            return default;
        };
        value.parse().unwrap_or_else(|_| {
            log::warn!(
                "`{key}={}` is not a whole number: it is ignored and the default used, as TorchServe does",
                value.escape_debug()
            );
            default
        })
    }

    /// `key` as `Boolean.parseBoolean` reads it: `true` in any case is true, anything else
    /// false; `default` when it is absent.
    pub fn flag(&self, key: &str, default: bool) -> bool {
        let Some(value) = self.text(key) else {
            return default;
        };
        if value.eq_ignore_ascii_case("true") {
            return true;
        }
        if !value.eq_ignore_ascii_case("false") {
            log::warn!(
                "`{key}={}` is not true or false: it is read as false, as TorchServe does",
                value.escape_debug()
            );
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[&str] = &["limit", "synchronous", "url"];

    fn query(text: &str) -> Parameters {
        Parameters::from_query(text, KNOWN).expect("known parameters")
    }

    #[test]
    fn numbers_fall_back_as_get_int_parameter_does() {
        for (text, expected) in [
            ("limit=7", 7),
            ("limit=%2B7", 7),
            ("limit=+7", 100),
            ("limit=-1", -1),
            ("limit=", 100),
            ("limit", 100),
            ("limit=dd", 100),
            ("limit=7.0", 100),
            ("limit=%207", 100),
            ("limit=2147483648", 100),
            ("", 100),
            ("limit=3&limit=9", 3),
        ] {
            assert_eq!(query(text).int("limit", 100), expected, "{text}");
        }
    }

    #[test]
    fn booleans_are_true_only_when_they_say_true() {
        for (text, default, expected) in [
            ("synchronous=true", false, true),
            ("synchronous=TRUE", false, true),
            ("synchronous=false", true, false),
            ("synchronous=Nan", true, false),
            ("synchronous=", true, false),
            ("synchronous=1", true, false),
            ("", true, true),
            ("", false, false),
        ] {
            assert_eq!(query(text).flag("synchronous", default), expected, "{text}");
        }
    }

    #[test]
    fn unknown_names_are_refused_and_json_members_are_parameters() {
        let refused = Parameters::from_query("modle_name=x", KNOWN).err();
        assert!(
            matches!(refused, Some(ApiError::BadRequest(ref m)) if m.contains("`modle_name`") && m.contains("limit, synchronous, url")),
            "{refused:?}"
        );
        let limits = RequestLimits::small();
        let body = br#"{"url":"mnist.mar","limit":4,"synchronous":false,"model_name":null}"#;
        let refused = Parameters::from_json(body, KNOWN, &limits).err();
        assert!(refused.is_none(), "null members are absent: {refused:?}");
        let json = Parameters::from_json(&body[..], KNOWN, &limits).expect("JSON parameters");
        assert_eq!(json.text("url"), Some("mnist.mar"));
        assert_eq!(json.int("limit", 100), 4);
        assert!(!json.flag("synchronous", true));
        assert!(Parameters::from_json(br#"{"url":["a"]}"#, KNOWN, &limits).is_err());
        assert!(Parameters::from_json(b"[1]", KNOWN, &limits).is_err());
    }
}
