//! The properties, as predicates over a World's ghost record, and the reachability goals
//! that show the model is not vacuous. `spec/README.md` lists them with the requirement
//! and attack IDs they cover.

use std::fmt;

use consent_gate::{ClientRecord, StoreKey};

use crate::world::{Browser, Identity, Party, World};

/// A safety property: it must hold in every reachable state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Property {
    /// P1: no upstream redirect unless the same browser approved that client, redirect URI,
    /// scope and resource (R25, R28, R31, R34; A1, A3, A4). Each approval click sends at
    /// most one browser upstream; a remembered consent needs an earlier click and a
    /// navigation the user started, never one a same-site page started (R71, A20).
    P1,
    /// P2: the attacker never holds a code or token for the victim's account unless the
    /// victim approved, in its own browser, that client and redirect URI (A1–A4, A6, A9).
    P2,
    /// P3: a callback is accepted only in the browser that received that transaction's
    /// upstream redirect, i.e. the one that consented (R35; A2, A6).
    P3,
    /// P4: consent decisions, upstream `state`s and codes are accepted at most once; a
    /// rotated refresh token is accepted again only inside the grace window (R36, R43,
    /// R53; A7, A8).
    P4,
    /// P5: every client redirect goes to a URI registered for that client, exactly (R16,
    /// R17, R32; A10, A15).
    P5,
    /// P6: a code speaks for the account of the browser that consented: no login CSRF
    /// (R33, R35; A6).
    P6,
    /// P7: consent decisions, upstream `state`s and codes are accepted only within their
    /// lifetimes (R36, R42; A7, A8).
    P7,
    /// The host glue never hit a state a correct core cannot produce (a fresh access
    /// token that does not verify, an unreadable client redirect, an upstream failure).
    Glue,
}

impl Property {
    /// Every property, in order.
    pub const ALL: [Property; 8] = [
        Property::P1,
        Property::P2,
        Property::P3,
        Property::P4,
        Property::P5,
        Property::P6,
        Property::P7,
        Property::Glue,
    ];

    /// A short name (stable: stateright reports discoveries by it).
    pub fn name(self) -> &'static str {
        match self {
            Property::P1 => "P1 upstream only after this browser approved these terms",
            Property::P2 => "P2 attacker never holds the victim's code or token unapproved",
            Property::P3 => "P3 callback only in the consenting browser",
            Property::P4 => "P4 state, code, consent and refresh token single use",
            Property::P5 => "P5 client redirects only to registered URIs",
            Property::P6 => "P6 a code speaks for the consenting browser's account",
            Property::P7 => "P7 nothing single-use accepted after its lifetime",
            Property::Glue => "host glue consistent",
        }
    }

    /// Checks this property in `w`.
    pub fn check(self, w: &World) -> Result<(), Violation> {
        let fail = |detail: String| {
            Err(Violation {
                property: self,
                detail,
            })
        };
        let g = &w.ghost;
        match self {
            Property::P1 => {
                for i in &g.issued {
                    let clicks = usize::from(
                        g.clicked
                            .get(&(i.browser, i.terms.clone()))
                            .copied()
                            .unwrap_or(0),
                    );
                    let decided = g
                        .issued
                        .iter()
                        .filter(|j| !j.remembered && j.browser == i.browser && j.terms == i.terms)
                        .count();
                    if i.remembered && !i.user_started {
                        return fail(format!(
                            "{:?} browser sent upstream for {:?} from a remembered consent on a same-site navigation (A20)",
                            i.browser, i.terms
                        ));
                    }
                    if (i.remembered && clicks == 0) || (!i.remembered && decided > clicks) {
                        return fail(format!(
                            "{:?} browser sent upstream for {:?} (remembered: {}) after {clicks} approvals",
                            i.browser, i.terms, i.remembered
                        ));
                    }
                }
                Ok(())
            }
            Property::P2 => {
                let inbox = &w.inboxes[Party::Attacker.ix()];
                let codes = inbox
                    .codes
                    .iter()
                    .map(|c| (c.subject, &c.client_id, &c.redirect_uri, "code"));
                let tokens = inbox
                    .tokens
                    .iter()
                    .map(|t| (t.subject, &t.client_id, &t.redirect_uri, "token"));
                for (subject, client, uri, what) in codes.chain(tokens) {
                    let approved = g.clicked.keys().any(|(b, t)| {
                        *b == Browser::Victim && t.client_id == **client && t.redirect_uri == **uri
                    });
                    if subject == Identity::Victim && !approved {
                        return fail(format!(
                            "attacker holds a {what} for the victim (client {client}, {uri}) the victim never approved"
                        ));
                    }
                }
                Ok(())
            }
            Property::P3 => {
                for (txn, b) in g.accepted.keys() {
                    match g.issued.iter().find(|i| i.txn == *txn) {
                        Some(i) if i.browser == *b => {}
                        Some(i) => {
                            return fail(format!(
                                "callback for a transaction {:?} consented to accepted in {b:?}",
                                i.browser
                            ));
                        }
                        None => {
                            return fail(format!("callback accepted in {b:?} for no transaction"));
                        }
                    }
                }
                Ok(())
            }
            Property::P4 => {
                if let Some((k, n)) = g.decided.iter().find(|(_, n)| **n > 1) {
                    return fail(format!("consent decision {k:?} accepted {n} times"));
                }
                let mut states = g.accepted.iter().map(|((k, _), n)| (k, *n)).peekable();
                while let Some((k, mut n)) = states.next() {
                    while let Some((_, more)) = states.next_if(|(next, _)| *next == k) {
                        n += more;
                    }
                    if n > 1 {
                        return fail(format!("upstream state {k:?} accepted {n} times"));
                    }
                }
                if let Some((k, n)) = g.redeemed.iter().find(|(_, n)| **n > 1) {
                    return fail(format!("code {k:?} redeemed {n} times"));
                }
                let grace = w.server.gate.config().lifetimes().refresh_grace;
                for (key, first) in &g.refreshed {
                    let late = g
                        .refreshed
                        .iter()
                        .filter(|(k, _)| k == key)
                        .find(|(_, t)| t.0 > first.0.saturating_add(grace));
                    if let Some((_, t)) = late {
                        return fail(format!(
                            "refresh token {key:?} rotated at {} accepted again at {}, after the {grace} s grace",
                            first.0, t.0
                        ));
                    }
                }
                Ok(())
            }
            Property::P5 => {
                for (client, uri) in &g.redirects {
                    let registered = w
                        .store
                        .get::<ClientRecord>(&StoreKey::client(client))
                        .is_some_and(|c| c.redirect_uris().iter().any(|r| r.as_str() == &**uri));
                    if !registered {
                        return fail(format!(
                            "client redirect to {uri}, not registered for {client}"
                        ));
                    }
                }
                Ok(())
            }
            Property::P6 => {
                for c in &g.codes {
                    let consented = g.issued.iter().find(|i| i.txn == c.txn).map(|i| i.browser);
                    if consented.map(Browser::identity) != Some(c.subject) {
                        return fail(format!(
                            "code for {:?} issued on a transaction {consented:?} consented to",
                            c.subject
                        ));
                    }
                }
                Ok(())
            }
            Property::P7 => match g.late.first() {
                Some((what, key)) => fail(format!("{what:?} {key:?} accepted after its lifetime")),
                None => Ok(()),
            },
            Property::Glue => match g.host_errors.first() {
                Some(e) => fail(e.clone()),
                None => Ok(()),
            },
        }
    }
}

