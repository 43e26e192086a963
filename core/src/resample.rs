//! Pillow's bilinear resize of 8-bit images (`Image.resize(size, Image.BILINEAR)`, what torchvision's
//! `Resize` does to a PIL image), reproduced to the grey level: a triangle filter widened by the
//! reduction factor (so shrinking averages, as an antialiasing filter), coefficients in 22-bit
//! fixed point, a horizontal pass rounded to 8 bits, then a vertical pass, as Pillow's
//! `ImagingResampleInner` does. No crate reproduces Pillow's rounding, and the networks of
//! TorchServe's handlers were trained on its output. (Pillow 13 was seen to run the vertical pass
//! first when one side grows while the other shrinks, a grey level apart; shrinking both sides, as
//! `Resize(256)` does to a photo, matches it exactly.)

use std::borrow::Cow;

use image::{ImageBuffer, Pixel};

/// Pillow's `PRECISION_BITS`: 32 bits less 8 for the value and 2 for the sign and the sum's carry.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// One output pixel's window into its input row or column: where it starts and its weights.
struct Window {
    start: usize,
    weights: Vec<i32>,
}

/// The windows of a resize of `input` pixels to `output` along one axis (Pillow's
/// `precompute_coeffs` with the bilinear filter, then `normalize_coeffs_8bpc`).
fn windows(input: usize, output: usize) -> Vec<Window> {
    let scale = input as f64 / output as f64;
    let filter_scale = scale.max(1.0);
    let support = filter_scale;
    (0..output)
        .map(|out| {
            let centre = (out as f64 + 0.5) * scale;
            // C's (int) truncates towards zero, as Pillow's code does.
            let start = ((centre - support + 0.5) as i64).max(0) as usize;
            let end = ((centre + support + 0.5) as i64).min(input as i64).max(0) as usize;
            let raw: Vec<f64> = (start..end.max(start))
                .map(|x| triangle((x as f64 - centre + 0.5) / filter_scale))
                .collect();
            let total: f64 = raw.iter().sum();
            let weights = raw
                .iter()
                .map(|&w| {
                    let w = if total == 0.0 { w } else { w / total };
                    let rounding = if w < 0.0 { -0.5 } else { 0.5 };
                    (w * f64::from(1u32 << PRECISION_BITS) + rounding) as i32
                })
                .collect();
            Window { start, weights }
        })
        .collect()
}

fn triangle(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

impl Window {
    /// The weighted sum over the window of `sample(i)` (the `i`th input pixel along the axis),
    /// rounded back to 8 bits and clipped (Pillow's `clip8`).
    fn apply(&self, sample: impl Fn(usize) -> u8) -> u8 {
        let half = 1i64 << (PRECISION_BITS - 1);
        let sum = self.weights.iter().enumerate().fold(half, |sum, (i, &w)| {
            sum + i64::from(sample(self.start + i)) * i64::from(w)
        });
        (sum >> PRECISION_BITS).clamp(0, 255) as u8
    }
}

/// `image` resized to `width`×`height` as Pillow's bilinear filter does it.
pub fn resize_bilinear<P>(
    image: &ImageBuffer<P, Vec<u8>>,
    width: u32,
    height: u32,
) -> ImageBuffer<P, Vec<u8>>
where
    P: Pixel<Subpixel = u8>,
{
    let channels = usize::from(P::CHANNEL_COUNT);
    let (in_width, in_height) = (image.width() as usize, image.height() as usize);
    let (width, height) = (width as usize, height as usize);
    let source = image.as_raw();

    // Pillow skips a pass whose size does not change.
    let horizontal: Cow<'_, [u8]> = if width == in_width {
        Cow::Borrowed(source)
    } else {
        let windows = windows(in_width, width);
        let mut out = vec![0u8; width * in_height * channels];
        for y in 0..in_height {
            let row = &source[y * in_width * channels..(y + 1) * in_width * channels];
            for (x, window) in windows.iter().enumerate() {
                for c in 0..channels {
                    out[(y * width + x) * channels + c] = window.apply(|i| row[i * channels + c]);
                }
            }
        }
        Cow::Owned(out)
    };
    let vertical: Vec<u8> = if height == in_height {
        horizontal.into_owned()
    } else {
        let windows = windows(in_height, height);
        let stride = width * channels;
        let mut out = vec![0u8; height * stride];
        for (y, window) in windows.iter().enumerate() {
            for i in 0..stride {
                out[y * stride + i] = window.apply(|k| horizontal[k * stride + i]);
            }
        }
        out
    };
    ImageBuffer::from_raw(width as u32, height as u32, vertical)
        .unwrap_or_else(|| ImageBuffer::new(width as u32, height as u32))
}

