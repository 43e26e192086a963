//! A bar chart of attributions, one bar per named feature: positive bars red and to the right of
//! the zero axis, negative bars blue and to the left (the heatmap's colours), on a scale symmetric
//! around zero, the names written beside them in an 8×8 bitmap font.

use std::io::Cursor;

use image::{ImageFormat, Rgb, RgbImage};

use crate::CoreError;

const POSITIVE: Rgb<u8> = Rgb([230, 40, 30]);
const NEGATIVE: Rgb<u8> = Rgb([30, 110, 240]);
const INK: Rgb<u8> = Rgb([40, 40, 40]);
const AXIS: Rgb<u8> = Rgb([150, 150, 150]);
const PAPER: Rgb<u8> = Rgb([255, 255, 255]);

/// Each font pixel becomes a square of this side: 16 px letters.
const GLYPH_SCALE: u32 = 2;
const GLYPH: u32 = 8 * GLYPH_SCALE;
const MARGIN: u32 = 12;
const ROW: u32 = 30;
const BAR: u32 = 18;
/// Half the plot's width: the largest magnitude reaches this far from the axis.
const HALF_WIDTH: u32 = 230;

/// The chart as PNG bytes.
pub fn bar_chart_png(title: &str, names: &[String], values: &[f32]) -> Result<Vec<u8>, CoreError> {
    let mut png = Vec::new();
    bar_chart(title, names, values)
        .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .map_err(|err| CoreError::Encoding(err.to_string()))?;
    Ok(png)
}

/// The chart: a title line, then a row per name.
pub fn bar_chart(title: &str, names: &[String], values: &[f32]) -> RgbImage {
    let label_width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0) as u32 * GLYPH;
    let axis = MARGIN + label_width + MARGIN + HALF_WIDTH;
    let width = (axis + HALF_WIDTH + MARGIN).max(MARGIN * 2 + title.chars().count() as u32 * GLYPH);
    let top = MARGIN + GLYPH + MARGIN;
    let height = top + ROW * names.len() as u32 + MARGIN;
    let mut chart = RgbImage::from_pixel(width, height, PAPER);
    write(&mut chart, MARGIN, MARGIN, title);
    let largest = values
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()))
        .max(f32::MIN_POSITIVE);
    for (row, (name, &value)) in names.iter().zip(values).enumerate() {
        let y = top + row as u32 * ROW;
        write(&mut chart, MARGIN, y + (ROW - GLYPH) / 2, name);
        let share = (value / largest).clamp(-1.0, 1.0);
        let length = (share.abs() * HALF_WIDTH as f32).round() as u32;
        let (x0, colour) = if share >= 0.0 {
            (axis, POSITIVE)
        } else {
            (axis - length, NEGATIVE)
        };
        fill(&mut chart, x0, y + (ROW - BAR) / 2, length, BAR, colour);
    }
    fill(&mut chart, axis, top - MARGIN / 2, 1, height - top, AXIS);
    chart
}

fn fill(chart: &mut RgbImage, x: u32, y: u32, width: u32, height: u32, colour: Rgb<u8>) {
    for py in y..(y + height).min(chart.height()) {
        for px in x..(x + width).min(chart.width()) {
            chart.put_pixel(px, py, colour);
        }
    }
}

/// ASCII text at (x, y), top left; other characters are drawn as `?`.
fn write(chart: &mut RgbImage, x: u32, y: u32, text: &str) {
    for (index, character) in text.chars().enumerate() {
        let code = if character.is_ascii() { character } else { '?' } as usize;
        let Some(glyph) = font8x8::legacy::BASIC_LEGACY.get(code) else {
            continue;
        };
        let left = x + index as u32 * GLYPH;
        for (row, bits) in glyph.iter().enumerate() {
            for column in 0..8u32 {
                if bits & (1 << column) != 0 {
                    let px = left + column * GLYPH_SCALE;
                    let py = y + row as u32 * GLYPH_SCALE;
                    fill(chart, px, py, GLYPH_SCALE, GLYPH_SCALE, INK);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_go_right_in_red_and_left_in_blue_beside_their_names() {
        let names = vec!["age".to_owned(), "female".to_owned()];
        let chart = bar_chart("target: Survived", &names, &[-0.5, 1.0]);
        let label_width = 6 * GLYPH;
        let axis = MARGIN + label_width + MARGIN + HALF_WIDTH;
        let top = MARGIN + GLYPH + MARGIN;
        let middle = |row: u32| top + row * ROW + ROW / 2;
        assert_eq!(
            *chart.get_pixel(axis + HALF_WIDTH - 1, middle(1)),
            POSITIVE,
            "the largest reaches the edge"
        );
        assert_eq!(
            *chart.get_pixel(axis - HALF_WIDTH / 2 + 1, middle(0)),
            NEGATIVE,
            "half the largest, leftwards"
        );
        assert_eq!(
            *chart.get_pixel(axis - HALF_WIDTH / 2 - 2, middle(0)),
            PAPER
        );
        let inked = (MARGIN..MARGIN + 3 * GLYPH)
            .flat_map(|x| (top..top + ROW).map(move |y| (x, y)))
            .filter(|&(x, y)| *chart.get_pixel(x, y) == INK)
            .count();
        assert!(inked > 40, "the name `age` is written: {inked} pixels");
        let png = bar_chart_png("t", &names, &[0.0, 0.0]).expect("encodes");
        let decoded = image::load_from_memory(&png).expect("a PNG");
        assert_eq!((decoded.width(), decoded.height()), chart.dimensions());
    }
}
