//! The scene the attacks of `attacks.rs` play in (the kit's host, two browsers, two clients),
//! and the attack scenarios that a fault switch re-opens, written once and run both ways:
//! without faults (the attack must fail) and, in `with_faults`, with the switch on (it must succeed).

use consent_gate::*;

use super::common::*;

/// The attacker's redirect URI.
pub const EVIL_CB: &str = "https://evil.example/cb";
/// The issuer of the attacker's own authorization server (A13).
pub const EVIL_AS: &str = "https://as.evil.example";

/// Where an attack was stopped (read through `Debug` in failure messages).
#[derive(Debug)]
#[allow(dead_code)]
pub enum Blocked {
    Authorize(AuthorizeError),
    Consent(ConsentError),
    Callback(CallbackError),
    Token(TokenError),
    Bearer(BearerError),
    /// The victim was shown our consent page naming the attacker's redirect host, and
    /// nothing left our origin without a click.
    ConsentPageShown,
    /// The redirect that reached the receiver carried an error, not a code.
    ErrorRedirect(String),
}

/// What an attack yields: on success, the principal of the token it produced.
pub type Outcome = Result<Principal, Blocked>;

/// Asserts that `outcome` is `Err(pattern)`.
macro_rules! assert_blocked {
    ($outcome:expr, $pattern:pat) => {
        assert!(matches!($outcome, Err($pattern)), "{:?}", $outcome)
    };
}
pub(crate) use assert_blocked;

/// Asserts that an error reply is a page on our origin, never a redirect (R16, R32).
pub fn assert_page_not_redirect(reply: &Reply) {
    assert!(reply.header("location").is_none(), "a page, not a redirect");
    let html = Some("text/html; charset=utf-8");
    assert_eq!(reply.header("content-type"), html);
}

/// Asserts whose token a successful attack produced, and for which client.
pub fn assert_principal(who: &Principal, user: GithubUser, client: &Client) {
    assert_eq!(who.subject(), user.subject());
    assert_eq!(who.client_id(), client.id);
}

/// A server; a victim V who used the legitimate client C before (so GitHub auto-approves,
/// A1 step 1); an attacker X with its own browser, GitHub account and client.
pub struct Scene {
    pub host: Host,
    pub victim: Browser,
    pub attacker: Browser,
    /// The victim's MCP client, C.
    pub legit: Client,
    /// The attacker's client, X, which borrows C's name (R12: names are self-asserted).
    pub evil: Client,
}

impl Scene {
    pub fn new(setup: GateSetup) -> Self {
        let mut host = Host::with(setup);
        let legit = host.register_public("Claude Desktop", "http://127.0.0.1:33418/cb");
        let evil = host.register_public("Claude Desktop", EVIL_CB);
        let mut victim = host.browser(VICTIM);
        host.login(&mut victim, &App::new(&legit, "earlier"));
        let attacker = host.browser(ATTACKER);
        Self {
            host,
            victim,
            attacker,
            legit,
            evil,
        }
    }

    /// The default scene with fault switches.
    pub fn faulty(faults: Faults) -> Self {
        Self::new(GateSetup {
            faults,
            ..GateSetup::default()
        })
    }

    /// The receiver at `app`'s redirect URI: takes the code from the redirect that reached
    /// it, redeems it with `app`'s verifier and uses the token at the MCP endpoint.
    pub fn redeem_loot(&mut self, app: &App, reply: &Reply) -> Outcome {
        let code = app.receive(reply, ISSUER).map_err(Blocked::ErrorRedirect)?;
        let tokens = self.host.redeem(&app.client, &code, &app.verifier, None);
        let tokens = tokens.map_err(Blocked::Token)?;
        self.host.bearer(tokens.access()).map_err(Blocked::Bearer)
    }

    /// V's browser follows our 303 to GitHub, GitHub sends it straight back, our callback
    /// redirects wherever the transaction says, and the receiver there redeems.
    pub fn victim_goes_upstream(&mut self, receiver: &App, to_github: &Reply) -> Outcome {
        let back = self.host.through_github(&self.victim, to_github);
        let to_client = self.host.callback(&mut self.victim, &back);
        let to_client = to_client.map_err(Blocked::Callback)?;
        self.redeem_loot(receiver, &to_client)
    }

    /// V's honest flow with C still works, as V.
    pub fn honest_flow_still_works(&mut self) {
        let app = App::new(&self.legit, "honest");
        let tokens = self.host.login(&mut self.victim, &app);
        let who = self.host.bearer(tokens.access()).expect("the honest token");
        assert_principal(&who, VICTIM, &self.legit);
    }
}

