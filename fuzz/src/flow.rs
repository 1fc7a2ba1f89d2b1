//! The `flow` target: the spec crate's [`World`] (the real core among a victim, an
//! attacker, the honest client, an auto-approving upstream and a clock; `spec/README.md`),
//! driven by the fuzzer one byte per step.
//!
//! The input's first byte picks the consent policy (low bit set: `Remember`); every further
//! byte is one step, `w.step(w.actions()[byte % n])`, and `check_invariants` (the spec's
//! P1–P7 and the host-glue check, docs/design.md#properties) runs after each. The model check
//! explores the same World exhaustively to a small bound; here the bounds are [`BOUNDS`]
//! (unbounded but for the clock), so the fuzzer reaches the long interleavings the checker cannot
//! (docs/conventions.md#one-world-three-drivers).

use std::sync::LazyLock;

use consent_gate::ConsentPolicy;
use consent_gate_spec::{Action, Bounds, Faults, Setup, Violation, World};

/// Most steps per input (`.ci/fuzz` passes `-max_len=65`: the policy byte and 64 steps).
pub const MAX_STEPS: usize = 64;

/// The bounds of a fuzzed World: unbounded but for two clock advances. Enough to expire a
/// code, a page or a transaction (P7) and to leave the refresh grace window; more only
/// ends flows early. Measured on random inputs of 32 and 64 steps: unbounded ticks
/// (`Bounds::LONG`) found `state_reusable` and `code_reusable` 2-4 times less often, and 32
/// steps 4-15 times less often than 64, so that the fault self-test missed
/// `code_reusable` within its 60 s under ASan.
pub const BOUNDS: Bounds = Bounds {
    ticks: 2,
    ..Bounds::LONG
};

/// The World a flow input starts from: `faults` at [`BOUNDS`], `Remember` when the policy
/// byte's low bit is set.
pub fn world(policy: u8, faults: Faults) -> World {
    let policy = if policy & 1 == 1 {
        ConsentPolicy::Remember
    } else {
        ConsentPolicy::Always
    };
    World::with_setup(Setup {
        faults,
        policy,
        bounds: BOUNDS,
        documents: false,
    })
}

/// The two starting Worlds with the switches `CG_FAULT` names, built once per process
/// (the gate and the honest registration cost more than a short run).
static START: LazyLock<[World; 2]> = LazyLock::new(|| {
    let faults = crate::fixture::faults_from_env();
    [world(0, faults), world(1, faults)]
});

/// Runs `steps` from `start`; the first violated property with the actions up to it.
pub fn run_from(start: &World, steps: &[u8]) -> Result<usize, (Violation, Vec<Action>)> {
    let mut w = start.clone();
    let mut trace = Vec::new();
    for byte in steps.iter().take(MAX_STEPS) {
        let actions = w.actions();
        if actions.is_empty() {
            break;
        }
        let a = actions[usize::from(*byte) % actions.len()];
        w.step(a);
        trace.push(a);
        w.check_invariants().map_err(|v| (v, trace.clone()))?;
    }
    Ok(trace.len())
}

/// Runs one input against the World of the process's `CG_FAULT`.
pub fn run(data: &[u8]) -> Result<usize, (Violation, Vec<Action>)> {
    match data.split_first() {
        Some((policy, steps)) => run_from(&START[usize::from(*policy & 1)], steps),
        None => Ok(0),
    }
}

/// The `flow` target: panics on a violated property, printing the trace. `.ci/fuzz`
/// greps for `flow invariant` to tell a caught fault from any other crash.
pub fn flow(data: &[u8]) {
    if let Err((v, trace)) = run(data) {
        let policy = data.first().map(|p| p & 1);
        panic!("flow invariant {v}\npolicy byte & 1 = {policy:?}\ntrace: {trace:#?}");
    }
}

/// The input that makes [`run_from`] take `trace` from `start`: the policy byte, then each
/// action's index in the enabled list. Panics if an action is not enabled where it is
/// taken (the trace does not fit the World).
pub fn encode(policy: u8, start: &World, trace: &[Action]) -> Vec<u8> {
    let mut w = start.clone();
    let mut out = vec![policy];
    for a in trace {
        let i = w
            .actions()
            .iter()
            .position(|b| b == a)
            .unwrap_or_else(|| panic!("{a:?} is not enabled after {out:?}"));
        out.push(u8::try_from(i).expect("fewer than 256 enabled actions"));
        w.step(*a);
    }
    out
}
