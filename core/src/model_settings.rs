//! What a network file cannot say about itself, given beside it: in a `.mar` as the extra file
//! `max-mnist.toml`, in the configuration as a `[[models]]` entry's `settings`. The graph gives the
//! input and output shapes; these give the handler, what the outputs are, the image pre-processing
//! and the feature names. Every key is optional.

use serde::Deserialize;

use crate::model::OutputKind;
use crate::WeightsError;

/// The file a `.mar` carries them in (`torch-model-archiver --extra-files max-mnist.toml`).
pub const SETTINGS_FILE: &str = "max-mnist.toml";

/// TorchServe's handler whose pre- and post-processing the server reproduces: resize the shorter
/// side to 256 (bilinear), centre-crop 224, ImageNet mean and std, softmax, the top 5 labels.
pub const IMAGE_CLASSIFIER: &str = "image_classifier";

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSettings {
    /// A TorchServe handler name (a `.mar` manifest's `handler` when this file does not say).
    pub handler: Option<String>,
    /// What the network's first output holds; by default read from its name (`logits`,
    /// `probabilities`, `log_probabilities`), else logits.
    pub output: Option<OutputKind>,
    /// How many labelled classes TorchServe's predictions route answers (`{"tabby": 0.41, …}`);
    /// without it, the class number (images) or the label (features).
    pub top_k: Option<usize>,
    /// The names of a features model's inputs, in order; by default `feature_0`, `feature_1`, ….
    pub feature_names: Option<Vec<String>>,
    #[serde(default)]
    pub image: ImageSettings,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSettings {
    /// Resize the shorter side to this many pixels, then centre-crop to the graph's height and
    /// width; without it, resize straight to the graph's height and width.
    pub resize: Option<u32>,
    /// Per channel, subtracted from the 0..1 intensities (default 0).
    pub mean: Option<Vec<f32>>,
    /// Per channel, divided into them (default 1).
    pub std: Option<Vec<f32>>,
    /// Make any picture an MNIST digit the way MNIST was made (ink bright on black, centred by
    /// mass in 28×28), as the digit networks do; `mean` and `std` then have one value each.
    #[serde(default)]
    pub mnist: bool,
}

impl ModelSettings {
    /// Settings from TOML text; `origin` names where it came from in messages.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, WeightsError> {
        toml::from_str(text).map_err(|err| {
            WeightsError::Settings(format!("{origin}: {}", err.message().trim_end()))
        })
    }

    /// These settings, with `base`'s where these say nothing.
    pub fn or(self, base: Self) -> Self {
        Self {
            handler: self.handler.or(base.handler),
            output: self.output.or(base.output),
            top_k: self.top_k.or(base.top_k),
            feature_names: self.feature_names.or(base.feature_names),
            image: ImageSettings {
                resize: self.image.resize.or(base.image.resize),
                mean: self.image.mean.or(base.image.mean),
                std: self.image.std.or(base.image.std),
                mnist: self.image.mnist || base.image.mnist,
            },
        }
    }

    /// Whether the handler is TorchServe's `image_classifier`.
    pub fn is_image_classifier(&self) -> bool {
        self.handler.as_deref() == Some(IMAGE_CLASSIFIER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_read_and_unknown_keys_are_refused() {
        let settings = ModelSettings::from_toml(
            r#"handler = "image_classifier"
output = "log_probabilities"
top_k = 3
feature_names = ["a", "b"]
[image]
resize = 256
mean = [0.5]
std = [0.25]
mnist = true
"#,
            "max-mnist.toml",
        )
        .expect("valid");
        assert!(settings.is_image_classifier());
        assert_eq!(settings.output, Some(OutputKind::LogProbabilities));
        assert_eq!(settings.image.resize, Some(256));
        assert!(settings.image.mnist);
        let refused = ModelSettings::from_toml("sizes = 3", "max-mnist.toml")
            .expect_err("unknown key")
            .to_string();
        assert!(
            refused.contains("max-mnist.toml") && refused.contains("sizes"),
            "{refused}"
        );
    }

    #[test]
    fn the_first_settings_win_over_the_base() {
        let configured = ModelSettings {
            top_k: Some(2),
            ..ModelSettings::default()
        };
        let archived = ModelSettings {
            handler: Some(IMAGE_CLASSIFIER.into()),
            top_k: Some(5),
            ..ModelSettings::default()
        };
        let merged = configured.or(archived);
        assert_eq!(merged.top_k, Some(2));
        assert!(merged.is_image_classifier());
    }
}
