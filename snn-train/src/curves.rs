//! A PNG of the training curves: training loss (left panel; per logged
//! step from `steps.jsonl` when there is one, else per epoch) and test
//! accuracy (right panel) or, for models that do not classify, test loss.
//! Each panel has a title, labelled y ticks at round values with grid
//! lines, and its x range labelled (steps or epochs). Drawn directly with
//! `image`, text from the `font8x8` bitmap glyphs, so no font files or
//! plotting stack are needed; the numbers themselves are in
//! `metrics.jsonl` and `steps.jsonl`.

use crate::records::{parse_metrics_line, read_steps, EpochMetrics, StepMetrics};
use crate::session::{CURVES_FILE, METRICS_FILE};
use image::{Rgb, RgbImage};
use snn_core::{Error, Result};
use std::path::Path;

/// One panel's size; the image is two panels side by side.
const W: u32 = 480;
const H: u32 = 320;
/// Margins inside a panel: room for the y tick labels (left), the title
/// (top) and the x labels (bottom).
const LEFT: u32 = 64;
const RIGHT: u32 = 16;
const TOP: u32 = 28;
const BOTTOM: u32 = 36;
/// The font's glyph size in pixels.
const GLYPH: u32 = 8;

const BLACK: Rgb<u8> = Rgb([0, 0, 0]);
const GRID: Rgb<u8> = Rgb([225, 225, 225]);
const LOSS_COLOR: Rgb<u8> = Rgb([200, 40, 40]);
const TEST_COLOR: Rgb<u8> = Rgb([30, 90, 200]);

/// One curve: its title, x axis name, and (x, y) points.
struct Series {
    title: &'static str,
    x_name: &'static str,
    points: Vec<(f32, f32)>,
    color: Rgb<u8>,
    /// Values in [0, 1] (accuracy): the y axis ends at 1, in steps of 0.1.
    fraction: bool,
}

pub fn write_png(path: &Path, history: &[EpochMetrics], steps: &[StepMetrics]) -> Result<()> {
    let train = if steps.len() >= 2 {
        Series {
            title: "training loss (logged steps)",
            x_name: "step",
            points: steps.iter().map(|m| (m.step as f32, m.loss)).collect(),
            color: LOSS_COLOR,
            fraction: false,
        }
    } else {
        Series {
            title: "training loss (epoch mean)",
            x_name: "epoch",
            points: history
                .iter()
                .map(|m| (m.epoch as f32, m.train_loss))
                .collect(),
            color: LOSS_COLOR,
            fraction: false,
        }
    };
    let accuracies: Option<Vec<(f32, f32)>> = history
        .iter()
        .map(|m| m.test_accuracy.map(|a| (m.epoch as f32, a)))
        .collect();
    let test = match accuracies {
        Some(points) => Series {
            title: "test accuracy",
            x_name: "epoch",
            points,
            color: TEST_COLOR,
            fraction: true,
        },
        None => Series {
            title: "test loss",
            x_name: "epoch",
            points: history
                .iter()
                .map(|m| (m.epoch as f32, m.test_loss))
                .collect(),
            color: TEST_COLOR,
            fraction: false,
        },
    };
    let mut img = RgbImage::from_pixel(2 * W, H, Rgb([255, 255, 255]));
    panel(&mut img, 0, &train);
    panel(&mut img, W, &test);
    let tmp = path.with_extension("png.tmp");
    img.save_with_format(&tmp, image::ImageFormat::Png)
        .map_err(|e| Error::data(&tmp, format!("cannot write PNG: {e}")))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Redraws `dir/curves.png` from the run folder's `metrics.jsonl` (and its
/// `steps.jsonl`, when there is one): for runs drawn by an older version,
/// or a folder holding only a copy of those files.
pub fn redraw(dir: &Path) -> Result<()> {
    let path = dir.join(METRICS_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let history = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            parse_metrics_line(l).map_err(|e| Error::data(&path, format!("line {}: {e}", i + 1)))
        })
        .collect::<Result<Vec<_>>>()?;
    if history.is_empty() {
        return Err(Error::data(&path, "no epoch recorded: nothing to draw"));
    }
    write_png(&dir.join(CURVES_FILE), &history, &read_steps(dir))
}

