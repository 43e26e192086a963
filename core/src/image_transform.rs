//! torchvision's transforms on a decoded picture, as TorchServe's vision handlers apply them to a
//! PIL image: `Resize` (Pillow's bilinear filter), `CenterCrop`, `ToTensor`, `Normalize`, giving
//! the network's `[C, H, W]` input.

use image::{DynamicImage, GrayImage, ImageBuffer, Luma, Pixel, RgbImage};

use crate::resample::resize_bilinear;

/// ImageNet's channel means and deviations, as `image_classifier` normalises with them.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// `image_classifier`'s `Resize(256)` before its `CenterCrop(224)`.
pub const IMAGE_CLASSIFIER_RESIZE: u32 = 256;

/// From a picture to the network's input.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageTransform {
    /// 1 (grey, as Pillow's `convert("L")`) or 3 (RGB).
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// `Resize(n)` (the shorter side to `n`) then `CenterCrop((height, width))`; `None`: resize
    /// straight to `height`×`width`.
    pub resize_shorter: Option<u32>,
    /// Per channel.
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl ImageTransform {
    /// The picture as `[channels, height, width]` values, row-major. (A decoded picture already
    /// grey or RGB is used without a copy.)
    pub fn apply(&self, image: DynamicImage) -> Vec<f32> {
        if self.channels == 1 {
            self.planes(&grey(image))
        } else {
            self.planes(&image.into_rgb8())
        }
    }

    fn planes<P: Pixel<Subpixel = u8>>(&self, image: &ImageBuffer<P, Vec<u8>>) -> Vec<f32> {
        let (height, width) = (self.height as u32, self.width as u32);
        let sized = match self.resize_shorter {
            Some(shorter) => {
                let (w, h) = shorter_side_to(image.width(), image.height(), shorter);
                let resized = resize_bilinear(image, w, h);
                centre_crop(&resized, width, height)
            }
            None => resize_bilinear(image, width, height),
        };
        let channels = self.channels;
        let plane = self.height * self.width;
        let mut values = vec![0f32; channels * plane];
        for (index, pixel) in sized.pixels().enumerate() {
            for (c, &value) in pixel.channels().iter().take(channels).enumerate() {
                let mean = self.mean.get(c).copied().unwrap_or(0.0);
                let std = self.std.get(c).copied().unwrap_or(1.0);
                values[c * plane + index] = (f32::from(value) / 255.0 - mean) / std;
            }
        }
        values
    }
}

/// torchvision's `Resize(size)` of a `width`×`height` picture: the shorter side becomes `size`,
/// the longer keeps the aspect, truncated as `int()` does.
pub fn shorter_side_to(width: u32, height: u32, size: u32) -> (u32, u32) {
    let (w, h, size) = (u64::from(width), u64::from(height), u64::from(size));
    if w <= h {
        (size as u32, ((size * h) / w.max(1)).max(1) as u32)
    } else {
        (((size * w) / h.max(1)).max(1) as u32, size as u32)
    }
}

/// torchvision's `CenterCrop`: offsets `round((side − crop) / 2)`, rounding half to even as
/// Python's `round` does; a picture smaller than the crop is padded with black, as it pads.
fn centre_crop<P: Pixel<Subpixel = u8>>(
    image: &ImageBuffer<P, Vec<u8>>,
    width: u32,
    height: u32,
) -> ImageBuffer<P, Vec<u8>> {
    let offset = |side: u32, crop: u32| (f64::from(side) - f64::from(crop)) / 2.0;
    let left = offset(image.width(), width).round_ties_even() as i64;
    let top = offset(image.height(), height).round_ties_even() as i64;
    ImageBuffer::from_fn(width, height, |x, y| {
        let (sx, sy) = (i64::from(x) + left, i64::from(y) + top);
        if sx < 0 || sy < 0 || sx >= i64::from(image.width()) || sy >= i64::from(image.height()) {
            *P::from_slice(&[0; 4][..usize::from(P::CHANNEL_COUNT)])
        } else {
            *image.get_pixel(sx as u32, sy as u32)
        }
    })
}

/// Pillow's `convert("L")`: ITU-R 601 luma in 16-bit fixed point, alpha dropped.
fn grey(image: DynamicImage) -> GrayImage {
    let rgb: RgbImage = match image {
        DynamicImage::ImageLuma8(grey) => return grey,
        other => other.into_rgb8(),
    };
    ImageBuffer::from_fn(rgb.width(), rgb.height(), |x, y| {
        let [r, g, b] = rgb.get_pixel(x, y).0;
        let luma = u32::from(r) * 19595 + u32::from(g) * 38470 + u32::from(b) * 7471 + 0x8000;
        Luma([(luma >> 16) as u8])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shorter_side_is_resized_keeping_the_aspect() {
        assert_eq!(shorter_side_to(720, 720, 256), (256, 256));
        assert_eq!(shorter_side_to(640, 480, 256), (341, 256));
        assert_eq!(shorter_side_to(480, 640, 256), (256, 341));
    }

    #[test]
    fn the_crop_is_centred_with_python_rounding_and_padded_when_small() {
        let image = GrayImage::from_fn(5, 4, |x, y| Luma([(10 * y + x) as u8]));
        // (5 − 2) / 2 = 1.5 → 2; (4 − 2) / 2 = 1.
        let cropped = centre_crop(&image, 2, 2);
        assert_eq!(cropped.as_raw(), &[12, 13, 22, 23]);
        // (5 − 4) / 2 = 0.5 → 0 (half to even).
        assert_eq!(centre_crop(&image, 4, 1).as_raw(), &[20, 21, 22, 23]);
        let padded = centre_crop(&image, 7, 4);
        assert_eq!(&padded.as_raw()[..7], &[0, 0, 1, 2, 3, 4, 0]);
    }

    #[test]
    fn values_are_planar_and_normalised_per_channel() {
        let image = DynamicImage::ImageRgb8(RgbImage::from_pixel(4, 4, image::Rgb([255, 0, 51])));
        let transform = ImageTransform {
            channels: 3,
            height: 2,
            width: 2,
            resize_shorter: None,
            mean: vec![0.5, 0.0, 0.0],
            std: vec![0.5, 1.0, 0.1],
        };
        let values = transform.apply(image.clone());
        assert_eq!(values.len(), 12);
        assert!(values[..4].iter().all(|&v| (v - 1.0).abs() < 1e-6));
        assert!(values[4..8].iter().all(|&v| v == 0.0));
        assert!(values[8..].iter().all(|&v| (v - 2.0).abs() < 1e-5));
        let grey = ImageTransform {
            channels: 1,
            mean: vec![0.0],
            std: vec![1.0],
            ..transform
        };
        // Pillow: Image.new("RGB", (1, 1), (255, 0, 51)).convert("L").getpixel((0, 0)) == 82
        assert!((grey.apply(image)[0] - 82.0 / 255.0).abs() < 1e-6);
    }
}
