//! SVG charts (plotters, SVG backend: no fonts or image libraries needed): latency by percentile, as
//! HdrHistogram plots draw it (percentiles on a log scale of 1/(1-p)), and throughput against latency
//! across a rate sweep.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use crate::hgrm::Point;

/// One line of a chart.
pub struct Series<'a> {
    pub label: String,
    pub points: &'a [Point],
}

/// x position of a quantile: log10(1/(1-q)); 1.0 goes to `end`.
fn x_of(q: f64, end: f64) -> f64 {
    if q >= 1.0 { end } else { (1.0 / (1.0 - q)).log10().min(end) }
}

/// Label of an x position: 0 → 0%, 1 → 90%, 2 → 99%, 3 → 99.9%, …
pub fn percentile_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-x));
    let decimals = (x.round() as i32 - 2).max(0) as usize;
    format!("{p:.decimals$}%")
}

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("chart: {e}")
}

/// Latency (ms, log scale) by percentile, one line per series.
pub fn percentile_curves(path: &Path, title: &str, series: &[Series<'_>]) -> Result<()> {
    let total = series.iter().filter_map(|s| s.points.last().map(|p| p.total)).max().unwrap_or(10);
    let end = (total.max(10) as f64).log10().floor().clamp(2.0, 5.0);
    let values = series.iter().flat_map(|s| s.points.iter().map(|p| p.value_ms));
    let (lo, hi) = values.fold((f64::MAX, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if hi <= 0.0 { (0.1, 10.0) } else { (lo.max(0.01) * 0.8, hi * 1.25) };
    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .margin_right(45)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..end, (lo..hi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency, ms (log scale)")
        .x_labels(end as usize + 1)
        .x_label_formatter(&|x| percentile_label(*x))
        .y_label_formatter(&|y| format!("{y}"))
        .draw()
        .map_err(err)?;
    for (i, s) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let pts: Vec<(f64, f64)> = s.points.iter().map(|p| (x_of(p.quantile, end), p.value_ms.max(lo))).collect();
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(err)?
            .label(s.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// One system's sweep: (achieved lines/s, p50 ms, p99 ms) per step.
pub struct Sweep<'a> {
    pub label: String,
    pub points: &'a [(f64, f64, f64)],
}

/// Achieved throughput against latency (p99 solid with points, p50 dashed), one colour per system.
pub fn throughput_latency(path: &Path, title: &str, sweeps: &[Sweep<'_>]) -> Result<()> {
    let all = sweeps.iter().flat_map(|s| s.points.iter());
    let (xmax, lo, hi) =
        all.fold((0f64, f64::MAX, 0f64), |(x, lo, hi), p| (x.max(p.0), lo.min(p.1).min(p.2), hi.max(p.1).max(p.2)));
    let (lo, hi) = if hi <= 0.0 { (0.1, 10.0) } else { (lo.max(0.01) * 0.8, hi * 1.25) };
    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..(xmax.max(1000.0) * 1.08 / 1000.0), (lo..hi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("achieved throughput, thousand lines/s")
        .y_desc("end-to-end latency, ms (log scale)")
        .y_label_formatter(&|y| format!("{y}"))
        .draw()
        .map_err(err)?;
    for (i, s) in sweeps.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let p99: Vec<(f64, f64)> = s.points.iter().map(|p| (p.0 / 1000.0, p.2.max(lo))).collect();
        let p50: Vec<(f64, f64)> = s.points.iter().map(|p| (p.0 / 1000.0, p.1.max(lo))).collect();
        chart
            .draw_series(LineSeries::new(p99.clone(), color.stroke_width(2)))
            .map_err(err)?
            .label(format!("{} p99", s.label))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(p99.iter().map(|&(x, y)| Circle::new((x, y), 4, color.filled()))).map_err(err)?;
        chart
            .draw_series(DashedLineSeries::new(p50, 6, 4, color.stroke_width(1)))
            .map_err(err)?
            .label(format!("{} p50", s.label))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 8, y)], color.stroke_width(1)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_axis_labels() {
        assert_eq!(percentile_label(0.0), "0%");
        assert_eq!(percentile_label(1.0), "90%");
        assert_eq!(percentile_label(2.0), "99%");
        assert_eq!(percentile_label(3.0), "99.9%");
        assert_eq!(percentile_label(5.0), "99.999%");
        assert!((x_of(0.99, 6.0) - 2.0).abs() < 1e-9);
        assert_eq!(x_of(1.0, 4.0), 4.0);
    }

    #[test]
    fn charts_are_written_as_svg() {
        let dir = std::env::temp_dir().join(format!("lt-charts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut h = crate::hgrm::new_histogram();
        for v in 1..5000u64 {
            h.record(v * 3).unwrap();
        }
        let d = crate::hgrm::distribution(&h);
        let p = dir.join("p.svg");
        percentile_curves(&p, "test", &[Series { label: "a".into(), points: &d }]).unwrap();
        let svg = std::fs::read_to_string(&p).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("99.9%") && svg.contains("polyline"), "{}", &svg[..200]);
        let t = dir.join("t.svg");
        throughput_latency(
            &t,
            "test",
            &[Sweep { label: "x".into(), points: &[(1000.0, 1.0, 2.0), (5000.0, 2.0, 9.0)] }],
        )
        .unwrap();
        assert!(std::fs::read_to_string(&t).unwrap().contains("x p99"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
