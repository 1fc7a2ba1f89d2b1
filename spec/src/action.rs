//! The actions parties take, what a step did, and counterexample minimization shared by
//! the drivers (the checker's path, proptest's shrunk run or a fuzzer's crash, cut down
//! to a trace a reader can follow).

use crate::world::{Browser, Identity, Party};

/// One step of a party. Indices point into the lists of what that party has seen so far
/// ([`World::seen`](crate::World::seen)); an index out of range makes the step [`Outcome::Disabled`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// The attacker registers a client with `redirect_uri=https://evil.example/cb` and
    /// crafts an `/authorize` link for it (A1 step 2).
    Register,
    /// A browser follows link `link` (top-level, `Sec-Fetch-Site: none`, as when a link is
    /// opened from a mail or chat app): `GET /authorize`. The victim follows any link; the
    /// attacker only the links for its own clients.
    Open {
        /// Whose browser.
        browser: Browser,
        /// Index into [`Seen::links`](crate::Seen::links).
        link: u16,
    },
    /// A20: a page on a sibling subdomain (or, on loopback, another port) navigates the
    /// victim's browser to link `link`: a top-level GET with `Sec-Fetch-Site: same-site`,
    /// which the user did not start here. Only where consent can be remembered.
    SameSiteOpen {
        /// Index into [`Seen::links`](crate::Seen::links).
        link: u16,
    },
    /// The browser's user clicks "Approve" on page `page` it was shown (same-origin POST
    /// with its own cookies).
    Approve {
        /// Whose browser.
        browser: Browser,
        /// Index into that browser's pages.
        page: u16,
    },
    /// The browser's user clicks "Deny" on page `page`.
    Deny {
        /// Whose browser.
        browser: Browser,
        /// Index into that browser's pages.
        page: u16,
    },
    /// A3: the victim's browser auto-submits a cross-site form carrying the `tx` and
    /// `csrf` of the attacker's own page `page`, with `decision=approve`. `legacy: false`
    /// is a current browser (`Origin: https://evil.example`, `Sec-Fetch-Site: cross-site`,
    /// no `SameSite=Lax` cookies); `legacy: true` is a browser without Fetch Metadata or
    /// `SameSite` support (`Origin: null` from a `no-referrer` page, the victim's cookies
    /// sent), so only the CSRF binding stands in the way.
    ForgedPost {
        /// Index into the attacker browser's pages.
        page: u16,
        /// Old browser: no Fetch Metadata, cookies sent.
        legacy: bool,
    },
    /// The browser follows upstream authorization URL `redirect` it was sent to; the
    /// upstream, which remembers that this account approved our server, sends it straight
    /// back to our callback with a code for the browser's account.
    Upstream {
        /// Whose browser.
        browser: Browser,
        /// Index into that browser's upstream URLs.
        redirect: u16,
    },
    /// A2: the attacker sends the victim upstream URL `redirect` from its own browser; the
    /// victim opens it and the upstream sends the victim's browser to our callback with a
    /// code for the victim.
    ForwardUpstreamUrl {
        /// Index into the attacker browser's upstream URLs.
        redirect: u16,
    },
    /// The browser loads callback URL `url` it was sent to (again, if it already did:
    /// reload, back button, A7).
    Callback {
        /// Whose browser.
        browser: Browser,
        /// Index into that browser's callback URLs.
        url: u16,
    },
    /// A6/A7: the attacker makes the victim's browser load callback URL `url` that the
    /// attacker captured in its own browser.
    ReplayCallback {
        /// Index into the attacker browser's callback URLs.
        url: u16,
    },
    /// A13, mix-up: the victim's upstream authorization URL `redirect` reaches the
    /// attacker's own authorization server ([`EVIL_AS_ISSUER`](crate::EVIL_AS_ISSUER))
    /// instead, which signs in at the upstream as the attacker with it and sends the
    /// victim's browser straight to our callback with that code and its own `iss`. The
    /// same answer naming the upstream's issuer could not be told apart from the
    /// upstream's (A6 with a leaked URL), so the World's attacker never has it.
    MixUp {
        /// Index into the victim browser's upstream URLs.
        redirect: u16,
    },
    /// `party` redeems code `code` it received, with its own PKCE verifier, the code's
    /// client id and redirect URI (replays allowed, A8).
    RedeemCode {
        /// Who redeems.
        party: Party,
        /// Index into that party's codes.
        code: u16,
    },
    /// `party` presents refresh token `token` it holds (replays allowed, R53).
    Refresh {
        /// Who refreshes.
        party: Party,
        /// Index into that party's refresh tokens.
        token: u16,
    },
    /// The clock advances `secs` seconds.
    Tick {
        /// Seconds.
        secs: u32,
    },
}

/// Why the host or the core refused a step, in terms a reference model can predict.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The single-use record the handle names is not (or no longer) in the store.
    Unknown,
    /// The record is past its lifetime.
    Expired,
    /// `Origin` / `Sec-Fetch-Site` show a cross-site consent POST.
    CrossSite,
    /// The consent form's CSRF token is not bound to this browser (R28).
    Csrf,
    /// This browser lacks the transaction's binding cookie (R35).
    Binding,
    /// The callback names another issuer than the transaction's upstream (R40, R67).
    Issuer,
    /// The `redirect_uri` is not registered for the client (R17).
    RedirectMismatch,
    /// PKCE verification failed at the token endpoint (R44).
    Pkce,
    /// The code or refresh token was issued to another client (A9).
    WrongClient,
    /// A redeemed code was presented again (R43): its grant is revoked.
    CodeReused,
    /// A rotated refresh token was presented after the grace window (R53): its grant is
    /// revoked.
    RefreshReused,
    /// The grant behind a refresh token is gone.
    GrantRevoked,
    /// Anything else, with the core's error text.
    Other(String),
}

