//! `burst.png`: arrivals, acceptances and store writes per 100 ms, and projector lag, over
//! time — one panel per path run (Kafka, embedded, direct), lags together below; and `sustain.png`: latency and rates over
//! a steady load.

use std::path::Path;
use std::time::Duration;

use plotters::prelude::*;

use crate::load::Outcome;

/// One sample of the server's counters, every 100 ms.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Sample {
    pub(crate) t: f64,
    pub(crate) accepted: f64,
    pub(crate) projected: f64,
    pub(crate) rows: f64,
}

const BUCKET: f64 = 0.1;

/// Per-100 ms series of one run, x in seconds from the burst's start.
#[derive(Debug, Default)]
pub(crate) struct Series {
    pub(crate) arrivals: Vec<(f64, f64)>,
    pub(crate) accepted: Vec<(f64, f64)>,
    pub(crate) store: Vec<(f64, f64)>,
    pub(crate) lag: Vec<(f64, f64)>,
}

fn bucketed(times: impl Iterator<Item = f64>, until: f64) -> Vec<(f64, f64)> {
    let n = (until / BUCKET).ceil().max(1.0) as usize + 1;
    let mut counts = vec![0.0; n];
    for t in times {
        let i = (t / BUCKET).floor();
        if i >= 0.0 && (i as usize) < n {
            counts[i as usize] += 1.0;
        }
    }
    counts.into_iter().enumerate().map(|(i, c)| (i as f64 * BUCKET, c)).collect()
}

impl Series {
    pub(crate) fn from_phase(outcomes: &[Outcome], samples: &[Sample]) -> Self {
        let secs = |d: Duration| d.as_secs_f64();
        let until = samples.last().map_or(0.0, |s| s.t).max(outcomes.iter().map(|o| secs(o.done)).fold(0.0, f64::max));
        let arrivals = bucketed(outcomes.iter().map(|o| secs(o.scheduled)), until);
        let accepted = bucketed(outcomes.iter().filter(|o| o.accepted()).map(|o| secs(o.done)), until);
        let has_projector = samples.iter().any(|s| s.rows > 0.0);
        let mut store = Vec::new();
        let mut lag = Vec::new();
        for w in samples.windows(2) {
            let dt = (w[1].t - w[0].t).max(1e-3);
            // Without a projector (direct), every accepted report was a store write.
            let d = if has_projector { w[1].rows - w[0].rows } else { w[1].accepted - w[0].accepted };
            store.push((w[1].t, d * BUCKET / dt));
            lag.push((w[1].t, (w[1].accepted - w[1].projected).max(0.0)));
        }
        Self { arrivals, accepted, store, lag: if has_projector { lag } else { Vec::new() } }
    }

    fn x_max(&self) -> f64 {
        self.arrivals.iter().chain(&self.accepted).chain(&self.store).map(|p| p.0).fold(1.0, f64::max)
    }

    fn y_max(&self) -> f64 {
        self.arrivals.iter().chain(&self.accepted).chain(&self.store).map(|p| p.1).fold(1.0, f64::max)
    }
}

