//! The bearer tokens: `--inference-token`/`INFERENCE_TOKEN`, `--management-token`/
//! `MANAGEMENT_TOKEN`, and TorchServe's `key_file.json` (`--token-file`), whose keys the first
//! two override. Only the tokens' digests are kept; an empty one is refused, since it would mean
//! "no protection" while looking like some.

use std::path::Path;

use anyhow::{bail, Context};
use max_mnist_api::{AuthSettings, Token};
use serde::Deserialize;

use crate::cli::TokenArgs;

/// TorchServe 0.12's `key_file.json`; its `API` key and expiration times are not used.
#[derive(Deserialize)]
struct KeyFile {
    inference: Option<Key>,
    management: Option<Key>,
}

#[derive(Deserialize)]
struct Key {
    key: String,
}

pub fn auth_settings(args: &TokenArgs) -> anyhow::Result<AuthSettings> {
    let file = match &args.token_file {
        Some(path) => read_key_file(path)?,
        None => KeyFile {
            inference: None,
            management: None,
        },
    };
    let inference = args
        .inference_token
        .clone()
        .or(file.inference.map(|key| key.key));
    let management = args
        .management_token
        .clone()
        .or(file.management.map(|key| key.key));
    Ok(AuthSettings {
        inference: token(inference, "inference")?,
        management: token(management, "management")?,
    })
}

fn read_key_file(path: &Path) -> anyhow::Result<KeyFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the token file {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "the token file {} is not TorchServe's key_file.json: write {{\"inference\": {{\"key\": \"…\"}}, \"management\": {{\"key\": \"…\"}}}}",
            path.display()
        )
    })
}

fn token(secret: Option<String>, which: &str) -> anyhow::Result<Option<Token>> {
    match secret {
        None => Ok(None),
        Some(secret) => match Token::new(&secret) {
            Some(token) => Ok(Some(token)),
            None => bail!(
                "the {which} token is empty: set a long random one (e.g. `openssl rand -hex 32`), or leave it unset to keep that API open"
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_key_file_and_empty_tokens_are_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("key_file.json");
        std::fs::write(
            &path,
            r#"{"management": {"key": "m-key", "expiration time": "2024-02-16T21:12:24.801167Z"},
                "inference": {"key": "i-key"}, "API": {"key": "a-key"}}"#,
        )
        .expect("write");
        let mut args = TokenArgs {
            token_file: Some(path.clone()),
            ..TokenArgs::default()
        };
        let auth = auth_settings(&args).expect("reads");
        assert!(auth.inference.expect("inference").matches(b"i-key"));
        assert!(auth.management.expect("management").matches(b"m-key"));

        args.inference_token = Some("flag-key".into());
        let auth = auth_settings(&args).expect("reads");
        assert!(auth.inference.expect("inference").matches(b"flag-key"));

        args.management_token = Some(" ".into());
        let err = auth_settings(&args).expect_err("empty");
        assert!(format!("{err:#}").contains("management token is empty"));

        std::fs::write(&path, "not json").expect("write");
        let err = auth_settings(&TokenArgs {
            token_file: Some(path),
            ..TokenArgs::default()
        })
        .expect_err("not a key file");
        assert!(format!("{err:#}").contains("key_file.json"));
        assert!(auth_settings(&TokenArgs::default())
            .expect("none")
            .inference
            .is_none());
    }
}
