//! The bench report as a PNG: throughput by workload beside the baseline, and the per-burst
//! latency percentiles.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use plotters::prelude::*;

use crate::BenchReport;

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

fn register_font() -> Result<()> {
    let bytes =
        std::fs::read(FONT).with_context(|| format!("reading {FONT} (apt-get install fonts-dejavu-core)"))?;
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow!("{FONT} is not a usable font"))
}

pub fn draw(r: &BenchReport, path: &Path) -> Result<()> {
    register_font()?;
    let n = r.results.len().max(1);
    let root = BitMapBackend::new(path, (1200, 900)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let (top, bottom) = root.split_vertically(480);

    let max_mpps = r
        .results
        .iter()
        .map(|x| x.baseline_mpps.max(x.rvs_mpps))
        .fold(1.0, f64::max)
        * 1.15;
    let mut c = ChartBuilder::on(&top)
        .caption(
            format!("rvs vs baseline forwarder, Mpps per worker ({})", r.memory),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(70)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..n as f64, 0f64..max_mpps)
        .map_err(|e| anyhow!("{e}"))?;
    c.configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("Mpps")
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    for (i, x) in r.results.iter().enumerate() {
        let i = i as f64;
        c.draw_series([Rectangle::new(
            [(i + 0.1, 0.0), (i + 0.45, x.baseline_mpps)],
            RGBColor(160, 160, 160).filled(),
        )])
        .map_err(|e| anyhow!("{e}"))?;
        c.draw_series([Rectangle::new(
            [(i + 0.5, 0.0), (i + 0.85, x.rvs_mpps)],
            RGBColor(30, 100, 200).filled(),
        )])
        .map_err(|e| anyhow!("{e}"))?;
        c.draw_series([Text::new(
            format!("{:.0}%", x.ratio_to_baseline * 100.0),
            (i + 0.5, x.rvs_mpps),
            ("sans-serif", 12),
        )])
        .map_err(|e| anyhow!("{e}"))?;
        c.draw_series([Text::new(
            x.workload.name.clone(),
            (i + 0.1, max_mpps * 0.97),
            ("sans-serif", 12),
        )])
        .map_err(|e| anyhow!("{e}"))?;
    }
    c.draw_series([Rectangle::new(
        [(0.0, 0.0), (0.0, 0.0)],
        RGBColor(160, 160, 160).filled(),
    )])
    .map_err(|e| anyhow!("{e}"))?
    .label("baseline (rx, swap MACs, tx)")
    .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], RGBColor(160, 160, 160).filled()));
    c.draw_series([Rectangle::new(
        [(0.0, 0.0), (0.0, 0.0)],
        RGBColor(30, 100, 200).filled(),
    )])
    .map_err(|e| anyhow!("{e}"))?
    .label("rvs")
    .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], RGBColor(30, 100, 200).filled()));
    c.configure_series_labels()
        .background_style(WHITE)
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;

    let max_ns = r
        .results
        .iter()
        .map(|x| x.latency_per_burst.p999_ns)
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.2;
    let mut l = ChartBuilder::on(&bottom)
        .caption(
            "rvs per-burst latency (receive to transmit of a burst of up to 32), ns",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(70)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..n as f64, 0f64..max_ns)
        .map_err(|e| anyhow!("{e}"))?;
    l.configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("ns")
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    let colors = [
        RGBColor(120, 190, 120),
        RGBColor(240, 170, 60),
        RGBColor(200, 60, 60),
    ];
    for (i, x) in r.results.iter().enumerate() {
        let v = [
            x.latency_per_burst.p50_ns,
            x.latency_per_burst.p99_ns,
            x.latency_per_burst.p999_ns,
        ];
        for (k, (&ns, col)) in v.iter().zip(colors).enumerate() {
            let x0 = i as f64 + 0.1 + k as f64 * 0.27;
            l.draw_series([Rectangle::new([(x0, 0.0), (x0 + 0.25, ns as f64)], col.filled())])
                .map_err(|e| anyhow!("{e}"))?;
        }
        l.draw_series([Text::new(
            x.workload.name.clone(),
            (i as f64 + 0.1, max_ns * 0.97),
            ("sans-serif", 12),
        )])
        .map_err(|e| anyhow!("{e}"))?;
    }
    for (name, col) in ["p50", "p99", "p99.9"].iter().zip(colors) {
        l.draw_series([Rectangle::new([(0.0, 0.0), (0.0, 0.0)], col.filled())])
            .map_err(|e| anyhow!("{e}"))?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], col.filled()));
    }
    l.configure_series_labels()
        .background_style(WHITE)
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    root.present()
        .map_err(|e| anyhow!("writing {}: {e}", path.display()))?;
    Ok(())
}
