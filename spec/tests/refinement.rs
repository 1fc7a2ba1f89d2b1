//! Refinement: the real core (inside the World) against an abstract reference model of the
//! protocol, driven by the same long random action sequences (proptest-state-machine,
//! docs/conventions.md#check-the-real-core, docs/design.md#refinement).
//!
//! The reference knows nothing of cookies, MACs, URLs or store keys: it is pure sets and
//! maps of who approved what in which browser and which pages, transactions, codes, grants
//! and refresh tokens are live, with the lifetimes of `Lifetimes::default()`. After every
//! step the World's outcome must equal the one the reference predicts, and P1–P6 must
//! hold. Then every fault switch must make the same harness fail
//! (docs/conventions.md#checkers-are-self-tested): in builds with
//! `RUSTFLAGS="--cfg consent_gate_faults"`, the only ones that have them.

#[cfg(consent_gate_faults)]
use std::sync::Arc;
#[cfg(consent_gate_faults)]
use std::sync::atomic::{AtomicUsize, Ordering};

#[cfg(consent_gate_faults)]
use consent_gate_spec::minimize;
use consent_gate_spec::{Action, Faults, Identity, Outcome, Party, Refusal, Setup, World};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
#[cfg(consent_gate_faults)]
use proptest::test_runner::{TestCaseError, TestError};
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};

#[path = "refinement/reference.rs"]
mod reference;

use reference::{BOUNDS, Reference, Spec};

/// The World a reference state stands for, with `faults` compiled in.
fn world_for(s: &Spec, faults: Faults) -> World {
    World::with_setup(Setup {
        faults,
        policy: s.policy,
        bounds: BOUNDS,
        documents: false,
    })
}

/// One step on both sides; `Err` on the first discrepancy or violated property.
fn compare(world: &mut World, after: &Spec, a: Action) -> Result<(), String> {
    let got = world.step(a);
    if got != after.expected {
        return Err(format!(
            "{a:?}: the core answered {got:?}, the protocol says {:?}",
            after.expected
        ));
    }
    world.check_invariants().map_err(|v| format!("{a:?}: {v}"))
}

struct Refinement;

impl StateMachineTest for Refinement {
    type SystemUnderTest = World;
    type Reference = Reference;

    fn init_test(s: &Spec) -> World {
        world_for(s, Faults::NONE)
    }

    fn apply(mut world: World, after: &Spec, a: Action) -> World {
        if let Err(e) = compare(&mut world, after, a) {
            panic!("{e}");
        }
        world
    }
}

prop_state_machine! {
    #![proptest_config(Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    })]

    /// Long random runs (100–400 steps, random clock advances, both consent policies):
    /// the core refines the protocol, step by step.
    #[test]
    fn core_refines_the_protocol(sequential 100..400 => Refinement);
}

/// Runs one generated sequence against a World with `faults`, as
/// `StateMachineTest::test_sequential` does, but returning the discrepancy.
#[cfg(consent_gate_faults)]
fn run(
    faults: Faults,
    mut s: Spec,
    transitions: Vec<Action>,
    seen: Option<Arc<AtomicUsize>>,
) -> Result<(), TestCaseError> {
    let mut world = world_for(&s, faults);
    for a in transitions {
        if let Some(seen) = &seen {
            seen.fetch_add(1, Ordering::SeqCst);
        }
        s = Reference::apply(s, &a);
        compare(&mut world, &s, a).map_err(TestCaseError::fail)?;
    }
    Ok(())
}

/// Whether `transitions` (each enabled in turn) make a World with `faults` depart from
/// the protocol.
#[cfg(consent_gate_faults)]
fn departs(faults: Faults, init: &Spec, transitions: &[Action]) -> bool {
    let mut s = init.clone();
    let mut world = world_for(&s, faults);
    for a in transitions {
        if !s.enabled(a) {
            return false;
        }
        s = Reference::apply(s, a);
        if compare(&mut world, &s, *a).is_err() {
            return true;
        }
    }
    false
}

#[test]
#[cfg(consent_gate_faults)]
fn every_fault_breaks_refinement() {
    for (name, faults) in Faults::ALL {
        let config = Config {
            cases: 256,
            failure_persistence: None,
            max_shrink_iters: 4096,
            ..Config::default()
        };
        // A fixed seed: the budget below is a deterministic search, not a dice roll.
        let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
        let mut runner = TestRunner::new_with_rng(config, rng);
        let strategy = Reference::sequential_strategy(20..300);
        let result = runner.run(&strategy, |(init, transitions, seen)| {
            run(faults, init, transitions, seen)
        });
        match result {
            Err(TestError::Fail(why, (init, transitions, _))) => {
                let shrunk = transitions.len();
                let minimal = minimize(transitions, |t| departs(faults, &init, t));
                let steps: Vec<String> = minimal.iter().map(|a| format!("    {a:?}")).collect();
                println!(
                    "fault {name} found ({:?}): {why}\n  shrunk to {shrunk} steps, minimized to {}:\n{}",
                    init.policy,
                    steps.len(),
                    steps.join("\n")
                );
            }
            Err(other) => panic!("fault {name}: the search failed: {other}"),
            Ok(()) => panic!("fault {name} NOT found in 256 runs"),
        }
    }
}

/// The random runs are not idle: across a fixed sample of generated sequences the
/// reference predicts every kind of outcome that matters, so the refinement test above
/// compares the core on each of them (honest tokens, refresh, denial, and every refusal
/// the attacker's moves should meet).
#[test]
fn random_runs_reach_every_outcome_that_matters() {
    use proptest::strategy::{Strategy, ValueTree};
    let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let strategy = Reference::sequential_strategy(100..400);
    let mut seen: Vec<Outcome> = Vec::new();
    for _ in 0..64 {
        let Ok(tree) = strategy.new_tree(&mut runner) else {
            panic!("the strategy generates");
        };
        let (mut s, transitions, _) = tree.current();
        for a in transitions {
            s = Reference::apply(s, &a);
            if !seen.contains(&s.expected) {
                seen.push(s.expected.clone());
            }
        }
    }
    let must = [
        Outcome::WentUpstream { remembered: true },
        Outcome::ClientRedirect {
            to: Party::Honest,
            error: Some("access_denied"),
        },
        Outcome::Tokens {
            party: Party::Honest,
            subject: Identity::Victim,
            refreshed: false,
        },
        Outcome::Tokens {
            party: Party::Honest,
            subject: Identity::Victim,
            refreshed: true,
        },
        Outcome::Tokens {
            party: Party::Attacker,
            subject: Identity::Attacker,
            refreshed: false,
        },
        Outcome::Tokens {
            party: Party::Attacker,
            subject: Identity::Victim,
            refreshed: false,
        },
        Outcome::Refused(Refusal::CrossSite),
        Outcome::Refused(Refusal::Csrf),
        Outcome::Refused(Refusal::Binding),
        Outcome::Refused(Refusal::Issuer),
        Outcome::Refused(Refusal::Expired),
        Outcome::Refused(Refusal::Unknown),
        Outcome::Refused(Refusal::RedirectMismatch),
        Outcome::Refused(Refusal::CodeReused),
        Outcome::Refused(Refusal::RefreshReused),
        Outcome::Refused(Refusal::GrantRevoked),
    ];
    for m in &must {
        assert!(
            seen.contains(m),
            "no random run reached {m:?}; reached {seen:?}"
        );
    }
}
