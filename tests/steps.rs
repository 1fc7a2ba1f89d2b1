//! The one output shape (docs/design.md#steps): what each step asks the host to store, in
//! which order, under which kind, key and expiry, through one generic executor. The store
//! rules this pins are security rules: a code is stored before its redirect leaves, a
//! replayed code deletes the grant, a rotated refresh token's successor is written only if
//! absent (R43, R53, R63).

use consent_gate::*;
use consent_gate_spec::entropy::SplitMix64;
use consent_gate_spec::kit::{GateSetup, Store, T0};

const NOW: UnixTime = T0;
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// Each op as (what, kind, key, expiry).
fn shape(step: &Step) -> Vec<(&'static str, Kind, StoreKey, Option<UnixTime>)> {
    step.ops
        .iter()
        .map(|op| match op {
            Op::Put {
                kind,
                key,
                expires_at,
                ..
            } => ("put", *kind, *key, *expires_at),
            Op::PutIfAbsent {
                kind,
                key,
                expires_at,
                ..
            } => ("put_if_absent", *kind, *key, *expires_at),
            Op::Delete { kind, key } => ("delete", *kind, *key, None),
        })
        .collect()
}

fn after<'t>(text: &'t str, name: &str) -> &'t str {
    let rest = text.split(name).nth(1).expect(name);
    rest.split(['&', '"', ';']).next().unwrap()
}

fn first_cookie(reply: &Reply) -> String {
    let set = reply.set_cookies().next().expect("a cookie");
    set.split(';').next().unwrap().to_owned()
}

struct Flow {
    gate: Gate,
    store: Store,
    rng: SplitMix64,
    client_id: String,
}

impl Flow {
    fn new() -> Self {
        let (gate, _) = GateSetup {
            https: true,
            github_com: true,
            ..GateSetup::default()
        }
        .build();
        let mut flow = Flow {
            gate,
            store: Store::default(),
            rng: SplitMix64(0),
            client_id: String::new(),
        };
        let body = br#"{"redirect_uris":["https://app.example/cb"],"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"]}"#;
        let gate = flow.gate.clone();
        let registered = gate.register(body, NOW, &mut flow.entropy()).unwrap();
        flow.client_id = registered.record.client_id().to_owned();
        let record = registered.record.clone();
        let step = Step::from(registered);
        assert_eq!(
            shape(&step),
            [("put", Kind::Client, StoreKey::client(&flow.client_id), None)]
        );
        assert_eq!(step.reply.status, 201);
        flow.store.apply_ops(&step.ops);
        assert_eq!(
            flow.store
                .get::<ClientRecord>(&StoreKey::client(&flow.client_id)),
            Some(record)
        );
        flow
    }

