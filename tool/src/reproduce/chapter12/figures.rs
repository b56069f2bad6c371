//! The figures of this chapter that other tables read (the decision
//! table), named as the experiments in `mod.rs` are made.

use super::super::figure::Figure;
use super::super::spec::Plan;

/// This chapter's experiments that the decision table reads, by family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// Head-of-line: light requests beside 20 ms of CPU.
    Hol(&'static str),
    /// A downstream of fixed capacity, closed load.
    Downstream(&'static str),
    /// Offered `factor` × capacity (20 is 2.0 ×).
    Overload(&'static str, u32),
    /// Slow clients beside a probe.
    Slow(&'static str),
    /// Clients that give up on a slow request.
    Cancel(&'static str),
}

/// Every experiment the decision table reads: the names are the ones the
/// experiments above are made with, and a test checks each is planned.
pub const READ: &[Read] = &[
    Read::Hol("loop"),
    Read::Hol("steal"),
    Read::Hol("offload"),
    Read::Hol("pool"),
    Read::Hol("steal_eager"),
    Read::Hol("offload_bounded"),
    Read::Hol("busy_offload"),
    Read::Hol("busy_offload_bounded"),
    Read::Downstream("loop_free"),
    Read::Downstream("loop_slots"),
    Read::Downstream("threads"),
    Read::Downstream("threads_many"),
    Read::Overload("loop", 20),
    Read::Overload("shed", 20),
    Read::Overload("threads", 20),
    Read::Overload("timeout", 20),
    Read::Slow("pool"),
    Read::Slow("loop"),
    Read::Slow("front"),
    Read::Cancel("loop"),
    Read::Cancel("threads"),
];

/// The figure of one of [`READ`]. Only those can be made.
pub fn figure(read: Read) -> Figure {
    debug_assert!(READ.contains(&read), "{read:?} is not in READ");
    Figure::experiment(
        12,
        match read {
            Read::Hol(name) => format!("hol_{name}"),
            Read::Downstream(name) => format!("downstream_{name}"),
            Read::Overload(name, factor) => format!("overload_{name}_{factor}"),
            Read::Slow(name) => format!("slow_{name}"),
            Read::Cancel(name) => format!("cancel_{name}"),
        },
    )
}

/// Every figure other chapters read from this one.
pub fn figures_read(_plan: Plan) -> Vec<Figure> {
    READ.iter().map(|&read| figure(read)).collect()
}
