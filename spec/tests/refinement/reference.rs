//! The abstract reference model: the protocol as pure sets and maps (who approved what
//! in which browser; which pages, transactions, codes, grants and refresh tokens are
//! live), with the lifetimes of `Lifetimes::default()` and the check order each core
//! step documents. It knows nothing of cookies, MACs, URLs or store keys.

use consent_gate::{ConsentPolicy, Lifetimes};
use consent_gate_spec::{Action, Bounds, Browser, Identity, Outcome, Party, Refusal};
use proptest::prelude::*;
use proptest::strategy::Union;
use proptest_state_machine::ReferenceStateMachine;

/// The bounds of a long run: nothing is exhausted within a few hundred steps except the
/// attacker's registrations.
pub(crate) const BOUNDS: Bounds = Bounds::LONG;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Client {
    Honest,
    Attacker(u16),
}

/// The three redirect URIs in the world: the honest client's, the attacker's, and the
/// attacker's A10 trick for the honest client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Uri {
    Honest,
    Trick,
    Evil,
}

impl Uri {
    fn owner(self) -> Party {
        match self {
            Uri::Honest => Party::Honest,
            Uri::Trick | Uri::Evil => Party::Attacker,
        }
    }
}

/// What a consent page shows and a transaction is bound to (scope and resource are the
/// same everywhere in this world).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Terms {
    client: Client,
    uri: Uri,
}

#[derive(Clone, Copy, Debug)]
struct Link {
    terms: Terms,
    pkce: Party,
}

/// A consent page (its pending record) or an upstream transaction: rendered for or
/// consented in `browser`, live until taken.
#[derive(Clone, Copy, Debug)]
struct Handle {
    browser: Browser,
    terms: Terms,
    pkce: Party,
    live: bool,
    expires: u64,
}

#[derive(Clone, Copy, Debug)]
struct Code {
    pkce: Party,
    subject: Identity,
    stored: bool,
    redeemed: bool,
    expires: u64,
    grant: Option<usize>,
}

#[derive(Clone, Copy, Debug)]
struct Grant {
    subject: Identity,
    live: bool,
    expires: u64,
}

#[derive(Clone, Copy, Debug)]
struct Refresh {
    grant: usize,
    rotated_at: Option<u64>,
    successor: Option<usize>,
    expires: u64,
}

#[derive(Clone, Debug, Default)]
struct BrowserView {
    pages: Vec<usize>,
    upstream: Vec<usize>,
    /// (transaction, account of the upstream code in the URL).
    callbacks: Vec<(usize, Identity)>,
    /// Terms remembered by this browser's consent cookie (Remember policy).
    remembered: Vec<Terms>,
}

#[derive(Clone, Debug, Default)]
struct InboxView {
    codes: Vec<usize>,
    refresh: Vec<usize>,
}

/// The reference state.
#[derive(Clone, Debug)]
pub(crate) struct Spec {
    pub(crate) policy: ConsentPolicy,
    now: u64,
    nonces: u16,
    refreshes: u16,
    ticks: u16,
    registrations_left: u16,
    attacker_clients: u16,
    links: Vec<Link>,
    pages: Vec<Handle>,
    txns: Vec<Handle>,
    codes: Vec<Code>,
    grants: Vec<Grant>,
    refresh: Vec<Refresh>,
    browsers: [BrowserView; 2],
    inboxes: [InboxView; 2],
    /// The outcome the last transition must have.
    pub(crate) expected: Outcome,
}

fn bix(b: Browser) -> usize {
    match b {
        Browser::Victim => 0,
        Browser::Attacker => 1,
    }
}

fn pix(p: Party) -> usize {
    match p {
        Party::Honest => 0,
        Party::Attacker => 1,
    }
}

fn idx(list_len: usize, i: u16) -> Option<usize> {
    let i = usize::from(i);
    (i < list_len).then_some(i)
}

impl Spec {
    fn new(policy: ConsentPolicy) -> Self {
        let honest = |uri, pkce| Link {
            terms: Terms {
                client: Client::Honest,
                uri,
            },
            pkce,
        };
        Spec {
            policy,
            now: 0,
            nonces: BOUNDS.nonces,
            refreshes: BOUNDS.refreshes,
            ticks: BOUNDS.ticks,
            registrations_left: BOUNDS.attacker_clients,
            attacker_clients: 0,
            links: vec![
                honest(Uri::Honest, Party::Honest),
                honest(Uri::Trick, Party::Attacker),
            ],
            pages: Vec::new(),
            txns: Vec::new(),
            codes: Vec::new(),
            grants: Vec::new(),
            refresh: Vec::new(),
            browsers: Default::default(),
            inboxes: Default::default(),
            expected: Outcome::Disabled,
        }
    }