fn panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    title: &str,
    s: &Series,
    x_max: f64,
) -> anyhow::Result<()> {
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..s.y_max() * 1.1)?;
    chart.configure_mesh().x_desc("seconds since the burst began").y_desc("per 100 ms").draw()?;
    for (data, color, label) in [
        (&s.arrivals, RED, "arrivals (scheduled sends)"),
        (&s.accepted, BLUE, "acceptances (2xx)"),
        (&s.store, RGBColor(0, 150, 0), "store writes (rows)"),
    ] {
        let color: RGBAColor = color.to_rgba();
        chart
            .draw_series(LineSeries::new(data.iter().copied(), color.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    Ok(())
}

/// Draws `burst.png`: one panel of arrivals, acceptances and store writes per path run
/// (`panels`: title and series, in order — the path under test, then, when measured in the
/// same invocation, the embedded path beside a Kafka run, then the direct baseline), and
/// below them the projector lag of every path that has a projector, one line each.
pub(crate) fn draw(path: &Path, panels: &[(&str, &Series)], caption: &str) -> anyhow::Result<()> {
    let height = 400 * (panels.len() as u32 + 1);
    let root = BitMapBackend::new(path, (1400, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let (head, body) = root.split_vertically(40);
    head.draw(&Text::new(caption.to_owned(), (12, 10), ("sans-serif", 18)))?;
    let areas = body.split_evenly((panels.len() + 1, 1));
    let x_max = panels.iter().map(|(_, s)| s.x_max()).fold(1.0, f64::max);
    for ((title, series), area) in panels.iter().zip(&areas) {
        panel(area, title, series, x_max)?;
    }
    let lags: Vec<(&str, &Series)> = panels.iter().filter(|(_, s)| !s.lag.is_empty()).copied().collect();
    let lag_max = lags.iter().flat_map(|(_, s)| &s.lag).map(|p| p.1).fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(&areas[panels.len()])
        .caption("projector lag (accepted − projected reports)", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..lag_max * 1.1)?;
    chart.configure_mesh().x_desc("seconds since the burst began").y_desc("reports").draw()?;
    for ((title, s), color) in lags.iter().zip([MAGENTA, RGBColor(0, 120, 200), RGBColor(200, 120, 0)]) {
        let color = color.to_rgba();
        chart
            .draw_series(LineSeries::new(s.lag.iter().copied(), color.stroke_width(2)))?
            .label(title.split(':').next().unwrap_or(title).to_owned())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

/// `sustain.png`'s data, x in seconds from the load's start.
#[derive(Debug, Default)]
pub(crate) struct SustainSeries {
    /// Write latency (ms, from the scheduled send) per 250 ms of scheduled time: p50, p99, max.
    pub(crate) p50: Vec<(f64, f64)>,
    pub(crate) p99: Vec<(f64, f64)>,
    pub(crate) max: Vec<(f64, f64)>,
    /// Every read: (scheduled time, latency ms).
    pub(crate) calendar: Vec<(f64, f64)>,
    pub(crate) day_page: Vec<(f64, f64)>,
    /// Writes per second: scheduled (offered) and accepted per 250 ms, projected over 1 s.
    pub(crate) offered: Vec<(f64, f64)>,
    pub(crate) accepted: Vec<(f64, f64)>,
    pub(crate) projected: Vec<(f64, f64)>,
}

/// Draws `sustain.png`: latency over time (log scale) above, rates below.
pub(crate) fn draw_sustain(path: &Path, s: &SustainSeries, caption: &str) -> anyhow::Result<()> {
    let root = BitMapBackend::new(path, (1400, 1000)).into_drawing_area();
    root.fill(&WHITE)?;
    let (head, body) = root.split_vertically(40);
    head.draw(&Text::new(caption.to_owned(), (12, 10), ("sans-serif", 16)))?;
    let areas = body.split_evenly((2, 1));
    let lat = || s.p50.iter().chain(&s.p99).chain(&s.max).chain(&s.calendar).chain(&s.day_page);
    let x_max = lat().chain(&s.offered).chain(&s.accepted).chain(&s.projected).map(|p| p.0).fold(1.0, f64::max);
    // Latencies on a log scale from 0.1 ms (smaller values are drawn at 0.1 ms).
    let floor = 0.1;
    let y_max = lat().map(|p| p.1).fold(10.0, f64::max) * 1.5;
    let mut chart = ChartBuilder::on(&areas[0])
        .caption("latency from the scheduled send (ms, log scale)", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, (floor..y_max).log_scale())?;
    chart.configure_mesh().x_desc("seconds since the load began").y_desc("ms").draw()?;
    for (data, color, label) in [
        (&s.p50, BLUE.to_rgba(), "writes p50 per 250 ms"),
        (&s.p99, RED.to_rgba(), "writes p99 per 250 ms"),
        (&s.max, RGBColor(150, 150, 150).to_rgba(), "writes max per 250 ms"),
    ] {
        chart
            .draw_series(LineSeries::new(data.iter().map(|p| (p.0, p.1.max(floor))), color.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    for (data, color, label) in [
        (&s.calendar, RGBColor(0, 150, 0).to_rgba(), "calendar reads (each)"),
        (&s.day_page, MAGENTA.to_rgba(), "day page reads (each)"),
    ] {
        chart
            .draw_series(data.iter().map(|p| Circle::new((p.0, p.1.max(floor)), 3, color.filled())))?
            .label(label)
            .legend(move |(x, y)| Circle::new((x + 10, y), 3, color.filled()));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;

    let r_max = s.offered.iter().chain(&s.accepted).chain(&s.projected).map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&areas[1])
        .caption("writes per second", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..r_max)?;
    chart.configure_mesh().x_desc("seconds since the load began").y_desc("reports/s").draw()?;
    for (data, color, label) in [
        (&s.offered, RED.to_rgba(), "offered (scheduled sends)"),
        (&s.accepted, BLUE.to_rgba(), "accepted (2xx)"),
        (&s.projected, RGBColor(0, 150, 0).to_rgba(), "projected"),
    ] {
        chart
            .draw_series(LineSeries::new(data.iter().copied(), color.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}
