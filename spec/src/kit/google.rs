//! Google's wire shapes for the upstream double (docs/upstreams.md#google): with
//! [`FakeGithub::openid`](super::FakeGithub) set, the double answers as an OpenID provider
//! does: the authorization request must carry a `nonce`, the token endpoint answers with
//! Google's JSON (`expires_in` 3599, a space-separated `scope` of URLs, `Bearer`, a refresh
//! token, an `id_token`), and the user endpoint is Google's userinfo.
//!
//! The ID token is a JWT whose header names RS256 and whose third part is **not** a
//! signature: the gate takes ID tokens from the token endpoint over TLS and does not verify
//! signatures (docs/upstreams.md#google-id-token), so a real one would prove nothing here.
//! Each claim the gate checks can be spoiled on purpose ([`Spoil`]), to show that the gate
//! refuses a token that lies in that one way.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use consent_gate::UnixTime;

use super::github::{GithubUser, UPSTREAM_CLIENT_ID};

/// One way the provider's answer can lie, to be refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Spoil {
    /// The ID token carries the nonce of another sign-in (a token injected with its code).
    Nonce,
    /// The ID token names another issuer (mix-up: another provider's token).
    Issuer,
    /// The ID token was issued to another client.
    Audience,
    /// The ID token expired an hour ago.
    Expired,
    /// The token response has no ID token.
    NoIdToken,
    /// The userinfo document names another user than the ID token.
    UserinfoSubject,
    /// The ID token names no Workspace domain (a personal account).
    NoHostedDomain,
}

/// The OpenID side of the double: the clock its tokens are stamped with, and what to spoil.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GoogleShapes {
    /// Now, for `iat` and `exp` (the host sets it before each exchange).
    pub now: UnixTime,
    /// The Workspace domain its accounts belong to (`hd`), if any.
    pub hosted_domain: Option<String>,
    /// What the next answers spoil.
    pub spoil: Option<Spoil>,
}

impl GoogleShapes {
    /// Honest answers, accounts without a Workspace domain.
    pub fn new() -> Self {
        Self {
            now: UnixTime(0),
            hosted_domain: None,
            spoil: None,
        }
    }

    /// The `sub` of an account: Google's are 21 decimal digits.
    pub fn sub(user: GithubUser) -> String {
        format!("1101694844743862{:05}", user.id)
    }

    /// The MCP subject the gate derives (`google:` + `sub`).
    pub fn subject(user: GithubUser) -> String {
        format!("google:{}", Self::sub(user))
    }

    fn id_token(&self, issuer: &str, user: GithubUser, nonce: &str) -> String {
        let spoil = self.spoil;
        let now = self.now.0;
        let mut claims = serde_json::json!({
            "iss": if spoil == Some(Spoil::Issuer) { "https://evil.example" } else { issuer },
            "azp": UPSTREAM_CLIENT_ID,
            "aud": if spoil == Some(Spoil::Audience) { "another-client" } else { UPSTREAM_CLIENT_ID },
            "sub": Self::sub(user),
            "email": format!("{}@example.com", user.login),
            "email_verified": true,
            "at_hash": "HK6E_P6Dh8Y93mRNtsDB1Q",
            "nonce": if spoil == Some(Spoil::Nonce) { "nonce-of-another-sign-in" } else { nonce },
            "name": user.login,
            "iat": if spoil == Some(Spoil::Expired) { now - 7200 } else { now },
            "exp": if spoil == Some(Spoil::Expired) { now - 3600 } else { now + 3599 },
        });
        if let (Some(hd), false) = (&self.hosted_domain, spoil == Some(Spoil::NoHostedDomain)) {
            claims["hd"] = hd.as_str().into();
        }
        let part = |v: &[u8]| URL_SAFE_NO_PAD.encode(v);
        format!(
            "{}.{}.{}",
            part(br#"{"alg":"RS256","kid":"kit-key-1","typ":"JWT"}"#),
            part(claims.to_string().as_bytes()),
            part(b"not a signature: the gate relies on TLS to the token endpoint"),
        )
    }

    /// The token endpoint's success answer (docs/upstreams.md#google).
    pub fn token_answer(
        &self,
        issuer: &str,
        user: GithubUser,
        nonce: &str,
        access_token: &str,
    ) -> serde_json::Value {
        let mut answer = serde_json::json!({
            "access_token": access_token,
            "expires_in": 3599,
            "scope": "openid https://www.googleapis.com/auth/userinfo.email https://www.googleapis.com/auth/userinfo.profile",
            "token_type": "Bearer",
            "refresh_token": format!("1//0g{}", user.id),
        });
        if self.spoil != Some(Spoil::NoIdToken) {
            answer["id_token"] = self.id_token(issuer, user, nonce).into();
        }
        answer
    }

    /// The userinfo document of `user`.
    pub fn userinfo(&self, user: GithubUser) -> serde_json::Value {
        let sub = if self.spoil == Some(Spoil::UserinfoSubject) {
            Self::sub(GithubUser {
                id: user.id + 1,
                login: "someone-else",
            })
        } else {
            Self::sub(user)
        };
        let mut doc = serde_json::json!({
            "sub": sub,
            "name": user.login,
            "given_name": user.login,
            "picture": "https://lh3.googleusercontent.com/a/kit",
            "email": format!("{}@example.com", user.login),
            "email_verified": true,
        });
        if let Some(hd) = &self.hosted_domain {
            doc["hd"] = hd.as_str().into();
        }
        doc
    }
}

impl Default for GoogleShapes {
    fn default() -> Self {
        Self::new()
    }
}