    fn lifetimes() -> Lifetimes {
        Lifetimes::default()
    }

    fn browser(&self, b: Browser) -> &BrowserView {
        &self.browsers[bix(b)]
    }

    /// Whether `World::step` runs `a` at all (else it is `Disabled`).
    pub(crate) fn enabled(&self, a: &Action) -> bool {
        let mint = self.nonces > 0;
        let x = self.browser(Browser::Attacker);
        match *a {
            Action::Register => mint && self.registrations_left > 0,
            Action::Open { browser, link } => {
                mint && idx(self.links.len(), link).is_some_and(|i| {
                    browser == Browser::Victim
                        || matches!(self.links[i].terms.client, Client::Attacker(_))
                })
            }
            Action::SameSiteOpen { link } => {
                mint && self.policy == ConsentPolicy::Remember
                    && idx(self.links.len(), link).is_some()
            }
            Action::Approve { browser, page } => {
                mint && idx(self.browser(browser).pages.len(), page).is_some()
            }
            Action::Deny { browser, page } => {
                idx(self.browser(browser).pages.len(), page).is_some()
            }
            Action::ForgedPost { page, .. } => mint && idx(x.pages.len(), page).is_some(),
            Action::Upstream { browser, redirect } => {
                idx(self.browser(browser).upstream.len(), redirect).is_some()
            }
            Action::ForwardUpstreamUrl { redirect } => idx(x.upstream.len(), redirect).is_some(),
            Action::Callback { browser, url } => {
                mint && idx(self.browser(browser).callbacks.len(), url).is_some()
            }
            Action::ReplayCallback { url } => mint && idx(x.callbacks.len(), url).is_some(),
            Action::MixUp { redirect } => {
                mint && idx(self.browser(Browser::Victim).upstream.len(), redirect).is_some()
            }
            Action::RedeemCode { party, code } => {
                mint && idx(self.inboxes[pix(party)].codes.len(), code).is_some()
            }
            Action::Refresh { party, token } => {
                let held = &self.inboxes[pix(party)].refresh;
                idx(held.len(), token).is_some_and(|i| {
                    self.refreshes > 0 || self.refresh[held[i]].successor.is_some()
                })
            }
            Action::Tick { .. } => self.ticks > 0,
        }
    }

    /// `GET /authorize` of link `link` in `browser`; `user_started` is a navigation the
    /// user began here (`Sec-Fetch-Site: none`), not one a same-site page began (A20).
    fn open(&mut self, browser: Browser, link: u16, user_started: bool) -> Outcome {
        let l = Self::lifetimes();
        let link = self.links[usize::from(link)];
        // R17/A10: the trick URI is not the honest client's registration.
        if link.terms.client == Client::Honest && link.terms.uri != Uri::Honest {
            return Outcome::Refused(Refusal::RedirectMismatch);
        }
        self.nonces -= 1;
        // R31, R71: a remembered consent for exactly these terms, on a navigation the
        // user started (`Sec-Fetch-Site: none`), goes straight upstream.
        if self.policy == ConsentPolicy::Remember
            && user_started
            && self.browser(browser).remembered.contains(&link.terms)
        {
            self.go_upstream(browser, link.terms, link.pkce);
            return Outcome::WentUpstream { remembered: true };
        }
        self.pages.push(Handle {
            browser,
            terms: link.terms,
            pkce: link.pkce,
            live: true,
            expires: self.now + l.consent,
        });
        let id = self.pages.len() - 1;
        self.browsers[bix(browser)].pages.push(id);
        Outcome::ConsentPage
    }