/// A2: X approves its own client in its own browser, copies our 303's GitHub URL (with our
/// `state`) and gets V to open it; GitHub sends V's browser to our callback.
pub fn forwarded_upstream_url(faults: Faults) -> (Scene, Outcome) {
    let mut w = Scene::faulty(faults);
    let x = App::new(&w.evil, "x");
    let to_github = w.host.approved(&mut w.attacker, &x);
    // The link X sends V is `location(&to_github)`; V's browser follows it.
    let outcome = w.victim_goes_upstream(&x, &to_github);
    (w, outcome)
}

/// A3: X loads its own consent page, then makes V's browser POST X's `tx` and `csrf` with
/// an auto-submitting form on X's site, which sends `origin`.
pub fn csrf_on_consent(faults: Faults, legacy: bool, origin: &'static str) -> (Scene, Outcome) {
    let mut w = Scene::faulty(faults);
    w.victim.legacy = legacy;
    let x = App::new(&w.evil, "x");
    let page = w.host.page(&mut w.attacker, &x, Nav::Direct);
    let body = ConsentFields::read(&page).body("approve");
    let nav = Nav::CrossSitePost(origin);
    let outcome = match w.host.post_consent(&mut w.victim, &body, nav) {
        Err(e) => Err(Blocked::Consent(e)),
        Ok(to_github) => w.victim_goes_upstream(&x, &to_github),
    };
    (w, outcome)
}

/// A4: with remembered consent, V (who approved C) opens X's link from a mail app
/// (`Sec-Fetch-Site: none`, the one case in which a remembered consent may apply).
pub fn remembered_consent_elsewhere(faults: Faults) -> (Scene, Outcome) {
    let mut w = Scene::new(GateSetup {
        policy: ConsentPolicy::Remember,
        faults,
        ..GateSetup::default()
    });
    let x = App::new(&w.evil, "x");
    let outcome = match w.host.get_authorize(&mut w.victim, &x.query(), Nav::Direct) {
        Err(e) => Err(Blocked::Authorize(e)),
        Ok(page) if page.status == 200 => Err(Blocked::ConsentPageShown),
        Ok(to_github) => w.victim_goes_upstream(&x, &to_github),
    };
    (w, outcome)
}

/// A7: V's callback reached us but GitHub refused the code exchange (F7), so C got
/// `server_error` and V's binding cookie is still there. X has read V's history (the
/// GitHub URL and the callback URL, same `state`), signs in at that GitHub URL as itself
/// and makes V's browser load the resulting callback: a replayed `state` with X's code.
/// On success C ends up signed in to X's account (login CSRF).
pub fn state_replay(faults: Faults) -> (Scene, Outcome) {
    let mut w = Scene::faulty(faults);
    let c = App::new(&w.legit, "v");
    let up = w.host.approved(&mut w.victim, &c);
    let back = w.host.through_github(&w.victim, &up);
    w.host.github.fail_next_exchange = Some("bad_verification_code");
    let failed = w.host.callback(&mut w.victim, &back).unwrap_err();
    let told = c.receive(&failed.response(), ISSUER);
    assert_eq!(told, Err("server_error".into()));
    let x_back = w.host.github.authorize(ATTACKER, location(&up));
    let outcome = match w.host.callback(&mut w.victim, &x_back) {
        Err(e) => Err(Blocked::Callback(e)),
        // C receives a code under its own state and redeems it.
        Ok(to_c) => w.redeem_loot(&c, &to_c),
    };
    (w, outcome)
}

/// A8: C redeems its code; X captured that token request (a logging proxy, a leaked
/// loopback exchange) and replays it. Also returns the tokens C got.
pub fn code_replay(faults: Faults) -> (Scene, Outcome, Tokens) {
    let mut w = Scene::faulty(faults);
    let c = App::new(&w.legit, "v");
    let code = w.host.code_for(&mut w.victim, &c);
    let pairs = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("code_verifier", &c.verifier),
    ];
    let (body, auth) = c.client.token_request(&pairs);
    let victim_tokens = w.host.post_token(&body, auth.as_deref()).unwrap();
    let outcome = match w.host.post_token(&body, auth.as_deref()) {
        Err(e) => Err(Blocked::Token(e)),
        Ok(t) => w.host.bearer(t.access()).map_err(Blocked::Bearer),
    };
    (w, outcome, victim_tokens)
}

/// A10: a web client registered `https://app.example` (no path). X crafts a link for it
/// with a look-alike redirect URI it controls; V, seeing the client's name, approves.
pub fn redirect_trick(faults: Faults) -> (Scene, Outcome) {
    let mut w = Scene::faulty(faults);
    let web = w.host.register_public("Acme Web", "https://app.example");
    let mut x = App::new(&web, "x");
    x.redirect_uri = "https://app.example.evil.example/cb".into();
    let outcome = match w
        .host
        .get_authorize(&mut w.victim, &x.query(), Nav::CrossSite)
    {
        Err(e) => Err(Blocked::Authorize(e)),
        Ok(page) => {
            let up = w.host.click(&mut w.victim, &page, "approve").unwrap();
            w.victim_goes_upstream(&x, &up)
        }
    };
    (w, outcome)
}

