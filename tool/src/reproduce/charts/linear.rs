//! Lines on a linear x axis and a log y axis, with a shaded span (a stall,
//! the region past capacity).

use plotters::prelude::*;

use super::{Legend, PALETTE, legend};

/// Lines against seconds of a run (a linear time axis), on a log y axis
/// from `y_floor`, with the span `shade` (a stall) drawn behind them. Each
/// line is `(name, points)`; a line may have gaps (no point where nothing
/// happened), drawn as separate pieces so a gap looks like one.
pub fn time_lines_svg(
    title: &str,
    y_label: &str,
    lines: &[(String, Vec<(f64, f64)>)],
    shade: Option<(f64, f64, &str)>,
    gap: f64,
) -> Option<String> {
    linear_x_svg(
        title,
        "seconds into the run (when each request was due)",
        y_label,
        lines,
        shade,
        gap,
    )
}

/// Lines on a linear x axis from zero and a log y axis, with an optional
/// shaded span; see [`time_lines_svg`].
pub fn linear_x_svg(
    title: &str,
    x_label: &str,
    y_label: &str,
    lines: &[(String, Vec<(f64, f64)>)],
    shade: Option<(f64, f64, &str)>,
    gap: f64,
) -> Option<String> {
    let points = || lines.iter().flat_map(|(_, points)| points.iter());
    let x_end = points().map(|p| p.0).fold(0.0, f64::max) * 1.02;
    let y_max = points().map(|p| p.1).fold(0.0, f64::max);
    let y_min = points()
        .map(|p| p.1)
        .filter(|y| *y > 0.0)
        .fold(f64::INFINITY, f64::min);
    if !(x_end > 0.0 && y_max > 0.0 && y_min.is_finite()) {
        return None;
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 400)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..x_end, (y_min * 0.5..y_max * 40.0).log_scale())
            .ok()?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .y_label_formatter(&|y| {
                if *y >= 1.0 {
                    format!("{y:.0}")
                } else {
                    format!("{y:.2}")
                }
            })
            .draw()
            .ok()?;
        if let Some((from, to, label)) = shade {
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(from, y_min * 0.5), (to, y_max * 40.0)],
                    BLACK.mix(0.08).filled(),
                )))
                .ok()?
                .label(label)
                .legend(|(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 18, y + 5)], BLACK.mix(0.15).filled())
                });
        }
        for (index, (name, points)) in lines.iter().enumerate() {
            let colour = PALETTE[index % PALETTE.len()];
            // Split where consecutive points are further apart than `gap`.
            let mut pieces: Vec<Vec<(f64, f64)>> = Vec::new();
            for &point in points {
                match pieces.last_mut() {
                    Some(piece) if piece.last().is_some_and(|last| point.0 - last.0 <= gap) => {
                        piece.push(point)
                    }
                    _ => pieces.push(vec![point]),
                }
            }
            // A few measured points: mark each, so a line is not mistaken for data.
            if points.len() <= 20 {
                chart
                    .draw_series(points.iter().map(|&p| Circle::new(p, 4, colour.filled())))
                    .ok()?;
            }
            for (number, piece) in pieces.into_iter().enumerate() {
                let drawn = chart
                    .draw_series(LineSeries::new(piece, colour.stroke_width(2)))
                    .ok()?;
                if number == 0 {
                    drawn.label(name.clone()).legend(move |(x, y)| {
                        PathElement::new([(x, y), (x + 18, y)], colour.stroke_width(2))
                    });
                }
            }
        }
        legend(&mut chart, Legend::UpperRight)?;
        root.present().ok()?;
    }
    Some(svg)
}