    /// The protocol's answer to `a`, applied to the reference state.
    pub(crate) fn apply(&mut self, a: &Action) -> Outcome {
        if !self.enabled(a) {
            return Outcome::Disabled;
        }
        match *a {
            Action::Register => {
                self.nonces -= 1;
                self.registrations_left -= 1;
                self.links.push(Link {
                    terms: Terms {
                        client: Client::Attacker(self.attacker_clients),
                        uri: Uri::Evil,
                    },
                    pkce: Party::Attacker,
                });
                self.attacker_clients += 1;
                Outcome::Registered
            }
            Action::Open { browser, link } => self.open(browser, link, true),
            Action::SameSiteOpen { link } => self.open(Browser::Victim, link, false),
            Action::Approve { browser, page } => {
                let id = self.browser(browser).pages[usize::from(page)];
                self.decide(browser, id, true, None)
            }
            Action::Deny { browser, page } => {
                let id = self.browser(browser).pages[usize::from(page)];
                self.decide(browser, id, false, None)
            }
            Action::ForgedPost { page, legacy } => {
                let id = self.browser(Browser::Attacker).pages[usize::from(page)];
                self.decide(Browser::Victim, id, true, Some(legacy))
            }
            Action::Upstream { browser, redirect } => {
                let txn = self.browser(browser).upstream[usize::from(redirect)];
                self.at_upstream(browser, txn)
            }
            Action::ForwardUpstreamUrl { redirect } => {
                let txn = self.browser(Browser::Attacker).upstream[usize::from(redirect)];
                self.at_upstream(Browser::Victim, txn)
            }
            Action::Callback { browser, url } => {
                let (txn, who) = self.browser(browser).callbacks[usize::from(url)];
                self.callback(browser, txn, who, false)
            }
            Action::ReplayCallback { url } => {
                let (txn, who) = self.browser(Browser::Attacker).callbacks[usize::from(url)];
                self.callback(Browser::Victim, txn, who, false)
            }
            Action::MixUp { redirect } => {
                // A13: the attacker's server answers with the attacker's upstream code.
                let txn = self.browser(Browser::Victim).upstream[usize::from(redirect)];
                self.callback(Browser::Victim, txn, Identity::Attacker, true)
            }
            Action::RedeemCode { party, code } => {
                let id = self.inboxes[pix(party)].codes[usize::from(code)];
                self.redeem(party, id)
            }
            Action::Refresh { party, token } => {
                let id = self.inboxes[pix(party)].refresh[usize::from(token)];
                self.refresh_token(party, id)
            }
            Action::Tick { secs } => {
                self.ticks -= 1;
                self.now += u64::from(secs);
                Outcome::Ticked
            }
        }
    }

    fn go_upstream(&mut self, browser: Browser, terms: Terms, pkce: Party) {
        self.txns.push(Handle {
            browser,
            terms,
            pkce,
            live: true,
            expires: self.now + Self::lifetimes().transaction,
        });
        let id = self.txns.len() - 1;
        self.browsers[bix(browser)].upstream.push(id);
    }

    /// A consent POST from `browser` for page `id`; `forged` is `Some(legacy)` for the
    /// attacker's cross-site form.
    fn decide(
        &mut self,
        browser: Browser,
        id: usize,
        approve: bool,
        forged: Option<bool>,
    ) -> Outcome {
        let page = self.pages[id];
        // The host takes the pending record before the core looks at anything (A3: even
        // a refused cross-site POST consumes the attacker's own page).
        self.pages[id].live = false;
        if forged == Some(false) {
            return Outcome::Refused(Refusal::CrossSite);
        }
        if !page.live {
            return Outcome::Refused(Refusal::Unknown);
        }
        if self.now >= page.expires {
            return Outcome::Refused(Refusal::Expired);
        }
        // R28: the CSRF token is bound to the browser the page was rendered in.
        if page.browser != browser {
            return Outcome::Refused(Refusal::Csrf);
        }
        if !approve {
            return Outcome::ClientRedirect {
                to: page.terms.uri.owner(),
                error: Some("access_denied"),
            };
        }
        self.nonces -= 1;
        if self.policy == ConsentPolicy::Remember {
            let remembered = &mut self.browsers[bix(browser)].remembered;
            if !remembered.contains(&page.terms) {
                remembered.push(page.terms);
            }
        }
        self.go_upstream(browser, page.terms, page.pkce);
        Outcome::WentUpstream { remembered: false }
    }

    /// The auto-approving upstream sends `browser` to our callback for `txn`, with a
    /// code for the browser's account.
    fn at_upstream(&mut self, browser: Browser, txn: usize) -> Outcome {
        let entry = (txn, browser.identity());
        let callbacks = &mut self.browsers[bix(browser)].callbacks;
        if !callbacks.contains(&entry) {
            callbacks.push(entry);
        }
        Outcome::AtCallback
    }