    fn entropy(&mut self) -> impl FnMut(&mut [u8]) + '_ {
        |buf: &mut [u8]| self.rng.fill(buf)
    }

    fn client(&self) -> Option<ClientRecord> {
        self.store.get(&StoreKey::client(&self.client_id))
    }

    /// The consent page's step, and the form fields and cookie to answer it.
    fn page(&mut self) -> (Step, String, String) {
        let query = format!(
            "response_type=code&client_id={}&redirect_uri=https%3A%2F%2Fapp.example%2Fcb\
             &code_challenge={CHALLENGE}&code_challenge_method=S256&state=xyz",
            self.client_id
        );
        let request = AuthorizeRequest::parse(query.as_bytes()).unwrap();
        let client = self.client();
        let gate = self.gate.clone();
        let Authorization::NeedsConsent(prompt) = gate
            .authorize(
                request,
                client.as_ref(),
                BrowserContext::default(),
                NOW,
                &mut self.entropy(),
            )
            .unwrap()
        else {
            panic!("a consent page")
        };
        let step = Step::from(prompt);
        let cookie = first_cookie(&step.reply);
        let html = String::from_utf8(step.reply.body.clone()).unwrap();
        let form = format!(
            "tx={}&csrf={}",
            after(&html, "name=\"tx\" value=\""),
            after(&html, "name=\"csrf\" value=\"")
        );
        (step, form, cookie)
    }

    fn decide(&mut self, form: &str, cookie: &str, choice: &str) -> Decision {
        let form = ConsentForm::parse(format!("{form}&decision={choice}").as_bytes()).unwrap();
        let pending = self.store.take::<PendingConsent>(&form.pending_key());
        let browser = BrowserContext {
            cookies: cookie,
            origin: Some("https://mcp.example"),
            sec_fetch_site: Some("same-origin"),
        };
        self.gate.decide(form, pending, browser, NOW).unwrap()
    }

    /// Through the upstream to the code's step.
    fn code(&mut self) -> Step {
        let (page, form, cookie) = self.page();
        self.store.apply_ops(&page.ops);
        let Decision::Approved(consent) = self.decide(&form, &cookie, "approve") else {
            panic!("approved")
        };
        let gate = self.gate.clone();
        let up = Step::from(gate.upstream_redirect(consent, NOW, &mut self.entropy()));
        let state = after(up.reply.header("location").unwrap(), "state=").to_owned();
        let callback = Callback::parse(format!("code=c&state={state}").as_bytes()).unwrap();
        assert_eq!(
            shape(&up),
            [(
                "put",
                Kind::Transaction,
                callback.transaction_key(),
                Some(NOW.plus(600))
            )]
        );
        self.store.apply_ops(&up.ops);
        let txn = self.store.take(&callback.transaction_key());
        let binding = first_cookie(&up.reply);
        let verified = gate
            .verify_callback(callback, txn, BrowserContext::with_cookies(&binding), NOW)
            .unwrap();
        let json = |body: &'static [u8]| UpstreamResponse {
            status: 200,
            content_type: Some("application/json"),
            body,
        };
        let authed = verified
            .accept_token_response(json(br#"{"access_token":"gho_x","token_type":"bearer"}"#))
            .unwrap();
        let client = self.client();
        let issued = gate
            .issue_code(
                authed,
                json(br#"{"id":1,"login":"octocat"}"#),
                client.as_ref(),
                NOW,
                &mut self.entropy(),
            )
            .unwrap();
        Step::from(issued)
    }

    fn token(&mut self, body: String) -> Result<Step, Step> {
        let request = TokenRequest::parse(body.as_bytes(), None).unwrap();
        let client = self.client();
        let gate = self.gate.clone();
        let result = if request.is_code_grant() {
            let code = self.store.take::<CodeRecord>(&request.record_key());
            gate.redeem_code(&request, code, client.as_ref(), NOW, &mut self.entropy())
        } else {
            let refresh = self.store.get::<RefreshRecord>(&request.record_key());
            let grant = refresh
                .as_ref()
                .and_then(|r| self.store.get::<GrantRecord>(&r.grant_key()));
            gate.redeem_refresh(&request, refresh, grant.as_ref(), client.as_ref(), NOW)
        };
        result.map(Step::from).map_err(Step::from)
    }

    /// A flow through the token endpoint, every step applied: the flow and the tokens' step.
    fn signed_in() -> (Self, Step) {
        let mut flow = Flow::new();
        let issued = flow.code();
        let code = after(issued.reply.header("location").unwrap(), "code=").to_owned();
        flow.store.apply_ops(&issued.ops);
        let tokens = flow.redeem(&code).unwrap();
        flow.store.apply_ops(&tokens.ops);
        (flow, tokens)
    }

    /// The access token a token reply carries, and the key of its grant.
    fn access(&self, tokens: &Step) -> (String, StoreKey) {
        let access = json(tokens)["access_token"].as_str().unwrap().to_owned();
        let header = format!("Bearer {access}");
        let claims = self.gate.verify_bearer(Some(&header), NOW).unwrap();
        (access, claims.grant_key())
    }

    fn redeem(&mut self, code: &str) -> Result<Step, Step> {
        self.token(format!(
            "grant_type=authorization_code&code={code}&client_id={}\
             &redirect_uri=https%3A%2F%2Fapp.example%2Fcb&code_verifier={VERIFIER}",
            self.client_id
        ))
    }
}

fn json(step: &Step) -> serde_json::Value {
    serde_json::from_slice(&step.reply.body).unwrap()
}

#[test]
fn the_consent_page_stores_its_pending_consent_and_a_denial_stores_nothing() {
    let mut flow = Flow::new();
    let (page, form, cookie) = flow.page();
    let form_key = ConsentForm::parse(format!("{form}&decision=deny").as_bytes())
        .unwrap()
        .pending_key();
    assert_eq!(
        shape(&page),
        [("put", Kind::Pending, form_key, Some(NOW.plus(600)))]
    );
    assert_eq!(page.reply.status, 200);
    flow.store.apply_ops(&page.ops);
    let Decision::Denied(to_client) = flow.decide(&form, &cookie, "deny") else {
        panic!("denied")
    };
    let step = Step::from(to_client);
    assert!(step.ops.is_empty());
    assert_eq!(step.reply.status, 303);
    assert!(
        step.reply
            .header("location")
            .unwrap()
            .contains("error=access_denied")
    );
    assert_eq!(
        flow.store.len(),
        1,
        "only the client: the pending consent was taken"
    );
}

#[test]
fn a_code_is_stored_before_its_redirect_and_a_replay_deletes_the_grant() {
    let mut flow = Flow::new();
    let issued = flow.code();
    let location = issued.reply.header("location").unwrap().to_owned();
    let code = after(&location, "code=").to_owned();
    let code_key = TokenRequest::parse(
        format!("grant_type=authorization_code&code={code}&client_id=x&code_verifier={VERIFIER}")
            .as_bytes(),
        None,
    )
    .unwrap()
    .record_key();
    assert_eq!(
        shape(&issued),
        [("put", Kind::Code, code_key, Some(NOW.plus(60)))]
    );
    flow.store.apply_ops(&issued.ops);
    let tokens = flow.redeem(&code).expect("tokens");
    let ops = shape(&tokens);
    // The redeemed code back (kept as long as a transaction), then the grant, then the
    // first refresh token's record.
    assert_eq!(ops.len(), 3, "{ops:?}");
    assert_eq!(ops[0], ("put", Kind::Code, code_key, Some(NOW.plus(600))));
    assert_eq!((ops[1].0, ops[1].1), ("put", Kind::Grant));
    assert_eq!((ops[2].0, ops[2].1), ("put", Kind::Refresh));
    flow.store.apply_ops(&tokens.ops);
    let (access, grant_key) = flow.access(&tokens);
    assert_eq!(ops[1].2, grant_key);
    assert_eq!(ops[1].3, Some(NOW.plus(30 * 24 * 3600)));
    // The replay: the redeemed code is taken again, and its error deletes the grant.
    let replay = flow.redeem(&code).expect_err("a replay");
    assert_eq!(shape(&replay), [("delete", Kind::Grant, grant_key, None)]);
    assert_eq!(json(&replay)["error"], "invalid_grant");
    flow.store.apply_ops(&replay.ops);
    let header = format!("Bearer {access}");
    let claims = flow.gate.verify_bearer(Some(&header), NOW).unwrap();
    let grant = flow.store.get::<GrantRecord>(&claims.grant_key());
    assert_eq!(
        claims.confirm(grant.as_ref(), NOW).err(),
        Some(BearerError::Revoked)
    );
}

#[test]
fn a_refresh_rotates_with_a_put_and_writes_its_successor_only_if_absent() {
    let (mut flow, tokens) = Flow::signed_in();
    let refresh = json(&tokens)["refresh_token"].as_str().unwrap().to_owned();
    let body = format!(
        "grant_type=refresh_token&refresh_token={refresh}&client_id={}",
        flow.client_id
    );
    let presented = TokenRequest::parse(body.as_bytes(), None)
        .unwrap()
        .record_key();
    let rotated = flow.token(body.clone()).expect("rotated");
    let successor = json(&rotated)["refresh_token"].as_str().unwrap().to_owned();
    let successor_key = TokenRequest::parse(
        format!(
            "grant_type=refresh_token&refresh_token={successor}&client_id={}",
            flow.client_id
        )
        .as_bytes(),
        None,
    )
    .unwrap()
    .record_key();
    let expiry = Some(NOW.plus(30 * 24 * 3600));
    assert_eq!(
        shape(&rotated),
        [
            ("put", Kind::Refresh, presented, expiry),
            ("put_if_absent", Kind::Refresh, successor_key, expiry),
        ]
    );
    flow.store.apply_ops(&rotated.ops);
    // Inside the grace window the same token gets the same successor and writes nothing.
    let again = flow.token(body).expect("within the grace window");
    assert!(again.ops.is_empty(), "{:?}", again.ops);
    assert_eq!(json(&again)["refresh_token"], successor.as_str());
}

#[test]
fn a_revocation_deletes_the_grant() {
    let (flow, tokens) = Flow::signed_in();
    let (access, grant_key) = flow.access(&tokens);
    let request = RevocationRequest::parse(
        format!("token={access}&client_id={}", flow.client_id).as_bytes(),
        None,
    )
    .unwrap();
    let client = flow.client();
    let revocation = flow
        .gate
        .revoke(&request, client.as_ref(), None, NOW)
        .unwrap();
    let step = Step::from(revocation);
    assert_eq!(shape(&step), [("delete", Kind::Grant, grant_key, None)]);
    assert_eq!(step.reply.status, 200);
}

#[test]
fn ops_never_print_their_records_and_garbage_is_not_a_record() {
    let mut flow = Flow::new();
    let issued = flow.code();
    let printed = format!("{:?}", issued.ops);
    assert!(printed.starts_with("[Put(code, StoreKey("), "{printed}");
    let Op::Put { value, .. } = &issued.ops[0] else {
        panic!("a put")
    };
    assert!(!printed.contains(&String::from_utf8_lossy(value).into_owned()));
    assert_eq!(CodeRecord::decode(b"not json"), None);
    assert_eq!(CodeRecord::decode(b"{}"), None);
    assert_eq!(
        Kind::ALL.map(Kind::name),
        [
            "client",
            "pending",
            "transaction",
            "code",
            "grant",
            "refresh",
            "installation"
        ]
    );
}
