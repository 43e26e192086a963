//! From uploaded bytes to the model's input: bounded decoding, then the MNIST input transform.

use std::io::Cursor;

use image::{DynamicImage, GenericImageView, ImageReader};

use crate::{InputError, IMAGE_PIXELS, IMAGE_SIDE};

/// Bounds on decoding, so that no upload can exhaust memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageLimits {
    /// Largest width × height accepted.
    pub max_image_pixels: u64,
    /// Most memory a decoder may allocate, in bytes.
    pub max_decoder_bytes: u64,
}

impl Default for ImageLimits {
    fn default() -> Self {
        Self {
            max_image_pixels: 40_000_000,
            max_decoder_bytes: 256 << 20,
        }
    }
}

/// Decodes PNG, JPEG, GIF (first frame), BMP, WebP or TIFF within `limits`.
pub fn decode(bytes: &[u8], limits: &ImageLimits) -> Result<DynamicImage, InputError> {
    if bytes.is_empty() {
        return Err(InputError::Empty);
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|err| InputError::Undecodable(err.to_string()))?;
    if reader.format().is_none() {
        return Err(InputError::UnrecognisedFormat);
    }
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_alloc = Some(limits.max_decoder_bytes);
    let mut reader = reader;
    reader.limits(decoder_limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|err| decode_error(err, limits))?;
    let (width, height) = image::ImageDecoder::dimensions(&decoder);
    if u64::from(width) * u64::from(height) > limits.max_image_pixels {
        return Err(InputError::TooManyPixels {
            width,
            height,
            limit: limits.max_image_pixels,
        });
    }
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_alloc = Some(limits.max_decoder_bytes);
    image::ImageDecoder::set_limits(&mut decoder, decoder_limits)
        .map_err(|err| decode_error(err, limits))?;
    DynamicImage::from_decoder(decoder).map_err(|err| decode_error(err, limits))
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
/// A 28×28 single-channel image is taken as it is: that reproduces the upstream logits.
/// Anything else is converted to gray and resized.
pub fn to_mnist_pixels(image: &DynamicImage) -> [u8; IMAGE_PIXELS] {
    let side = IMAGE_SIDE as u32;
    let gray = match image {
        DynamicImage::ImageLuma8(gray) if gray.dimensions() == (side, side) => gray.clone(),
        other if other.dimensions() == (side, side) => other.to_luma8(),
        other => other
            .resize_exact(side, side, image::imageops::FilterType::Triangle)
            .to_luma8(),
    };
    let mut pixels = [0u8; IMAGE_PIXELS];
    pixels.copy_from_slice(gray.as_raw());
    pixels
}

/// torchvision's `ToTensor()` then `Normalize((0.5,), (0.5,))`: pixel/255, then (x − 0.5)/0.5.
pub fn normalise_pixel(pixel: u8) -> f32 {
    (f32::from(pixel) / 255.0 - 0.5) / 0.5
}
