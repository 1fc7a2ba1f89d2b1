//! The `flow` target's checks (the spec crate's World driven one byte a step): its
//! committed seeds, honest flows and blocked attacks that must hold on correct code, and
//! one short trace per fault switch that must break the property the model check expects
//! (docs/conventions.md#checkers-are-self-tested). Apart from `tests.rs`, which keeps the
//! surfaces and the `hostile` world.

#[cfg(consent_gate_faults)]
use consent_gate::Faults;
use consent_gate_spec::{Action as SpecAction, Browser, Faults as SpecFaults, Party};

use super::inputs;
use crate::flow;

/// The victim's honest trip, from opening the link to the callback.
fn victim_trip() -> [SpecAction; 4] {
    use SpecAction::*;
    let v = Browser::Victim;
    [
        Open {
            browser: v,
            link: 0,
        },
        Approve {
            browser: v,
            page: 0,
        },
        Upstream {
            browser: v,
            redirect: 0,
        },
        Callback { browser: v, url: 0 },
    ]
}

/// The attacker registers its own client and approves its own consent page.
fn attacker_own_page() -> [SpecAction; 3] {
    use SpecAction::*;
    let x = Browser::Attacker;
    [
        Register,
        Open {
            browser: x,
            link: 2,
        },
        Approve {
            browser: x,
            page: 0,
        },
    ]
}

/// The `flow` seeds: the spec World's honest flows and blocked attack attempts, as
/// (policy byte, actions), none of which violates anything on correct code.
fn spec_flow_traces() -> Vec<(&'static str, u8, Vec<SpecAction>)> {
    use SpecAction::*;
    let (v, x) = (Browser::Victim, Browser::Attacker);
    let mut honest = victim_trip().to_vec();
    honest.push(RedeemCode {
        party: Party::Honest,
        code: 0,
    });
    let mut refresh = honest.clone();
    refresh.extend([
        Refresh {
            party: Party::Honest,
            token: 0,
        },
        Refresh {
            party: Party::Honest,
            token: 0,
        },
        Tick { secs: 61 },
        Refresh {
            party: Party::Honest,
            token: 0,
        },
    ]);
    let own = attacker_own_page();
    let mut a2 = own.to_vec();
    a2.extend([
        ForwardUpstreamUrl { redirect: 0 },
        Callback { browser: v, url: 0 },
    ]);
    let mut a3 = own[..2].to_vec();
    a3.extend([
        ForgedPost {
            page: 0,
            legacy: false,
        },
        ForgedPost {
            page: 0,
            legacy: true,
        },
    ]);
    let mut a7_a8 = own.to_vec();
    a7_a8.extend([
        Upstream {
            browser: x,
            redirect: 0,
        },
        Callback { browser: x, url: 0 },
        ReplayCallback { url: 0 },
        Callback { browser: x, url: 0 },
        RedeemCode {
            party: Party::Attacker,
            code: 0,
        },
        RedeemCode {
            party: Party::Attacker,
            code: 0,
        },
    ]);
    let remember = vec![
        Open {
            browser: v,
            link: 0,
        },
        Approve {
            browser: v,
            page: 0,
        },
        Open {
            browser: v,
            link: 0,
        },
        SameSiteOpen { link: 0 },
        Open {
            browser: v,
            link: 1,
        },
        Deny {
            browser: v,
            page: 1,
        },
    ];
    // A13: the mix-up burns the victim's `state`, so its own upstream trip then fails.
    let mut a13 = victim_trip().to_vec();
    a13.insert(2, MixUp { redirect: 0 });
    vec![
        ("seed-honest", 0, honest),
        ("seed-refresh", 0, refresh),
        ("seed-a2-forwarded-upstream-url", 0, a2),
        ("seed-a3-forged-post", 0, a3),
        ("seed-a7-a8-replays", 0, a7_a8),
        ("seed-remember", 1, remember),
        ("seed-a13-mix-up", 0, a13),
    ]
}

pub(super) fn spec_flow_seeds() -> Vec<(&'static str, Vec<u8>)> {
    spec_flow_traces()
        .into_iter()
        .map(|(name, policy, trace)| {
            let start = flow::world(policy, SpecFaults::NONE);
            (name, flow::encode(policy, &start, &trace))
        })
        .collect()
}