#[cfg(test)]
mod tests {
    use image::{GrayImage, Luma, RgbImage};

    use super::*;

    /// Pillow 13: `Image.frombytes("RGB", (13, 9), bytes((i * 7919) % 251 for i in range(351)))`
    /// resized with `Image.BILINEAR` to (5, 7), (20, 9) and (13, 4).
    const SHRUNK: [u8; 105] = [
        97, 133, 110, 137, 131, 101, 145, 121, 154, 137, 108, 140, 122, 108, 131, 116, 135, 141,
        109, 125, 134, 131, 142, 125, 132, 140, 111, 114, 124, 108, 157, 124, 118, 141, 112, 113,
        128, 124, 139, 118, 119, 143, 100, 103, 125, 126, 152, 136, 108, 136, 120, 113, 126, 120,
        143, 126, 110, 139, 110, 94, 139, 121, 143, 132, 103, 127, 118, 107, 122, 109, 133, 134,
        97, 155, 122, 124, 138, 122, 118, 135, 106, 155, 121, 104, 142, 112, 121, 136, 139, 152,
        113, 115, 138, 113, 106, 138, 126, 159, 125, 113, 145, 115, 113, 136, 133,
    ];
    const WIDENED: [u8; 540] = [
        0, 138, 25, 77, 96, 102, 152, 70, 177, 95, 176, 120, 144, 176, 63, 231, 118, 24, 174, 61,
        130, 117, 98, 142, 66, 198, 91, 172, 141, 197, 196, 83, 221, 139, 26, 164, 82, 126, 107,
        94, 163, 119, 200, 106, 225, 161, 48, 186, 104, 48, 129, 47, 154, 72, 122, 128, 147, 199,
        86, 224, 111, 249, 136, 69, 207, 94, 43, 150, 68, 149, 93, 174, 149, 142, 174, 91, 229,
        116, 34, 172, 59, 71, 115, 96, 171, 64, 196, 114, 170, 139, 138, 194, 81, 244, 137, 24,
        193, 80, 124, 136, 92, 161, 79, 198, 104, 166, 159, 46, 215, 102, 46, 158, 45, 152, 101,
        120, 126, 59, 197, 84, 222, 109, 247, 180, 67, 205, 123, 41, 148, 66, 147, 91, 115, 147,
        140, 202, 89, 227, 145, 32, 170, 88, 69, 113, 37, 169, 62, 143, 112, 168, 167, 136, 192,
        110, 242, 135, 53, 191, 78, 65, 134, 90, 171, 77, 196, 132, 164, 157, 75, 213, 100, 18,
        156, 43, 93, 99, 118, 170, 57, 195, 82, 220, 107, 159, 178, 65, 234, 121, 39, 177, 64, 145,
        120, 113, 145, 81, 200, 87, 187, 143, 30, 199, 86, 67, 142, 35, 167, 85, 141, 110, 109,
        165, 134, 215, 108, 240, 164, 51, 189, 107, 63, 132, 50, 169, 75, 137, 130, 162, 186, 73,
        211, 129, 16, 154, 72, 91, 97, 30, 168, 55, 193, 80, 218, 151, 157, 176, 94, 232, 119, 37,
        175, 62, 86, 118, 111, 173, 79, 198, 116, 185, 141, 59, 197, 84, 8, 140, 33, 114, 83, 139,
        138, 107, 163, 81, 213, 106, 181, 162, 49, 218, 105, 61, 161, 48, 167, 103, 135, 128, 103,
        184, 71, 209, 127, 14, 183, 70, 89, 141, 28, 166, 53, 191, 78, 130, 149, 155, 205, 92, 230,
        148, 35, 173, 91, 84, 116, 52, 171, 77, 158, 114, 183, 170, 57, 195, 113, 6, 138, 56, 112,
        81, 80, 136, 105, 186, 79, 211, 135, 179, 160, 78, 216, 103, 21, 159, 46, 108, 101, 133,
        157, 101, 182, 100, 207, 125, 43, 181, 68, 1, 139, 26, 164, 51, 189, 122, 128, 147, 96,
        203, 90, 202, 146, 33, 202, 89, 82, 144, 50, 169, 87, 156, 112, 124, 168, 55, 224, 111, 4,
        167, 54, 110, 109, 78, 134, 52, 184, 77, 152, 133, 177, 189, 76, 214, 132, 19, 157, 74,
        106, 99, 74, 155, 99, 180, 98, 205, 154, 173, 179, 112, 250, 137, 24, 162, 49, 101, 120,
        126, 176, 94, 201, 119, 200, 144, 62, 200, 87, 23, 142, 48, 129, 85, 154, 141, 122, 166,
        90, 222, 109, 196, 165, 52, 220, 107, 76, 163, 50, 182, 106, 150, 131, 118, 187, 74, 224,
        130, 17, 185, 72, 104, 128, 72, 153, 71, 178, 96, 146, 152, 171, 223, 110, 248, 135, 22,
        160, 93, 99, 118, 67, 174, 92, 173, 117, 198, 173, 60, 198, 115, 21, 140, 58, 127, 83, 95,
        139, 120, 195, 88, 220, 138, 194, 163, 80, 218, 105, 23, 161, 48, 123, 104, 148, 160, 116,
        185, 103, 222, 128, 45, 183, 70, 45, 126, 70, 151, 69, 176, 125, 144, 150, 83, 221, 108,
    ];
    const FLATTENED: [u8; 156] = [
        92, 180, 117, 97, 92, 122, 117, 147, 142, 172, 167, 104, 84, 79, 109, 104, 134, 129, 159,
        154, 184, 179, 116, 96, 91, 121, 116, 146, 141, 171, 166, 103, 83, 78, 108, 103, 133, 128,
        158, 145, 161, 170, 168, 128, 88, 98, 107, 123, 132, 148, 157, 155, 115, 75, 85, 94, 110,
        119, 135, 144, 160, 169, 167, 127, 87, 97, 106, 122, 131, 147, 156, 154, 114, 74, 84, 93,
        109, 118, 112, 128, 137, 153, 162, 172, 132, 92, 90, 99, 115, 124, 140, 149, 159, 119, 79,
        77, 104, 102, 111, 127, 136, 152, 161, 171, 131, 91, 89, 98, 114, 123, 139, 148, 158, 118,
        78, 143, 103, 93, 88, 118, 113, 143, 138, 168, 163, 143, 80, 75, 105, 100, 130, 125, 155,
        150, 130, 175, 155, 92, 87, 117, 112, 142, 137, 167, 162, 142, 79, 74, 104, 99, 129, 124,
        154, 149, 179, 174,
    ];

