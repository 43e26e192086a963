//! The image models' pipeline, from an instance to the network's input: bounded decoding, MNIST
//! format (as it is, or made the way MNIST was made), then the input transform; or the same
//! transform on a tensor of intensities.

use std::io::Cursor;

use image::{DynamicImage, GenericImageView, ImageReader};

use crate::model::{InputInfo, ModelInput, RawInput};
use crate::{heatmap, normalise, CoreError, InputError};

/// Side of the MNIST canvas, in pixels.
pub const MNIST_SIDE: usize = 28;
/// Pixels of one MNIST image.
pub const MNIST_PIXELS: usize = MNIST_SIDE * MNIST_SIDE;

/// torchvision's `ToTensor()` then `Normalize((mean,), (std,))`, in `f32` as PyTorch computes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalisation {
    pub mean: f32,
    pub std: f32,
}

impl Normalisation {
    /// An intensity in 0..1 (what `ToTensor` makes of a pixel) → the network's value.
    pub fn apply(self, intensity: f32) -> f32 {
        (intensity - self.mean) / self.std
    }

    pub fn pixel(self, pixel: u8) -> f32 {
        self.apply(f32::from(pixel) / 255.0)
    }

    /// The network's value → the intensity in 0..1 it came from.
    pub fn intensity(self, value: f32) -> f32 {
        value * self.std + self.mean
    }
}

/// What an image model does to an instance before its network, and to an explanation after it.
#[derive(Debug, Clone)]
pub struct ImagePipeline {
    pub limits: ImageLimits,
    pub normalisation: Normalisation,
}

impl ImagePipeline {
    /// An image file, or a tensor of intensities (in 0..1 as `ToTensor` makes them, or 0..255 when
    /// any value exceeds 1), as the network's input.
    pub fn pre_process(
        &self,
        raw: RawInput<'_>,
        info: &InputInfo,
    ) -> Result<ModelInput, CoreError> {
        let transform = |pixel| self.normalisation.pixel(pixel);
        match raw {
            RawInput::Record(_) => Err(InputError::WrongKind {
                expected: "an image (a file, or intensities of shape [28,28], [1,28,28] or [784])",
                found: "a record of named fields",
            }
            .into()),
            RawInput::File(bytes) => {
                let pixels = to_mnist_pixels(decode(bytes, &self.limits)?);
                Ok(ModelInput(pixels.iter().copied().map(transform).collect()))
            }
            RawInput::Tensor(values) => {
                info.check_len(values.len())?;
                if let Some(&bad) = values.iter().find(|v| !(0.0..=255.0).contains(*v)) {
                    return Err(InputError::TensorValue { value: bad }.into());
                }
                let scale = if values.iter().any(|&v| v > 1.0) {
                    255.0
                } else {
                    1.0
                };
                Ok(ModelInput(
                    values
                        .iter()
                        .map(|&v| self.normalisation.apply((v / scale) as f32))
                        .collect(),
                ))
            }
        }
    }

    /// The heatmap of an explanation, over the image the network saw.
    pub fn heatmap_png(
        &self,
        input: &ModelInput,
        attributions: &[f32],
    ) -> Result<Vec<u8>, CoreError> {
        let intensities: Vec<f32> = input
            .0
            .iter()
            .map(|&v| self.normalisation.intensity(v))
            .collect();
        heatmap::heatmap_png(&intensities, attributions, MNIST_SIDE)
    }
}

/// Bounds on decoding, so that no upload can exhaust memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageLimits {
    /// Largest width × height accepted.
    pub max_image_pixels: u64,
    /// Longest side accepted, in pixels.
    pub max_image_side: u32,
    /// Most memory a decoder may allocate, in bytes.
    pub max_decoder_bytes: u64,
}

impl Default for ImageLimits {
    fn default() -> Self {
        Self {
            max_image_pixels: 40_000_000,
            max_image_side: 16_384,
            max_decoder_bytes: 64 << 20,
        }
    }
}

/// Decodes PNG, JPEG, GIF (first frame), BMP, WebP or TIFF within `limits`.
pub fn decode(bytes: &[u8], limits: &ImageLimits) -> Result<DynamicImage, InputError> {
    if bytes.is_empty() {
        return Err(InputError::Empty);
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|err| InputError::Undecodable(err.to_string()))?;
    if reader.format().is_none() {
        return Err(match document_kind(bytes) {
            Some(kind) => InputError::NotRaster(kind),
            None => InputError::UnrecognisedFormat,
        });
    }
    // A second guard: decoders that honour `max_alloc` also bound their working memory.
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_alloc = Some(limits.max_decoder_bytes);
    reader.limits(decoder_limits);
    let decoder = reader
        .into_decoder()
        .map_err(|err| decode_error(err, limits))?;
    let (width, height) = image::ImageDecoder::dimensions(&decoder);
    if width == 0 || height == 0 {
        return Err(InputError::ZeroSize { width, height });
    }
    if width.max(height) > limits.max_image_side {
        return Err(InputError::SideTooLong {
            width,
            height,
            limit: limits.max_image_side,
        });
    }
    if u64::from(width) * u64::from(height) > limits.max_image_pixels {
        return Err(InputError::TooManyPixels {
            width,
            height,
            limit: limits.max_image_pixels,
        });
    }
    if image::ImageDecoder::total_bytes(&decoder) > limits.max_decoder_bytes {
        return Err(InputError::DecoderMemory {
            limit: limits.max_decoder_bytes,
        });
    }
    DynamicImage::from_decoder(decoder).map_err(|err| decode_error(err, limits))
}

