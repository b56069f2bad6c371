//! The book's pictures: SVG charts drawn from the JSON records with plotters.
//! Only plotters' SVG backend is used, so text stays `<text>` for the
//! browser to draw and no font library is needed to make them.

use plotters::prelude::*;

use crate::load::record::Span;

/// The most requests a timeline draws (one bar each).
pub const TIMELINE_MOST: usize = 64;

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
    fn nothing_or_too_much_draws_nothing() {
        assert!(timeline_svg("x", &[]).is_none());
        let many: Vec<Span> = (0..100).map(|i| span(i, 0, 1, Some(200))).collect();
        assert!(timeline_svg("x", &many).is_none());
    }
}