    /// A callback for transaction `id` in `browser` with an upstream code for `who`;
    /// `foreign` when the answer names another issuer than the upstream's (A13).
    fn callback(&mut self, browser: Browser, id: usize, who: Identity, foreign: bool) -> Outcome {
        let txn = self.txns[id];
        if !txn.live {
            return Outcome::Refused(Refusal::Unknown);
        }
        self.txns[id].live = false;
        if self.now >= txn.expires {
            return Outcome::Refused(Refusal::Expired);
        }
        // R35: only the browser that consented holds the binding cookie.
        if txn.browser != browser {
            return Outcome::Refused(Refusal::Binding);
        }
        // R40, R67: only the upstream's own issuer may answer.
        if foreign {
            return Outcome::Refused(Refusal::Issuer);
        }
        self.nonces -= 1;
        self.codes.push(Code {
            pkce: txn.pkce,
            subject: who,
            stored: true,
            redeemed: false,
            expires: self.now + Self::lifetimes().code,
            grant: None,
        });
        let to = txn.terms.uri.owner();
        let code = self.codes.len() - 1;
        self.inboxes[pix(to)].codes.push(code);
        Outcome::ClientRedirect { to, error: None }
    }

    /// `POST /token` with the code, the party's verifier, the code's client and redirect
    /// URI. The check order is the one `Gate::redeem_code` documents (R43: an invalid
    /// replay revokes nothing).
    fn redeem(&mut self, party: Party, id: usize) -> Outcome {
        let code = self.codes[id];
        if !code.stored {
            return Outcome::Refused(Refusal::Unknown);
        }
        // Taken; stored back only on success.
        self.codes[id].stored = false;
        if self.now >= code.expires {
            return Outcome::Refused(Refusal::Expired);
        }
        if code.pkce != party {
            return Outcome::Refused(Refusal::Pkce);
        }
        if code.redeemed {
            if let Some(g) = code.grant {
                self.grants[g].live = false;
            }
            return Outcome::Refused(Refusal::CodeReused);
        }
        let l = Self::lifetimes();
        self.nonces -= 1;
        self.grants.push(Grant {
            subject: code.subject,
            live: true,
            expires: self.now + l.refresh_token,
        });
        let grant = self.grants.len() - 1;
        self.codes[id] = Code {
            stored: true,
            redeemed: true,
            expires: self.now + l.transaction,
            grant: Some(grant),
            ..code
        };
        self.refresh.push(Refresh {
            grant,
            rotated_at: None,
            successor: None,
            expires: self.now + l.refresh_token,
        });
        let token = self.refresh.len() - 1;
        self.inboxes[pix(party)].refresh.push(token);
        Outcome::Tokens {
            party,
            subject: code.subject,
            refreshed: false,
        }
    }

    /// R53: rotation; a rotated token again inside the grace window gets the same
    /// successor; after it, the grant is revoked.
    fn refresh_token(&mut self, party: Party, id: usize) -> Outcome {
        let r = self.refresh[id];
        let l = Self::lifetimes();
        if self.now >= r.expires {
            return Outcome::Refused(Refusal::Expired);
        }
        let grant = self.grants[r.grant];
        if !grant.live || self.now >= grant.expires {
            return Outcome::Refused(Refusal::GrantRevoked);
        }
        let successor = match (r.rotated_at, r.successor) {
            (Some(at), _) if self.now > at + l.refresh_grace => {
                self.grants[r.grant].live = false;
                return Outcome::Refused(Refusal::RefreshReused);
            }
            (Some(_), Some(next)) => next,
            _ => {
                self.refresh.push(Refresh {
                    grant: r.grant,
                    rotated_at: None,
                    successor: None,
                    expires: self.now + l.refresh_token,
                });
                let next = self.refresh.len() - 1;
                self.refresh[id].rotated_at = Some(self.now);
                self.refresh[id].successor = Some(next);
                next
            }
        };
        let held = &mut self.inboxes[pix(party)].refresh;
        if !held.contains(&successor) {
            held.push(successor);
            self.refreshes -= 1;
        }
        Outcome::Tokens {
            party,
            subject: grant.subject,
            refreshed: true,
        }
    }
}

/// An index into a list of `len`: mostly the newest entry, else any.
fn pick(len: usize) -> BoxedStrategy<u16> {
    let last = u16::try_from(len - 1).unwrap_or(u16::MAX);
    prop_oneof![Just(last), 0..=last].boxed()
}

/// Clock advances: inside the refresh grace, around the code lifetime, around the page and
/// transaction lifetime (boundaries included: `now >= expires` is expired), or anything.
fn tick() -> BoxedStrategy<Action> {
    prop_oneof![0u32..=12, 58u32..=62, 598u32..=602, 0u32..=700]
        .prop_map(|secs| Action::Tick { secs })
        .boxed()
}

