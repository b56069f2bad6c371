//! The figures of chapter 11 that other tables read (the decision table),
//! named as the experiments in `mod.rs` are made.

use super::super::figure::Figure;
use super::super::spec::Plan;

/// The models whose scaling other chapters read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scaling {
    Steal,
    PerCore,
    Processes,
    /// The process per core with fair accept: measured with two workers or
    /// more only (one worker has no one to be fair to).
    FairAccept,
}

impl Scaling {
    pub const ALL: [Scaling; 4] = [
        Scaling::Steal,
        Scaling::PerCore,
        Scaling::Processes,
        Scaling::FairAccept,
    ];
}

/// `/work` on `model` with `workers` workers: the decision table reads how
/// the rate grows from 1 worker to one per core.
pub fn scaling(model: Scaling, workers: usize) -> Figure {
    let name = match model {
        Scaling::Steal => "steal",
        Scaling::PerCore => "per_core",
        Scaling::Processes => "processes",
        Scaling::FairAccept => "processes_fair",
    };
    Figure::experiment(11, format!("scaling_{name}_{workers}"))
}

/// One heavy connection among light ones on `model` with a worker per
/// core: the decision table reads the light requests' p99.
pub fn imbalance(model: Scaling) -> Figure {
    let name = match model {
        Scaling::Steal => "steal",
        Scaling::PerCore => "per_core",
        Scaling::Processes => "processes",
        Scaling::FairAccept => "processes_fair",
    };
    Figure::experiment(11, format!("imbalance_{name}"))
}

/// Every figure other chapters read from this one.
pub fn figures_read(plan: Plan) -> Vec<Figure> {
    let cores = plan.cores.max(2);
    Scaling::ALL
        .into_iter()
        .flat_map(|model| match model {
            Scaling::FairAccept => vec![scaling(model, cores), imbalance(model)],
            _ => vec![scaling(model, 1), scaling(model, cores), imbalance(model)],
        })
        .collect()
}