/// Round tick values covering `[lo, hi]` (at least 0..hi for values that
/// are all positive, so the eye reads the curves from zero): about four
/// intervals of 1, 2 or 5 times a power of ten.
fn ticks(ys: &[f32]) -> Vec<f32> {
    let (lo, hi) = ys
        .iter()
        .filter(|v| v.is_finite())
        .fold((0.0f32, f32::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
    let hi = if hi > lo { hi } else { lo + 1.0 };
    let raw = (hi - lo) / 4.0;
    let magnitude = 10f32.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let first = (lo / step).floor() as i64;
    let last = (hi / step - 1e-4).ceil() as i64;
    (first..=last).map(|k| k as f32 * step).collect()
}

/// A tick value with the decimals its axis's tick step needs (the same for
/// every label of the axis, so they line up: 0.00, 0.05, 0.10).
fn label(v: f32, step: f32) -> String {
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    format!("{v:.decimals$}")
}

fn panel(img: &mut RgbImage, x0: u32, s: &Series) {
    let (pw, ph) = ((W - LEFT - RIGHT) as f32, (H - TOP - BOTTOM) as f32);
    let (left, top) = ((x0 + LEFT) as i64, TOP as i64);
    let (right, bottom) = (left + pw as i64, top + ph as i64);
    text(img, left, (TOP - GLYPH) as i64 / 2, s.title, BLACK);

    // Accuracy reads best from a round value below its minimum to 1; other
    // values from zero (or their negative minimum) to their maximum.
    let ys: Vec<f32> = s.points.iter().map(|p| p.1).collect();
    let yt = if s.fraction {
        let lo = ys.iter().fold(1.0f32, |a, v| a.min(*v));
        let first = ((lo * 10.0).floor().clamp(0.0, 9.0)) as i64;
        (first..=10).map(|k| k as f32 / 10.0).collect()
    } else {
        ticks(&ys)
    };
    let (ylo, yhi) = (yt[0], yt[yt.len() - 1]);
    let step = if yt.len() > 1 { yt[1] - yt[0] } else { 1.0 };
    let y_px = |y: f32| bottom - (((y - ylo) / (yhi - ylo)).clamp(0.0, 1.0) * ph) as i64;
    for &y in &yt {
        let py = y_px(y);
        line(img, left, py, right, py, GRID);
        let l = label(y, step);
        let w = (l.len() as u32 * GLYPH) as i64;
        text(img, left - 6 - w, py - GLYPH as i64 / 2, &l, BLACK);
    }
    line(img, left, top, left, bottom, BLACK);
    line(img, left, bottom, right, bottom, BLACK);
    if s.points.is_empty() {
        return;
    }
    let (xlo, xhi) = s
        .points
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    // A single point sits in the middle.
    let (xlo, xhi) = if xhi > xlo {
        (xlo, xhi)
    } else {
        (xlo - 1.0, xlo + 1.0)
    };
    let to_px = |x: f32, y: f32| -> (i64, i64) {
        let fx = ((x - xlo) / (xhi - xlo)).clamp(0.0, 1.0);
        (left + (fx * pw) as i64, y_px(y))
    };
    let below = bottom + 6;
    let first = format!("{xlo:.0}");
    let last = format!("{xhi:.0}");
    text(img, left, below, &first, BLACK);
    text(
        img,
        right - (last.len() as u32 * GLYPH) as i64,
        below,
        &last,
        BLACK,
    );
    let name_w = (s.x_name.len() as u32 * GLYPH) as i64;
    text(
        img,
        (left + right - name_w) / 2,
        below + GLYPH as i64 + 4,
        s.x_name,
        BLACK,
    );

    for w in s.points.windows(2) {
        let (a, b) = (to_px(w[0].0, w[0].1), to_px(w[1].0, w[1].1));
        line(img, a.0, a.1, b.0, b.1, s.color);
    }
    // Markers only where they stay apart: per-step curves have thousands.
    if s.points.len() <= 50 {
        for p in &s.points {
            let (x, y) = to_px(p.0, p.1);
            for dx in -2..=2 {
                for dy in -2..=2 {
                    put(img, x + dx, y + dy, s.color);
                }
            }
        }
    }
}

/// Draws ASCII text with its top-left corner at (x, y); other characters
/// are drawn as '?'.
fn text(img: &mut RgbImage, x: i64, y: i64, s: &str, c: Rgb<u8>) {
    for (i, ch) in s.chars().enumerate() {
        let code = if ch.is_ascii() {
            ch as usize
        } else {
            '?' as usize
        };
        let glyph = font8x8::legacy::BASIC_LEGACY[code];
        let gx = x + (i as u32 * GLYPH) as i64;
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8u8 {
                // Bit 0 is the glyph's leftmost pixel.
                if (bits >> col) & 1 == 1 {
                    put(img, gx + i64::from(col), y + row as i64, c);
                }
            }
        }
    }
}

fn put(img: &mut RgbImage, x: i64, y: i64, c: Rgb<u8>) {
    if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
        img.put_pixel(x as u32, y as u32, c);
    }
}