/// What a step did, at the level of the protocol.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Not enabled here: an index out of range, or a bound reached. Nothing changed.
    Disabled,
    /// A client was registered and a link for it crafted.
    Registered,
    /// The consent page was shown.
    ConsentPage,
    /// A 303 to the upstream with a binding cookie: after an approval, or from a
    /// remembered consent.
    WentUpstream {
        /// From a remembered consent, without a page.
        remembered: bool,
    },
    /// The upstream sent the browser to our callback.
    AtCallback,
    /// A 303 to a client redirect URI, received by `to`.
    ClientRedirect {
        /// Who received it.
        to: Party,
        /// `Some("access_denied")` etc. for an error redirect, `None` for a code.
        error: Option<&'static str>,
    },
    /// Tokens were issued to `party` and the access token verified as `subject`.
    Tokens {
        /// Who received them.
        party: Party,
        /// The account the access token speaks for.
        subject: Identity,
        /// From a refresh rather than a code.
        refreshed: bool,
    },
    /// Refused; nothing was issued (single-use records may have been consumed).
    Refused(Refusal),
    /// The clock advanced.
    Ticked,
}

impl Action {
    /// The same action with its list index one lower, if it has a nonzero index.
    pub fn lower_index(self) -> Option<Action> {
        let dec = |i: u16| i.checked_sub(1);
        Some(match self {
            Action::Open { browser, link } => Action::Open {
                browser,
                link: dec(link)?,
            },
            Action::SameSiteOpen { link } => Action::SameSiteOpen { link: dec(link)? },
            Action::Approve { browser, page } => Action::Approve {
                browser,
                page: dec(page)?,
            },
            Action::Deny { browser, page } => Action::Deny {
                browser,
                page: dec(page)?,
            },
            Action::ForgedPost { page, legacy } => Action::ForgedPost {
                page: dec(page)?,
                legacy,
            },
            Action::Upstream { browser, redirect } => Action::Upstream {
                browser,
                redirect: dec(redirect)?,
            },
            Action::ForwardUpstreamUrl { redirect } => Action::ForwardUpstreamUrl {
                redirect: dec(redirect)?,
            },
            Action::Callback { browser, url } => Action::Callback {
                browser,
                url: dec(url)?,
            },
            Action::ReplayCallback { url } => Action::ReplayCallback { url: dec(url)? },
            Action::MixUp { redirect } => Action::MixUp {
                redirect: dec(redirect)?,
            },
            Action::RedeemCode { party, code } => Action::RedeemCode {
                party,
                code: dec(code)?,
            },
            Action::Refresh { party, token } => Action::Refresh {
                party,
                token: dec(token)?,
            },
            Action::Register | Action::Tick { .. } => return None,
        })
    }
}

/// Shrinks a failing trace to a 1-minimal one: drops steps one at a time (shifting one
/// later index down where the dropped step only made room in a list), then points each
/// step at the earliest list entry that still fails, until nothing changes. `fails` replays a
/// candidate from the initial state; it must hold for `actions`.
pub fn minimize(mut actions: Vec<Action>, mut fails: impl FnMut(&[Action]) -> bool) -> Vec<Action> {
    assert!(fails(&actions), "minimize needs a failing trace");
    loop {
        let before = actions.clone();
        for i in (0..actions.len()).rev() {
            let mut shorter = actions.clone();
            shorter.remove(i);
            if fails(&shorter) {
                actions = shorter;
                continue;
            }
            // The step may only have made room in a list: drop it and shift one later
            // step's index down to match.
            for j in i..shorter.len() {
                if let Some(lower) = shorter[j].lower_index() {
                    let mut shifted = shorter.clone();
                    shifted[j] = lower;
                    if fails(&shifted) {
                        actions = shifted;
                        break;
                    }
                }
            }
        }
        for i in 0..actions.len() {
            while let Some(lower) = actions[i].lower_index() {
                let mut simpler = actions.clone();
                simpler[i] = lower;
                if !fails(&simpler) {
                    break;
                }
                actions = simpler;
            }
        }
        if actions == before {
            return actions;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approve(page: u16) -> Action {
        Action::Approve {
            browser: Browser::Victim,
            page,
        }
    }

    #[test]
    fn drops_steps_and_lowers_indices() {
        let trace = vec![Action::Register, approve(3), Action::Tick { secs: 5 }];
        let any_approval = |t: &[Action]| t.iter().any(|a| matches!(a, Action::Approve { .. }));
        assert_eq!(minimize(trace.clone(), any_approval), vec![approve(0)]);
        let late_page = |t: &[Action]| {
            t.iter()
                .any(|a| matches!(a, Action::Approve { page, .. } if *page >= 2))
        };
        assert_eq!(minimize(trace, late_page), vec![approve(2)]);
    }
}