pub(crate) struct Reference;

impl ReferenceStateMachine for Reference {
    type State = Spec;
    type Transition = Action;

    fn init_state() -> BoxedStrategy<Spec> {
        prop_oneof![Just(ConsentPolicy::Always), Just(ConsentPolicy::Remember)]
            .prop_map(Spec::new)
            .boxed()
    }

    fn transitions(s: &Spec) -> BoxedStrategy<Action> {
        let mut options: Vec<(u32, BoxedStrategy<Action>)> = vec![(2, tick())];
        if s.nonces > 0 && s.registrations_left > 0 {
            options.push((1, Just(Action::Register).boxed()));
        }
        let openable: Vec<u16> = (0..s.links.len())
            .filter_map(|i| u16::try_from(i).ok())
            .collect();
        options.push((
            4,
            proptest::sample::select(openable)
                .prop_map(|link| Action::Open {
                    browser: Browser::Victim,
                    link,
                })
                .boxed(),
        ));
        if s.attacker_clients > 0 {
            options.push((
                2,
                (2..2 + s.attacker_clients)
                    .prop_map(|link| Action::Open {
                        browser: Browser::Attacker,
                        link,
                    })
                    .boxed(),
            ));
        }
        if s.policy == ConsentPolicy::Remember {
            // A20: a same-site page opens any link in the victim's browser.
            let links = u16::try_from(s.links.len()).unwrap_or(u16::MAX);
            options.push((
                1,
                (0..links)
                    .prop_map(|link| Action::SameSiteOpen { link })
                    .boxed(),
            ));
        }
        for browser in Browser::ALL {
            let b = s.browser(browser);
            if !b.pages.is_empty() {
                let p = pick(b.pages.len());
                options.push((
                    4,
                    p.clone()
                        .prop_map(move |page| Action::Approve { browser, page })
                        .boxed(),
                ));
                options.push((
                    1,
                    p.prop_map(move |page| Action::Deny { browser, page })
                        .boxed(),
                ));
            }
            if !b.upstream.is_empty() {
                let up = pick(b.upstream.len())
                    .prop_map(move |redirect| Action::Upstream { browser, redirect });
                options.push((3, up.boxed()));
            }
            if !b.callbacks.is_empty() {
                let cb =
                    pick(b.callbacks.len()).prop_map(move |url| Action::Callback { browser, url });
                options.push((4, cb.boxed()));
            }
        }
        let x = s.browser(Browser::Attacker);
        if !x.pages.is_empty() {
            let forged = (pick(x.pages.len()), any::<bool>())
                .prop_map(|(page, legacy)| Action::ForgedPost { page, legacy });
            options.push((2, forged.boxed()));
        }
        if !x.upstream.is_empty() {
            let fwd =
                pick(x.upstream.len()).prop_map(|redirect| Action::ForwardUpstreamUrl { redirect });
            options.push((2, fwd.boxed()));
        }
        if !x.callbacks.is_empty() {
            let replay = pick(x.callbacks.len()).prop_map(|url| Action::ReplayCallback { url });
            options.push((2, replay.boxed()));
        }
        let v = s.browser(Browser::Victim);
        if !v.upstream.is_empty() {
            let mix_up = pick(v.upstream.len()).prop_map(|redirect| Action::MixUp { redirect });
            options.push((1, mix_up.boxed()));
        }
        for party in Party::ALL {
            let inbox = &s.inboxes[pix(party)];
            if !inbox.codes.is_empty() {
                let r = pick(inbox.codes.len())
                    .prop_map(move |code| Action::RedeemCode { party, code });
                options.push((3, r.boxed()));
            }
            if !inbox.refresh.is_empty() {
                // Any held token, old ones included: rotation, the grace window and reuse
                // detection are about presenting old tokens again (R53).
                let last = u16::try_from(inbox.refresh.len() - 1).unwrap_or(u16::MAX);
                let r = (0..=last).prop_map(move |token| Action::Refresh { party, token });
                options.push((3, r.boxed()));
            }
        }
        Union::new_weighted(options).boxed()
    }

    fn preconditions(s: &Spec, a: &Action) -> bool {
        s.enabled(a)
    }

    fn apply(mut s: Spec, a: &Action) -> Spec {
        s.expected = s.apply(a);
        s
    }
}
