//! `results.svg`: RPS, p99 latency, Envoy CPU per request, Envoy RSS and
//! start time per variant, with the min-max range over rounds as a whisker.
//! Drawn with plotters' SVG backend only (the viewer renders the text, so no
//! font stack is needed).

use crate::stats::Spread;
use crate::variants::Kind;
use crate::{Result, Results, Run};
use plotters::prelude::*;
use std::path::Path;

const ROW: i32 = 26;
const TOP: i32 = 70;
const LABEL_WIDTH: i32 = 250;
const PANEL_WIDTH: i32 = 250;
const GAP: i32 = 30;

fn color(kind: Kind) -> RGBColor {
    match kind {
        Kind::Native => RGBColor(140, 140, 140),
        Kind::Raw => RGBColor(66, 133, 244),
        Kind::Plugin => RGBColor(234, 120, 40),
    }
}

struct Panel {
    title: &'static str,
    unit: &'static str,
    decimals: usize,
    value: fn(&Run) -> f64,
}

const PANELS: &[Panel] = &[
    Panel { title: "requests/s (higher: better)", unit: "", decimals: 0, value: |r| r.load.rps },
    Panel { title: "p99 latency, ms (lower: better)", unit: " ms", decimals: 2, value: |r| r.load.p99_us / 1000.0 },
    Panel {
        title: "Envoy CPU, µs/request (lower: better)", unit: " µs", decimals: 1, value: |r| r.cpu_us_per_request
    },
    Panel { title: "Envoy RSS, MiB (lower: better)", unit: " MiB", decimals: 1, value: |r| r.rss_kib as f64 / 1024.0 },
    Panel { title: "start to /ready, s (lower: better)", unit: " s", decimals: 3, value: |r| r.ready.as_secs_f64() },
];

/// Draws the chart of `results` into `path`.
pub fn draw(results: &Results, path: &Path) -> Result<()> {
    let variants = results.ordered();
    let rows = variants.len() as i32;
    let width = LABEL_WIDTH + PANELS.len() as i32 * (PANEL_WIDTH + GAP) + 20;
    let height = TOP + rows * ROW + 60;
    let root = SVGBackend::new(path, (width as u32, height as u32)).into_drawing_area();
    let err = |e: DrawingAreaErrorKind<_>| format!("drawing {}: {e}", path.display());
    root.fill(&WHITE).map_err(err)?;
    let text = |size: u32| ("sans-serif", size).into_font().color(&BLACK);
    let title = format!(
        "gateway plugins vs native Envoy filters and raw proxy-wasm modules ({} round{}, median and min-max)",
        results.options.rounds,
        if results.options.rounds == 1 { "" } else { "s" }
    );
    root.draw(&Text::new(title, (10, 12), text(20))).map_err(err)?;
    for (i, kind) in [Kind::Native, Kind::Raw, Kind::Plugin].into_iter().enumerate() {
        let x = 10 + i as i32 * 170;
        root.draw(&Rectangle::new([(x, 38), (x + 14, 50)], color(kind).filled())).map_err(err)?;
        root.draw(&Text::new(kind.label(), (x + 20, 38), text(16))).map_err(err)?;
    }
    let mut previous_job = None;
    for (row, variant) in variants.iter().enumerate() {
        let y = TOP + row as i32 * ROW;
        if previous_job.is_some_and(|job| job != variant.job) {
            let line = PathElement::new(vec![(10, y - 3), (width - 10, y - 3)], RGBColor(200, 200, 200));
            root.draw(&line).map_err(err)?;
        }
        previous_job = Some(variant.job);
        root.draw(&Text::new(variant.label, (10, y + 5), text(16))).map_err(err)?;
    }
    for (p, panel) in PANELS.iter().enumerate() {
        let x0 = LABEL_WIDTH + p as i32 * (PANEL_WIDTH + GAP);
        root.draw(&Text::new(panel.title, (x0, TOP - 18), text(16))).map_err(err)?;
        let spreads: Vec<Option<Spread>> = variants.iter().map(|v| results.spread(v.id, panel.value)).collect();
        let max = spreads.iter().flatten().map(|s| s.max).fold(0.0f64, f64::max);
        if max <= 0.0 {
            continue;
        }
        let scale = |v: f64| x0 + ((v / max) * f64::from(PANEL_WIDTH - 70)).round() as i32;
        let axis = PathElement::new(vec![(x0, TOP - 4), (x0, TOP + rows * ROW)], BLACK);
        root.draw(&axis).map_err(err)?;
        for (row, (variant, spread)) in variants.iter().zip(&spreads).enumerate() {
            let Some(s) = spread else { continue };
            let y = TOP + row as i32 * ROW;
            let bar = Rectangle::new([(x0, y + 2), (scale(s.median), y + ROW - 6)], color(variant.kind).filled());
            root.draw(&bar).map_err(err)?;
            let mid = y + ROW / 2 - 2;
            let whisker = PathElement::new(vec![(scale(s.min), mid), (scale(s.max), mid)], BLACK.stroke_width(1));
            root.draw(&whisker).map_err(err)?;
            for end in [s.min, s.max] {
                let tick = PathElement::new(vec![(scale(end), mid - 4), (scale(end), mid + 4)], BLACK);
                root.draw(&tick).map_err(err)?;
            }
            let label = format!("{:.*}{}", panel.decimals, s.median, panel.unit);
            root.draw(&Text::new(label, (scale(s.max) + 4, y + 5), text(14))).map_err(err)?;
        }
    }
    let foot = format!(
        "Envoy 1 worker pinned to one core, wrk on the other; direct_response upstream. {}",
        if results.preliminary() { "PRELIMINARY: the machine was busy (see RESULTS.md)." } else { "" }
    );
    root.draw(&Text::new(foot, (10, height - 30), text(15))).map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}
