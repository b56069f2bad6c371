//! The book's pictures: SVG charts drawn from the JSON records with plotters.
//! Only plotters' SVG backend is used, so text stays `<text>` for the
//! browser to draw and no font library is needed to make them.

use plotters::coord::ranged1d::ValueFormatter;
use plotters::prelude::*;

use evt::load::record::Span;

mod linear;
mod sequence;

pub use linear::{linear_x_svg, time_lines_svg};
pub use sequence::{SequenceStep, sequence_svg};

/// Where a chart's legend goes (out of the lines' way).
pub use plotters::chart::SeriesLabelPosition as Legend;

/// The most requests a timeline draws (one bar each).
pub const TIMELINE_MOST: usize = 16;

/// Colours for answered and failed requests.
const ANSWERED: RGBColor = RGBColor(46, 110, 190);
const FAILED: RGBColor = RGBColor(200, 60, 50);

/// A timeline of one run: a bar per request from when it was sent to when
/// its answer arrived, one row per request in the order they were sent.
/// Five requests on one blocking thread make a staircase; on an event loop,
/// five bars side by side. `None` when there is nothing (or too much) to draw.
pub fn timeline_svg(title: &str, spans: &[Span]) -> Option<String> {
    if spans.is_empty() || spans.len() > TIMELINE_MOST {
        return None;
    }
    let mut rows: Vec<&Span> = spans.iter().collect();
    rows.sort_by_key(|span| (span.start_us, span.connection));
    let end_s = rows.iter().map(|span| span.end_us).max()? as f64 / 1e6;
    let x_end = (end_s * 1.08).max(0.001);
    let count = rows.len() as u32;
    let height = 90 + 26 * count;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, height)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(80)
            .build_cartesian_2d(0f64..x_end, 0u32..count)
            .ok()?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(count as usize)
            .y_label_formatter(&|row| format!("request {}", count - row))
            .x_desc("seconds since the first request was sent")
            .draw()
            .ok()?;
        chart
            .draw_series(rows.iter().enumerate().map(|(index, span)| {
                // The first request sent is the top row.
                let row = count - 1 - index as u32;
                let colour = if span.status.is_some() {
                    ANSWERED
                } else {
                    FAILED
                };
                Rectangle::new(
                    [
                        (span.start_us as f64 / 1e6, row),
                        (span.end_us as f64 / 1e6, row + 1),
                    ],
                    colour.mix(0.85).filled(),
                )
            }))
            .ok()?;
        root.present().ok()?;
    }
    Some(svg)
}

/// Colours for several lines, in order.
const PALETTE: [RGBColor; 6] = [
    ANSWERED,
    FAILED,
    RGBColor(60, 150, 80),
    RGBColor(150, 90, 170),
    RGBColor(230, 150, 30),
    RGBColor(90, 90, 90),
];

/// Draws the chart's legend at `position`, on a light box.
fn legend<'a, DB, CT>(chart: &mut ChartContext<'a, DB, CT>, position: Legend) -> Option<()>
where
    DB: DrawingBackend + 'a,
    CT: CoordTranslate,
{
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .draw()
        .ok()
}

/// Colours for the model's line and the measured one.
const PREDICTED: RGBColor = RGBColor(150, 150, 150);
const MEASURED: RGBColor = ANSWERED;

/// A sweep: requests per second predicted and measured against the swept
/// value (threads, connections), on a doubling x axis. Each point is
/// `(x, predicted, measured)`.
pub fn sweep_svg(title: &str, x_label: &str, points: &[(f64, f64, f64)]) -> Option<String> {
    if points.len() < 2 {
        return None;
    }
    let x_min = points.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let x_max = points.iter().map(|p| p.0).fold(0.0, f64::max);
    let y_max = points.iter().map(|p| p.1.max(p.2)).fold(0.0, f64::max) * 1.15;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 400)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((x_min..x_max * 1.1).log_scale(), 0f64..y_max.max(1.0))
            .ok()?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc("requests per second")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .draw()
            .ok()?;
        for (colour, pick, name) in [
            (PREDICTED, 1usize, "predicted"),
            (MEASURED, 2usize, "measured"),
        ] {
            let line: Vec<(f64, f64)> = points
                .iter()
                .map(|p| (p.0, if pick == 1 { p.1 } else { p.2 }))
                .collect();
            chart
                .draw_series(LineSeries::new(line.clone(), colour.stroke_width(2)))
                .ok()?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 18, y)], colour.stroke_width(2))
                });
            chart
                .draw_series(
                    line.iter()
                        .map(|&point| Circle::new(point, 3, colour.filled())),
                )
                .ok()?;
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        root.present().ok()?;
    }
    Some(svg)
}