/// Width × height as an encoded image's header declares them, read without decoding the image;
/// `None` when no header can be read (decoding then fails as fast). Lets a caller tell cheap
/// images from expensive ones before it spends anything on them.
pub fn declared_pixels(bytes: &[u8]) -> Option<u64> {
    let (width, height) = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .ok()?
        .into_dimensions()
        .ok()?;
    Some(u64::from(width) * u64::from(height))
}

/// Vector drawings and documents people send for a digit: named, so the answer can say what to do.
fn document_kind(bytes: &[u8]) -> Option<&'static str> {
    let head = &bytes[..bytes.len().min(1024)];
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    let text = text.trim_start_matches('\u{feff}').trim_start();
    if text.starts_with("%pdf-") {
        Some("a PDF document")
    } else if text.starts_with('<') && text.contains("<svg") {
        Some("an SVG drawing")
    } else {
        None
    }
}

fn decode_error(err: image::ImageError, limits: &ImageLimits) -> InputError {
    match err {
        image::ImageError::Limits(_) => InputError::DecoderMemory {
            limit: limits.max_decoder_bytes,
        },
        image::ImageError::Unsupported(_) => InputError::UnrecognisedFormat,
        other => InputError::Undecodable(other.to_string()),
    }
}

/// The 28×28 grayscale pixels (ink bright on black, as in MNIST) that the model sees.
///
/// A 28×28 single-channel image is MNIST format and is taken as it is: that reproduces the upstream
/// logits. Anything else is normalised the way MNIST was made ([`normalise::mnist_style`]).
pub fn to_mnist_pixels(image: DynamicImage) -> [u8; MNIST_PIXELS] {
    let side = MNIST_SIDE as u32;
    let single_channel = matches!(
        image,
        DynamicImage::ImageLuma8(_) | DynamicImage::ImageLuma16(_)
    );
    if !(single_channel && image.dimensions() == (side, side)) {
        return normalise::mnist_style(image);
    }
    let mut pixels = [0u8; MNIST_PIXELS];
    match image {
        DynamicImage::ImageLuma8(gray) => pixels.copy_from_slice(gray.as_raw()),
        other => pixels.copy_from_slice(other.to_luma8().as_raw()),
    }
    pixels
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, ImageFormat, Luma};

    fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut bytes = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut bytes), format)
            .expect("encode");
        bytes
    }

    const MAX: Normalisation = Normalisation {
        mean: 0.5,
        std: 0.5,
    };

    fn pipeline() -> ImagePipeline {
        ImagePipeline {
            limits: ImageLimits::default(),
            normalisation: MAX,
        }
    }

    fn image_info() -> InputInfo {
        InputInfo {
            kind: crate::model::InputKind::Image,
            name: "input-0".into(),
            shape: vec![1, MNIST_SIDE, MNIST_SIDE],
            feature_names: Vec::new(),
        }
    }

    #[test]
    fn the_input_transform_maps_black_to_minus_one_and_white_to_one() {
        assert_eq!(MAX.pixel(0), -1.0);
        assert_eq!(MAX.pixel(255), 1.0);
        assert_eq!(MAX.intensity(MAX.pixel(255)), 1.0);
        let torchserve = Normalisation {
            mean: 0.1307,
            std: 0.3081,
        };
        assert!((torchserve.pixel(0) + 0.424_212_9).abs() < 1e-6);
    }

    #[test]
    fn numeric_instances_in_0_1_or_0_255_match_the_image_path() {
        let pixels: [u8; MNIST_PIXELS] = std::array::from_fn(|i| (i * 7 % 256) as u8);
        let gray = image::GrayImage::from_raw(28, 28, pixels.to_vec()).expect("28×28");
        let png = encode(&DynamicImage::ImageLuma8(gray), ImageFormat::Png);
        let from_image = pipeline()
            .pre_process(RawInput::File(&png), &image_info())
            .expect("decodes");
        let unit: Vec<f64> = pixels.iter().map(|&p| f64::from(p) / 255.0).collect();
        let bytes: Vec<f64> = pixels.iter().map(|&p| f64::from(p)).collect();
        for values in [unit, bytes] {
            let input = pipeline()
                .pre_process(RawInput::Tensor(&values), &image_info())
                .expect("valid");
            let worst = input
                .0
                .iter()
                .zip(&from_image.0)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst < 1e-6, "{worst}");
        }
    }

    #[test]
    fn numeric_instances_of_the_wrong_size_or_range_are_refused() {
        let refused = |values: &[f64]| {
            pipeline()
                .pre_process(RawInput::Tensor(values), &image_info())
                .expect_err("refused")
        };
        assert!(matches!(
            refused(&[0.5; 783]),
            CoreError::Input(InputError::TensorSize {
                found: 783,
                expected: 784,
                ..
            })
        ));
        for bad in [-0.1, 256.0, f64::NAN, f64::INFINITY] {
            let mut values = vec![0.0; MNIST_PIXELS];
            values[100] = bad;
            assert!(
                matches!(
                    refused(&values),
                    CoreError::Input(InputError::TensorValue { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_28_by_28_gray_image_is_taken_untouched() {
        let gray = GrayImage::from_fn(28, 28, |x, y| Luma([(x * 9 + y) as u8]));
        let png = encode(&DynamicImage::ImageLuma8(gray.clone()), ImageFormat::Png);
        let decoded = decode(&png, &ImageLimits::default()).expect("decodes");
        assert_eq!(
            to_mnist_pixels(decoded).as_slice(),
            gray.as_raw().as_slice()
        );
    }

    #[test]
    fn a_28_by_28_colour_image_is_normalised() {
        let mut rgb = image::RgbImage::from_pixel(28, 28, image::Rgb([250, 250, 250]));
        for y in 4..10 {
            for x in 2..5 {
                rgb.put_pixel(x, y, image::Rgb([10, 10, 10]));
            }
        }
        let pixels = to_mnist_pixels(DynamicImage::ImageRgb8(rgb));
        let inked: Vec<usize> = (0..MNIST_PIXELS).filter(|&i| pixels[i] > 128).collect();
        assert_eq!(inked.len(), 10 * 20, "a 3×6 block becomes 10×20");
        assert!(inked
            .iter()
            .all(|&i| (4..24).contains(&(i / 28)) && (9..19).contains(&(i % 28))));
    }

    #[test]
    fn degenerate_and_overlong_images_are_refused() {
        let strip = encode(
            &DynamicImage::ImageLuma8(GrayImage::new(20_000, 1)),
            ImageFormat::Png,
        );
        assert!(matches!(
            decode(&strip, &ImageLimits::default()),
            Err(InputError::SideTooLong {
                width: 20_000,
                height: 1,
                limit: 16_384
            })
        ));
    }

    #[test]
    fn limits_refuse_big_images_before_decoding_them() {
        let png = encode(
            &DynamicImage::ImageLuma8(GrayImage::new(300, 200)),
            ImageFormat::Png,
        );
        let limits = ImageLimits {
            max_image_pixels: 50_000,
            ..ImageLimits::default()
        };
        assert!(matches!(
            decode(&png, &limits),
            Err(InputError::TooManyPixels {
                width: 300,
                height: 200,
                limit: 50_000
            })
        ));
        let limits = ImageLimits {
            max_decoder_bytes: 1_000,
            ..ImageLimits::default()
        };
        let result = decode(&png, &limits);
        assert!(
            matches!(result, Err(InputError::DecoderMemory { limit: 1_000 })),
            "{:?}",
            result.err()
        );
    }

    #[test]
    fn declared_pixels_reads_the_header_only() {
        let png = encode(
            &DynamicImage::ImageLuma8(GrayImage::new(300, 200)),
            ImageFormat::Png,
        );
        assert_eq!(declared_pixels(&png), Some(60_000));
        let jpeg = encode(
            &DynamicImage::ImageRgb8(image::RgbImage::new(40, 30)),
            ImageFormat::Jpeg,
        );
        assert_eq!(declared_pixels(&jpeg), Some(1_200));
        for not_an_image in [&b""[..], b"hello", &png[..10]] {
            assert_eq!(declared_pixels(not_an_image), None);
        }
    }

    #[test]
    fn foreign_or_broken_bytes_are_input_errors() {
        let limits = ImageLimits::default();
        assert!(matches!(decode(b"", &limits), Err(InputError::Empty)));
        assert!(matches!(
            decode(b"%PDF-1.7 ...", &limits),
            Err(InputError::NotRaster("a PDF document"))
        ));
        assert!(matches!(
            decode(
                b"\xef\xbb\xbf<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
                &limits
            ),
            Err(InputError::NotRaster("an SVG drawing"))
        ));
        assert!(matches!(
            decode(b"hello, this is text", &limits),
            Err(InputError::UnrecognisedFormat)
        ));
        assert!(matches!(
            decode(b"\x89PNG\r\n\x1a\n", &limits),
            Err(InputError::Undecodable(_))
        ));
    }
}