/// A13, mix-up on the upstream leg: V approves C, and V's authorization request reaches
/// X's authorization server instead of GitHub (the mix-up's premise). X's server signs in
/// at GitHub as X with that request (V's `state` and PKCE challenge) and sends V's browser
/// to our callback with the code and its own RFC 9207 `iss`, as an authorization server
/// names itself. On success C ends up signed in to X's account (login CSRF): binding,
/// `state` and upstream PKCE all match, so only the issuer check tells the answer apart.
pub fn issuer_mix_up(faults: Faults) -> (Scene, Outcome) {
    let mut w = Scene::faulty(faults);
    let c = App::new(&w.legit, "v");
    let up = w.host.approved(&mut w.victim, &c);
    w.host.github.send_iss = Some(EVIL_AS.into());
    let x_back = w.host.github.authorize(ATTACKER, location(&up));
    w.host.github.send_iss = Some(w.host.github.issuer.clone());
    let outcome = match w.host.callback(&mut w.victim, &x_back) {
        Err(e) => Err(Blocked::Callback(e)),
        Ok(to_c) => w.redeem_loot(&c, &to_c),
    };
    (w, outcome)
}

/// Each fault switch re-creates a known bypass (docs/design.md#fault-switches): the attack it
/// corresponds to must then succeed, or the attack test in `attacks.rs` proves nothing.
#[cfg(consent_gate_faults)]
mod with_faults {
    use super::*;

    fn fault(name: &str) -> Faults {
        let found = Faults::ALL.iter().find(|(n, _)| *n == name);
        found.map(|(_, f)| *f).expect("a fault switch of that name")
    }

    /// Which attack re-opens with which switch.
    const REOPENS: [(&str, &str); 7] = [
        ("consent_per_browser", "a4"),
        ("csrf_unbound", "a3"),
        ("callback_unbound", "a2"),
        ("state_reusable", "a7"),
        ("code_reusable", "a8"),
        ("redirect_prefix_match", "a10"),
        ("issuer_unchecked", "a13"),
    ];

    #[test]
    fn every_fault_switch_has_an_attack_that_catches_it() {
        for (name, _) in Faults::ALL {
            let covered = REOPENS.iter().any(|(n, _)| *n == name);
            assert!(covered, "{name} has no attack re-run with it");
        }
    }

    fn succeeded(outcome: Outcome) -> Principal {
        outcome.unwrap_or_else(|b| panic!("the fault should re-open the attack; {b:?}"))
    }

    #[test]
    fn consent_per_browser_reopens_a4() {
        let (w, outcome) = remembered_consent_elsewhere(fault("consent_per_browser"));
        assert_principal(&succeeded(outcome), VICTIM, &w.evil);
    }

    #[test]
    fn csrf_unbound_reopens_a3() {
        let (w, outcome) = csrf_on_consent(fault("csrf_unbound"), true, "null");
        assert_principal(&succeeded(outcome), VICTIM, &w.evil);
    }

    #[test]
    fn callback_unbound_reopens_a2() {
        let (w, outcome) = forwarded_upstream_url(fault("callback_unbound"));
        assert_principal(&succeeded(outcome), VICTIM, &w.evil);
    }

    #[test]
    fn state_reusable_reopens_a7() {
        // V's client C ends up signed in to X's account (login CSRF by state replay).
        let (w, outcome) = state_replay(fault("state_reusable"));
        assert_principal(&succeeded(outcome), ATTACKER, &w.legit);
    }

    #[test]
    fn code_reusable_reopens_a8() {
        let (w, outcome, _) = code_replay(fault("code_reusable"));
        assert_principal(&succeeded(outcome), VICTIM, &w.legit);
    }

    #[test]
    fn redirect_prefix_match_reopens_a10() {
        // The switch turns every redirect match into a prefix match, /authorize and the
        // re-validation before a code is issued (R38) alike: the look-alike gets the code.
        let (_, outcome) = redirect_trick(fault("redirect_prefix_match"));
        let who = outcome.expect("the fault should let the look-alike redirect through");
        assert_eq!(who.subject(), VICTIM.subject());
    }

    #[test]
    fn issuer_unchecked_reopens_a13() {
        // X's authorization server answered V's request: C ends up signed in to X's account.
        let (w, outcome) = issuer_mix_up(fault("issuer_unchecked"));
        assert_principal(&succeeded(outcome), ATTACKER, &w.legit);
    }
}