/// Several measured lines against a doubling x axis, each with its
/// model's line beside it in a lighter shade. The y axis is `y_range` where
/// given; otherwise linear from zero for lines within a factor of three of
/// each other, logarithmic for lines further apart. Each line is `(name, points)`.
pub fn lines_svg(
    title: &str,
    x_label: &str,
    y_label: &str,
    measured: &[(String, Vec<(f64, f64)>)],
    predicted: &[(String, Vec<(f64, f64)>)],
    legend: Legend,
    y_range: Option<std::ops::Range<f64>>,
) -> Option<String> {
    let all = measured
        .iter()
        .chain(predicted)
        .flat_map(|(_, points)| points);
    let (mut x_min, mut x_max, mut y_min, mut y_max) = (f64::INFINITY, 0f64, f64::INFINITY, 0f64);
    for &(x, y) in all {
        x_min = x_min.min(x);
        x_max = x_max.max(x);
        y_min = y_min.min(y);
        y_max = y_max.max(y);
    }
    if !(x_max > 0.0 && y_max > 0.0) {
        return None;
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 420)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        let mut builder = ChartBuilder::on(&root);
        builder
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60);
        // Ticks at the values measured (a doubling sweep: 1, 2, 4 …), not
        // at every integer the log scale would crowd in.
        let mut ticks: Vec<f64> = measured
            .iter()
            .flat_map(|(_, points)| points.iter().map(|p| p.0))
            .collect();
        ticks.sort_by(f64::total_cmp);
        ticks.dedup();
        let x_range = (x_min.max(1e-3)..x_max * 1.1)
            .log_scale()
            .with_key_points(ticks);
        let spread = y_max / y_min.max(1e-3);
        let lines = Lines {
            x_label,
            y_label,
            measured,
            predicted,
            legend,
        };
        if let Some(y_range) = y_range {
            // A scale that means something (0 to 100 %): drawn as given, so a
            // difference of a percent looks like one.
            lines.draw(&mut builder.build_cartesian_2d(x_range, y_range).ok()?)?;
        } else if spread < 3.0 {
            // Lines close together (within a factor of three): a linear axis
            // from zero, so a difference looks as large as it is.
            let y_range = 0.0..y_max * 1.15;
            lines.draw(&mut builder.build_cartesian_2d(x_range, y_range).ok()?)?;
        } else {
            // Lines far apart: a log axis, with room above for the legend.
            let y_range =
                (y_min.max(1e-3) / spread.powf(0.2)..y_max * spread.powf(0.35)).log_scale();
            lines.draw(&mut builder.build_cartesian_2d(x_range, y_range).ok()?)?;
        }
        root.present().ok()?;
    }
    Some(svg)
}

/// What [`lines_svg`] draws, on whichever axes it chose.
struct Lines<'a> {
    x_label: &'a str,
    y_label: &'a str,
    measured: &'a [(String, Vec<(f64, f64)>)],
    predicted: &'a [(String, Vec<(f64, f64)>)],
    legend: Legend,
}

impl Lines<'_> {
    fn draw<'b, X, Y>(
        &self,
        chart: &mut ChartContext<'b, SVGBackend<'b>, Cartesian2d<X, Y>>,
    ) -> Option<()>
    where
        X: Ranged<ValueType = f64> + ValueFormatter<f64>,
        Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        chart
            .configure_mesh()
            .x_desc(self.x_label)
            .y_desc(self.y_label)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| {
                if *y >= 1000.0 {
                    format!("{y:.0}")
                } else if *y >= 1.0 {
                    format!("{y:.1}")
                } else {
                    format!("{y:.2}")
                }
            })
            .draw()
            .ok()?;
        for (index, (name, points)) in self.measured.iter().enumerate() {
            let colour = PALETTE[index % PALETTE.len()];
            if let Some((_, model)) = self.predicted.iter().find(|(n, _)| n == name) {
                chart
                    .draw_series(LineSeries::new(
                        model.clone(),
                        colour.mix(0.35).stroke_width(1),
                    ))
                    .ok()?;
            }
            chart
                .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
                .ok()?
                .label(name.clone())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 18, y)], colour.stroke_width(2))
                });
            chart
                .draw_series(
                    points
                        .iter()
                        .map(|&point| Circle::new(point, 3, colour.filled())),
                )
                .ok()?;
        }
        legend(chart, self.legend.clone())?;
        Some(())
    }
}