/// A property that failed, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which property.
    pub property: Property,
    /// What the ghost record shows.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.property.name(), self.detail)
    }
}

impl std::error::Error for Violation {}

/// Something that must be *reachable*: a checker that cannot reach these explores a
/// crippled world, and its silence about the properties means nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Goal {
    /// The honest flow completes: the honest client holds an access token for the victim.
    HonestToken,
    /// A denial reaches the honest client as `access_denied`.
    HonestDenied,
    /// The honest client refreshes its token.
    HonestRefreshed,
    /// The attacker completes a flow of its own in its own browser.
    AttackerOwnToken,
    /// The victim knowingly approves the attacker's client, and the attacker gets the
    /// victim's token (P2's exception is reachable, so P2 is not vacuous).
    VictimApprovedAttacker,
    /// A remembered consent sends a browser upstream without a page (Remember policy).
    Remembered,
}

impl Goal {
    /// Every goal.
    pub const ALL: [Goal; 6] = [
        Goal::HonestToken,
        Goal::HonestDenied,
        Goal::HonestRefreshed,
        Goal::AttackerOwnToken,
        Goal::VictimApprovedAttacker,
        Goal::Remembered,
    ];

    /// A short name (stable: stateright reports discoveries by it).
    pub fn name(self) -> &'static str {
        match self {
            Goal::HonestToken => "honest flow completes to a token",
            Goal::HonestDenied => "deny reaches the client as access_denied",
            Goal::HonestRefreshed => "refresh works",
            Goal::AttackerOwnToken => "attacker completes its own flow",
            Goal::VictimApprovedAttacker => "victim-approved attacker client gets the token",
            Goal::Remembered => "remembered consent skips the page",
        }
    }

    /// Whether `w` has reached this goal.
    pub fn reached(self, w: &World) -> bool {
        let honest = &w.inboxes[Party::Honest.ix()];
        let attacker = &w.inboxes[Party::Attacker.ix()];
        match self {
            Goal::HonestToken => honest.tokens.iter().any(|t| t.subject == Identity::Victim),
            Goal::HonestDenied => honest.errors.iter().any(|(_, e)| *e == "access_denied"),
            Goal::HonestRefreshed => honest.tokens.iter().any(|t| t.refreshed),
            Goal::AttackerOwnToken => attacker
                .tokens
                .iter()
                .any(|t| t.subject == Identity::Attacker),
            Goal::VictimApprovedAttacker => attacker.tokens.iter().any(|t| {
                t.subject == Identity::Victim
                    && w.attacker_clients.iter().any(|c| **c == *t.client_id)
            }),
            Goal::Remembered => w.ghost.issued.iter().any(|i| i.remembered),
        }
    }
}

impl World {
    /// Every property, in order: the first violation, if any.
    pub fn check_invariants(&self) -> Result<(), Violation> {
        Property::ALL.iter().try_for_each(|p| p.check(self))
    }

    /// Every violated property.
    pub fn violations(&self) -> Vec<Violation> {
        Property::ALL
            .iter()
            .filter_map(|p| p.check(self).err())
            .collect()
    }
}