    #[test]
    fn colour_images_shrink_and_stretch_as_pillow_does() {
        let data: Vec<u8> = (0..351).map(|i| ((i * 7919) % 251) as u8).collect();
        let image = RgbImage::from_raw(13, 9, data).expect("13×9 RGB");
        assert_eq!(resize_bilinear(&image, 5, 7).as_raw(), &SHRUNK);
        assert_eq!(resize_bilinear(&image, 20, 9).as_raw(), &WIDENED);
        assert_eq!(resize_bilinear(&image, 13, 4).as_raw(), &FLATTENED);
    }

    #[test]
    fn the_same_size_is_the_same_image() {
        let image = GrayImage::from_fn(5, 4, |x, y| Luma([(x * 40 + y) as u8]));
        assert_eq!(resize_bilinear(&image, 5, 4), image);
    }

    #[test]
    fn halving_averages_pairs_and_a_flat_image_stays_flat() {
        let image = GrayImage::from_fn(4, 1, |x, _| Luma([if x % 2 == 0 { 100 } else { 200 }]));
        let half = resize_bilinear(&image, 2, 1);
        // Pillow: Image.frombytes("L", (4, 1), bytes([100, 200, 100, 200])).resize((2, 1),
        // Image.BILINEAR) gives [143, 157]: the first window is cut by the edge, weighted 3:3:1.
        assert_eq!(half.as_raw(), &[143, 157]);
        let flat = GrayImage::from_pixel(37, 23, Luma([77]));
        assert!(resize_bilinear(&flat, 11, 50).pixels().all(|p| p.0 == [77]));
    }
}