fn line(img: &mut RgbImage, x0: i64, y0: i64, x1: i64, y1: i64, c: Rgb<u8>) {
    let steps = (x1 - x0).abs().max((y1 - y0).abs()).max(1);
    for s in 0..=steps {
        let x = x0 + (x1 - x0) * s / steps;
        let y = y0 + (y1 - y0) * s / steps;
        put(img, x, y, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_values() {
        // Range 0..0.0907: raw interval 0.0227 -> 0.05 (1, 2, 5 x 10^-2).
        let t = ticks(&[0.0907, 0.0121, 0.05]);
        assert_eq!(t.len(), 3);
        for (got, want) in t.iter().zip([0.0, 0.05, 0.1]) {
            assert!((got - want).abs() < 1e-6, "{t:?}");
        }
        assert_eq!(label(t[1], t[1] - t[0]), "0.05");
        // A negative minimum starts below zero at a round value: range 10,
        // raw interval 2.5 -> 5.
        assert_eq!(ticks(&[-3.0, 7.0]), vec![-5.0, 0.0, 5.0, 10.0]);
        // All equal: a unit range above the value, no division by zero.
        assert_eq!(ticks(&[0.0, 0.0]), vec![0.0, 0.5, 1.0]);
    }

    fn epoch_line(epoch: usize, train_loss: f32, accuracy: f32) -> String {
        format!(
            r#"{{"epoch":{epoch},"train_loss":{train_loss},"test_loss":0.1,"test_accuracy":{accuracy},"firing_rates":{{}},"neurons":{{}},"lr":0.001,"seconds":1.0,"images_per_second":1.0}}"#
        )
    }

    #[test]
    fn redraw_puts_each_point_where_its_axes_say() {
        let dir = tempfile::tempdir().unwrap();
        let lines = [epoch_line(1, 0.08, 0.5), epoch_line(2, 0.04, 0.75)].join("\n");
        std::fs::write(dir.path().join(METRICS_FILE), lines + "\n").unwrap();
        redraw(dir.path()).unwrap();
        let img = image::open(dir.path().join(CURVES_FILE)).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (2 * W, H));
        // Plot area: x 64..464 of each panel, y 28 (top) .. 284 (bottom).
        // Loss ticks 0..0.08 in 0.02: (1, 0.08) top left, (2, 0.04) halfway
        // down the right edge. Accuracy ticks 0.5..1.0: (1, 0.5) bottom
        // left, (2, 0.75) halfway up the right edge.
        // Markers are 5 x 5: inked at the point and background 3 pixels
        // outwards (where no line runs) pins each marker's centre to
        // within 2 pixels inwards of it.
        for (x, y, outwards, c) in [
            (64, 28, 61, LOSS_COLOR),
            (464, 156, 467, LOSS_COLOR),
            (W + 64, 284, W + 61, TEST_COLOR),
            (W + 464, 156, W + 467, TEST_COLOR),
        ] {
            assert_eq!(img.get_pixel(x, y), &c, "({x}, {y})");
            assert_eq!(
                img.get_pixel(outwards, y),
                &Rgb([255, 255, 255]),
                "({outwards}, {y})"
            );
        }
    }

    #[test]
    fn redraw_names_the_file_and_line_it_cannot_read() {
        let dir = tempfile::tempdir().unwrap();
        let err = redraw(dir.path()).unwrap_err().to_string();
        assert!(err.contains(METRICS_FILE), "{err}");
        let lines = [epoch_line(1, 0.08, 0.5), "{\"epoch\": 2}".to_string()].join("\n");
        std::fs::write(dir.path().join(METRICS_FILE), lines).unwrap();
        let err = redraw(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(METRICS_FILE) && err.contains("line 2"),
            "{err}"
        );
        assert!(!dir.path().join(CURVES_FILE).exists());
    }

    #[test]
    fn text_draws_the_glyph_bits() {
        let mut img = RgbImage::from_pixel(16, 8, Rgb([255, 255, 255]));
        text(&mut img, 0, 0, "1", BLACK);
        let glyph = font8x8::legacy::BASIC_LEGACY['1' as usize];
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8u8 {
                let inked = img.get_pixel(u32::from(col), row as u32) == &BLACK;
                assert_eq!(inked, (bits >> col) & 1 == 1, "row {row} col {col}");
            }
        }
        // Nothing drawn past the glyph's cell.
        assert!((8..16).all(|x| (0..8).all(|y| img.get_pixel(x, y) != &BLACK)));
    }
}
