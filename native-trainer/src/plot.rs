//! `plot`: a run's `metrics.jsonl` → a PNG of training and validation loss against step.
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

pub fn draw(curves: &Curves, out: &Path, title: &str) -> anyhow::Result<()> {
    let labels = register_font();
    let root = BitMapBackend::new(out, (960, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let all = curves.train.iter().chain(&curves.val);
    let (x_max, y_min, y_max) =
        all.fold((1.0f64, f64::MAX, f64::MIN), |(x, lo, hi), &(s, l)| (x.max(s), lo.min(l), hi.max(l)));
    let pad = ((y_max - y_min) * 0.05).max(1e-3);
    let mut builder = ChartBuilder::on(&root);
    builder.margin(20);
    if labels {
        builder.caption(title, ("sans-serif", 22)).x_label_area_size(40).y_label_area_size(60);
    }
    let mut chart = builder.build_cartesian_2d(0.0..x_max, (y_min - pad)..(y_max + pad))?;
    let mut mesh = chart.configure_mesh();
    if labels {
        mesh.x_desc("step").y_desc("loss (nats/token)");
    } else {
        mesh.disable_x_axis().disable_y_axis();
    }
    mesh.draw()?;
    let train_color = RGBColor(70, 110, 200);
    let val_color = RGBColor(220, 90, 40);
    let series = chart.draw_series(LineSeries::new(curves.train.iter().copied(), train_color.stroke_width(1)))?;
    if labels {
        series
            .label("train")
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], train_color.stroke_width(2)));
    }
    if !curves.val.is_empty() {
        chart.draw_series(LineSeries::new(curves.val.iter().copied(), val_color.stroke_width(2)))?;
        let points = chart.draw_series(curves.val.iter().map(|&p| Circle::new(p, 4, val_color.filled())))?;
        if labels {
            points.label("validation").legend(move |(x, y)| Circle::new((x + 10, y), 4, val_color.filled()));
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