#[test]
fn spec_flow_seeds_are_current_and_hold() {
    let committed = inputs("flow");
    assert!(committed.len() >= 3);
    for (name, bytes) in spec_flow_seeds() {
        let found = committed.iter().find(|(p, _)| p.ends_with(name));
        assert_eq!(
            found.map(|(_, d)| d),
            Some(&bytes),
            "corpus/flow/{name} is stale: run `-- --ignored write_seeds`"
        );
    }
    for (p, data) in committed {
        let start = flow::world(data[0], SpecFaults::NONE);
        match flow::run_from(&start, &data[1..]) {
            Ok(n) => assert!(n >= 2, "{}: runs almost nothing", p.display()),
            Err((v, trace)) => panic!("{}: {v}\n{trace:#?}", p.display()),
        }
    }
}

/// One short trace per fault in the spec World (the model check's minimized
/// counterexamples, `spec/README.md`): as fuzzer bytes it must break the property the
/// model check expects, and the same actions must hold on correct code. Proves that the
/// `flow` target's checks are not vacuous without any fuzzing.
#[test]
#[cfg(consent_gate_faults)]
fn every_fault_breaks_the_spec_flow_and_correct_code_holds() {
    use SpecAction::*;
    use consent_gate_spec::Property;
    let (v, x) = (Browser::Victim, Browser::Attacker);
    let own = attacker_own_page();
    let honest = victim_trip();
    let redeem = RedeemCode {
        party: Party::Honest,
        code: 0,
    };
    let traces: Vec<(&str, u8, Property, Vec<SpecAction>)> = vec![
        (
            "consent_per_browser",
            1,
            Property::P1,
            vec![
                Register,
                Open {
                    browser: v,
                    link: 0,
                },
                Approve {
                    browser: v,
                    page: 0,
                },
                Open {
                    browser: v,
                    link: 2,
                },
            ],
        ),
        (
            "csrf_unbound",
            0,
            Property::P1,
            vec![
                own[0],
                own[1],
                ForgedPost {
                    page: 0,
                    legacy: true,
                },
            ],
        ),
        (
            "callback_unbound",
            0,
            Property::P3,
            [
                &own[..],
                &[
                    ForwardUpstreamUrl { redirect: 0 },
                    Callback { browser: v, url: 0 },
                ],
            ]
            .concat(),
        ),
        (
            "state_reusable",
            0,
            Property::P4,
            [
                &own[..],
                &[
                    Upstream {
                        browser: x,
                        redirect: 0,
                    },
                    Callback { browser: x, url: 0 },
                    Callback { browser: x, url: 0 },
                ],
            ]
            .concat(),
        ),
        (
            "code_reusable",
            0,
            Property::P4,
            [&honest[..], &[redeem, redeem]].concat(),
        ),
        (
            "redirect_prefix_match",
            0,
            Property::P5,
            vec![
                Open {
                    browser: v,
                    link: 1,
                },
                Deny {
                    browser: v,
                    page: 0,
                },
            ],
        ),
        (
            "issuer_unchecked",
            0,
            Property::P6,
            [&honest[..2], &[MixUp { redirect: 0 }]].concat(),
        ),
    ];
    for (name, faults) in Faults::ALL {
        let (_, policy, property, trace) = traces
            .iter()
            .find(|(n, ..)| *n == name)
            .unwrap_or_else(|| panic!("no spec flow trace for fault {name}"));
        let start = flow::world(*policy, faults);
        let bytes = flow::encode(*policy, &start, trace);
        match flow::run_from(&start, &bytes[1..]) {
            Err((first, found)) => {
                // The first failing check may be an earlier-numbered one (callback_unbound
                // also breaks P2): the expected property must be among the violations.
                let mut w = start.clone();
                for a in &found {
                    w.step(*a);
                }
                let broken: Vec<_> = w.violations().into_iter().map(|v| v.property).collect();
                assert!(
                    broken.contains(property),
                    "{name}: {first}; broken {broken:?}"
                );
            }
            Ok(_) => panic!("{name}: the spec flow trace breaks nothing"),
        }
        let mut w = flow::world(*policy, SpecFaults::NONE);
        for a in trace {
            w.step(*a);
            w.check_invariants()
                .unwrap_or_else(|e| panic!("{name} without the fault: {e}"));
        }
    }
}