/// The event loop's lag over a run: how late a task that asks to wake every
/// 10 ms woke, against seconds since the first request was sent. Points are
/// `(seconds, lag in ms)`.
pub fn lag_svg(title: &str, points: &[(f64, f64)]) -> Option<String> {
    if points.is_empty() {
        return None;
    }
    let x_end = points.iter().map(|p| p.0).fold(0.0, f64::max).max(0.001) * 1.02;
    let y_max = points.iter().map(|p| p.1).fold(0.0, f64::max).max(5.0) * 1.1;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 260)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..x_end, 0f64..y_max)
            .ok()?;
        chart
            .configure_mesh()
            .x_desc("seconds since the first request was sent")
            .y_desc("lag, ms")
            .draw()
            .ok()?;
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                FAILED.stroke_width(2),
            ))
            .ok()?;
        root.present().ok()?;
    }
    Some(svg)
}

/// Cumulative shares: for each line, the share of items (in %) with at most
/// x, as a staircase, on a logarithmic x axis from 1 and a linear y axis
/// from 0 to 100 %. Each line is `(name, sorted (x, share) steps)`.
pub fn cumulative_svg(
    title: &str,
    x_label: &str,
    y_label: &str,
    lines: &[(String, Vec<(f64, f64)>)],
) -> Option<String> {
    let x_max = lines
        .iter()
        .flat_map(|(_, points)| points)
        .map(|p| p.0)
        .fold(0.0, f64::max);
    if lines.is_empty() || x_max < 1.0 {
        return None;
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 400)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((1f64..x_max * 1.5).log_scale(), 0f64..105f64)
            .ok()?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0} %"))
            .draw()
            .ok()?;
        for (index, (name, points)) in lines.iter().enumerate() {
            let colour = PALETTE[index % PALETTE.len()];
            // A staircase: flat until the next x, then up.
            let mut steps = Vec::with_capacity(points.len() * 2);
            let mut level = 0.0;
            for &(x, share) in points {
                steps.push((x.max(1.0), level));
                steps.push((x.max(1.0), share));
                level = share;
            }
            steps.push((x_max * 1.5, level));
            chart
                .draw_series(LineSeries::new(steps, colour.stroke_width(2)))
                .ok()?
                .label(name.clone())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 18, y)], colour.stroke_width(2))
                });
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        root.present().ok()?;
    }
    Some(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(connection: u32, start_ms: u64, end_ms: u64, status: Option<u16>) -> Span {
        Span {
            connection,
            start_us: start_ms * 1000,
            end_us: end_ms * 1000,
            status,
        }
    }

    #[test]
    fn a_staircase_is_drawn_as_one_bar_per_request() {
        let spans: Vec<Span> = (0..5)
            .map(|i| span(i, 0, 2000 * (i as u64 + 1), Some(200)))
            .collect();
        let svg = timeline_svg("Five requests, one thread", &spans).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("Five requests, one thread"));
        assert_eq!(svg.matches("fill=\"#2E6EBE\"").count(), 5, "{svg}");
        assert!(svg.contains("request 1") && svg.contains("request 5"));
        let failed = timeline_svg("x", &[span(0, 0, 100, None)]).unwrap();
        assert!(failed.contains("#C83C32"));
    }

    #[test]
    fn a_sweep_draws_both_lines_and_a_lag_chart_its_points() {
        let points = [(1.0, 10.0, 9.9), (2.0, 20.0, 19.8), (4.0, 40.0, 39.0)];
        let svg = sweep_svg("Threads", "threads", &points).unwrap();
        assert!(svg.contains("predicted") && svg.contains("measured"));
        assert_eq!(svg.matches("<circle").count(), 6, "{svg}");
        assert!(sweep_svg("x", "x", &points[..1]).is_none());
        let lag = lag_svg("Lag", &[(0.0, 1.0), (0.5, 480.0), (1.0, 1.0)]).unwrap();
        assert!(lag.contains("<polyline") || lag.contains("<path"), "{lag}");
        assert!(lag_svg("x", &[]).is_none());
    }

    #[test]
    fn nothing_or_too_much_draws_nothing() {
        assert!(timeline_svg("x", &[]).is_none());
        let many: Vec<Span> = (0..100).map(|i| span(i, 0, 1, Some(200))).collect();
        assert!(timeline_svg("x", &many).is_none());
    }
}
