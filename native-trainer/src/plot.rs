//! Charts: a run's `metrics.jsonl` → training and validation loss against step (`plot`), and the
//! line charts of `eval` (accuracy against k, against step).
//!
//! Text needs a font file: the first of a few common system fonts is used (Debian's
//! fonts-dejavu-core, Liberation); without one the chart is drawn without its labels.

use std::path::Path;

use anyhow::{Context, bail};
use plotters::prelude::*;

const FONTS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
];

/// Registers a system font as "sans-serif"; false when none is found.
fn register_font() -> bool {
    for path in FONTS {
        if let Ok(bytes) = std::fs::read(path) {
            // plotters keeps fonts for the process's lifetime.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return true;
            }
        }
    }
    false
}

pub struct Curves {
    pub train: Vec<(f64, f64)>,
    pub val: Vec<(f64, f64)>,
}

/// Reads `(step, loss)` and `(step, val_loss)` from a metrics file.
pub fn read_metrics(path: &Path) -> anyhow::Result<Curves> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    let mut curves = Curves { train: vec![], val: vec![] };
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("{}:{}: not JSON", path.display(), n + 1))?;
        let Some(step) = v["step"].as_f64() else { bail!("{}:{}: no step", path.display(), n + 1) };
        if let Some(loss) = v["loss"].as_f64() {
            curves.train.push((step, loss));
        }
        if let Some(val) = v["val_loss"].as_f64() {
            curves.val.push((step, val));
        }
    }
    if curves.train.is_empty() {
        bail!("{}: no training steps recorded", path.display());
    }
    Ok(curves)
}

/// One line of a chart.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    /// Dots on the points (sparse series: validation, evaluation).
    pub markers: bool,
}

const COLORS: [RGBColor; 8] = [
    RGBColor(70, 110, 200),
    RGBColor(220, 90, 40),
    RGBColor(60, 160, 80),
    RGBColor(150, 80, 180),
    RGBColor(200, 160, 30),
    RGBColor(40, 170, 180),
    RGBColor(120, 120, 120),
    RGBColor(200, 60, 130),
];

/// The training and validation loss of a run against step.
pub fn draw(curves: &Curves, out: &Path, title: &str) -> anyhow::Result<()> {
    let mut series = vec![Series { label: "train".into(), points: curves.train.clone(), markers: false }];
    if !curves.val.is_empty() {
        series.push(Series { label: "validation".into(), points: curves.val.clone(), markers: true });
    }
    draw_lines(&series, ("step", "loss (nats/token)"), None, out, title)
}

/// Line chart of `series`; the y range is fitted to the data unless `y_range` is given.
pub fn draw_lines(
    series: &[Series],
    (x_desc, y_desc): (&str, &str),
    y_range: Option<(f64, f64)>,
    out: &Path,
    title: &str,
) -> anyhow::Result<()> {
    let labels = register_font();
    let root = BitMapBackend::new(out, (960, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let all = series.iter().flat_map(|s| &s.points);
    let (x_min, x_max, lo, hi) = all.fold((f64::MAX, f64::MIN, f64::MAX, f64::MIN), |(a, b, lo, hi), &(x, y)| {
        (a.min(x), b.max(x), lo.min(y), hi.max(y))
    });
    if x_min > x_max {
        bail!("nothing to plot");
    }
    let (y_min, y_max) = y_range.unwrap_or_else(|| {
        let pad = ((hi - lo) * 0.05).max(1e-3);
        (lo - pad, hi + pad)
    });
    let x_max = if x_max > x_min { x_max } else { x_min + 1.0 };
    let mut builder = ChartBuilder::on(&root);
    builder.margin(20);
    if labels {
        builder.caption(title, ("sans-serif", 22)).x_label_area_size(40).y_label_area_size(60);
    }
    let mut chart = builder.build_cartesian_2d(x_min.min(0.0)..x_max, y_min..y_max)?;
    let mut mesh = chart.configure_mesh();
    if labels {
        mesh.x_desc(x_desc).y_desc(y_desc);
    } else {
        mesh.disable_x_axis().disable_y_axis();
    }
    mesh.draw()?;
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let width = if s.markers { 2 } else { 1 };
        let line = chart.draw_series(LineSeries::new(s.points.iter().copied(), color.stroke_width(width)))?;
        if labels {
            line.label(s.label.as_str())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        if s.markers {
            chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
        }
    }
    if labels {
        chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    } else {
        eprintln!("note: no system font found ({}), the plot has no labels", FONTS.join(", "));
    }
    root.present()?;
    Ok(())
}
