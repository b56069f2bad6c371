//! A sequence picture: who acts, step by step (chapter 9's trace).

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{ANSWERED, PALETTE};

/// One row of a sequence picture: which lane acts, when, and what it does.
#[derive(Debug, Clone, PartialEq)]
pub struct SequenceStep {
    pub lane: usize,
    /// When, as shown in the left column.
    pub at: String,
    pub label: String,
}

/// A sequence picture: a column per lane (who acts), a row per step top to
/// bottom, a dot where the step happens and a line from each dot to the
/// next, so the flow of control reads as a path; the step's words on the
/// right. `None` when there is nothing to draw.
pub fn sequence_svg(title: &str, lanes: &[&str], steps: &[SequenceStep]) -> Option<String> {
    if steps.is_empty() || lanes.is_empty() {
        return None;
    }
    const ROW: i32 = 24;
    const TOP: i32 = 78;
    const TIME_RIGHT: i32 = 84;
    const LANE_LEFT: i32 = 96;
    const LANE_WIDTH: i32 = 150;
    let words_left = LANE_LEFT + LANE_WIDTH * lanes.len() as i32 + 8;
    let width = (words_left + 430) as u32;
    let height = (TOP + ROW * steps.len() as i32 + 16) as u32;
    let lane_x = |lane: usize| LANE_LEFT + LANE_WIDTH * lane as i32 + LANE_WIDTH / 2;
    let row_y = |row: usize| TOP + ROW * row as i32 + ROW / 2;
    let font = |size: i32| ("sans-serif", size).into_font().color(&BLACK);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        root.draw(&Text::new(title, (12, 10), font(16))).ok()?;
        let centred = font(13).pos(Pos::new(HPos::Center, VPos::Top));
        for (lane, name) in lanes.iter().enumerate() {
            let x = lane_x(lane);
            root.draw(&Text::new(*name, (x, 40), centred.clone()))
                .ok()?;
            root.draw(&PathElement::new(
                [(x, TOP - 8), (x, height as i32 - 8)],
                BLACK.mix(0.15).stroke_width(1),
            ))
            .ok()?;
        }
        let right = font(12).pos(Pos::new(HPos::Right, VPos::Center));
        let left = font(12).pos(Pos::new(HPos::Left, VPos::Center));
        root.draw(&Text::new(
            "time",
            (TIME_RIGHT, 40),
            font(13).pos(Pos::new(HPos::Right, VPos::Top)),
        ))
        .ok()?;
        let path: Vec<(i32, i32)> = steps
            .iter()
            .enumerate()
            .map(|(row, step)| (lane_x(step.lane.min(lanes.len() - 1)), row_y(row)))
            .collect();
        root.draw(&PathElement::new(
            path.clone(),
            ANSWERED.mix(0.5).stroke_width(2),
        ))
        .ok()?;
        for (row, (step, point)) in steps.iter().zip(&path).enumerate() {
            let y = row_y(row);
            if row % 2 == 0 {
                root.draw(&Rectangle::new(
                    [(0, y - ROW / 2), (width as i32, y + ROW / 2)],
                    BLACK.mix(0.03).filled(),
                ))
                .ok()?;
            }
            let colour = PALETTE[step.lane % PALETTE.len()];
            root.draw(&Circle::new(*point, 5, colour.filled())).ok()?;
            root.draw(&Text::new(step.at.clone(), (TIME_RIGHT, y), right.clone()))
                .ok()?;
            root.draw(&Text::new(
                step.label.clone(),
                (words_left, y),
                left.clone(),
            ))
            .ok()?;
        }
        root.present().ok()?;
    }
    Some(svg)
}
