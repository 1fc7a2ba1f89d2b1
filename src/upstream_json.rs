//! What the upstream answers on the back channel, read strictly: the token response
//! (docs/upstreams.md#github-token-response) and the user document, member by member.

use std::borrow::Cow;

use crate::crypto::{UpstreamRefreshToken, UpstreamToken};
use crate::error::UpstreamError;
use crate::params::{Params, is_vschar_or_space};
use crate::reply::UpstreamResponse;

/// Largest upstream response body we parse.
pub const MAX_UPSTREAM_BODY: usize = 64 * 1024;

/// A parsed, successful upstream token response.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct UpstreamTokens {
    pub(crate) access_token: UpstreamToken,
    pub(crate) expires_in: Option<u64>,
    /// The upstream's refresh token, when it issued one (Google with offline access, a
    /// GitHub App with expiring user tokens), kept to renew `access_token` (R66).
    pub(crate) refresh_token: Option<UpstreamRefreshToken>,
    /// An OpenID provider's ID token, unchecked (the caller checks it, R67).
    pub(crate) id_token: Option<String>,
}

/// Parses an upstream token response: branch on the body, not the status (GitHub answers
/// errors with HTTP 200, docs/upstreams.md#github-token-response); JSON or form by `Content-Type`;
/// any `error` member is a failure; a missing or empty `access_token` is a failure.
pub(crate) fn parse_token_response(
    resp: &UpstreamResponse<'_>,
) -> Result<UpstreamTokens, UpstreamError> {
    if resp.body.len() > MAX_UPSTREAM_BODY {
        return Err(UpstreamError::Malformed);
    }
    let ct = resp.content_type.unwrap_or("");
    let is = |essence: &str| {
        ct.get(..essence.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(essence))
    };
    const WANTED: [&str; 6] = [
        "access_token",
        "token_type",
        "expires_in",
        "error",
        "id_token",
        "refresh_token",
    ];
    let mut fields: [Option<Cow<'_, str>>; 6] = Default::default();
    if is("application/x-www-form-urlencoded") || is("text/plain") {
        let p = Params::parse(resp.body).map_err(|_| UpstreamError::Malformed)?;
        for (slot, k) in fields.iter_mut().zip(WANTED) {
            *slot = p.get(k).map(|v| Cow::Owned(v.to_owned()));
        }
    } else {
        let members = json::object_members(resp.body, &WANTED).map_err(|_| {
            if resp.status != 200 {
                UpstreamError::Status(resp.status)
            } else {
                UpstreamError::Malformed
            }
        })?;
        for ((slot, k), v) in fields.iter_mut().zip(WANTED).zip(members) {
            *slot = match v {
                Some(json::Scalar::Str(s)) => Some(s),
                // Numbers only where providers send them (`expires_in` may be either,
                // docs/upstreams.md#parsing-rules); a numeric `access_token` is not a token.
                Some(json::Scalar::Num(n)) if k == "expires_in" => Some(Cow::Owned(n.to_string())),
                _ => None,
            };
        }
    }
    let get = |k: &str| {
        WANTED
            .iter()
            .position(|w| *w == k)
            .and_then(|i| fields[i].as_deref())
    };
    if let Some(e) = get("error") {
        let e: String = e
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        return Err(UpstreamError::ErrorResponse(e));
    }
    if resp.status != 200 {
        return Err(UpstreamError::Status(resp.status));
    }
    let token = get("access_token").filter(|t| !t.is_empty() && t.len() <= 4096);
    let token = token.ok_or(UpstreamError::Incomplete)?;
    // `bearer` (GitHub) or `Bearer` (Google); absent is tolerated.
    if get("token_type").is_some_and(|t| !t.eq_ignore_ascii_case("bearer")) {
        return Err(UpstreamError::Incomplete);
    }
    // Bounded like the access token: it is sealed into every grant's user data (R65). An
    // empty one is no refresh token (nothing could be renewed with it).
    let refresh_token = match get("refresh_token") {
        Some(t) if t.len() > 4096 => return Err(UpstreamError::Incomplete),
        Some(t) if !t.is_empty() => Some(UpstreamRefreshToken::new(t)),
        _ => None,
    };
    Ok(UpstreamTokens {
        access_token: crate::crypto::UpstreamToken::new(token),
        refresh_token,
        // Absent means "does not expire" (GitHub OAuth Apps), never "expired".
        expires_in: get("expires_in").and_then(|v| v.parse().ok()),
        id_token: get("id_token").map(str::to_owned),
    })
}

/// The user an upstream document names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct UpstreamUser {
    pub(crate) subject: String,
    pub(crate) display_name: Option<String>,
}

/// Parses a GitHub `GET /user` document (`id`, `login`) or an OIDC userinfo (`sub`).
pub(crate) fn parse_user(
    resp: &UpstreamResponse<'_>,
    prefix: &str,
) -> Result<UpstreamUser, UpstreamError> {
    if resp.status != 200 {
        return Err(UpstreamError::Status(resp.status));
    }
    if resp.body.len() > MAX_UPSTREAM_BODY {
        return Err(UpstreamError::Malformed);
    }
    let [sub, id, login, email, name] =
        json::object_members(resp.body, &["sub", "id", "login", "email", "name"])
            .map_err(|_| UpstreamError::Malformed)?;
    let id: Cow<'_, str> = match (sub, id) {
        (Some(json::Scalar::Str(s)), _) => s,
        (_, Some(json::Scalar::Num(n))) => Cow::Owned(n.to_string()),
        (_, Some(json::Scalar::Str(s))) => s,
        _ => return Err(UpstreamError::NoSubject),
    };
    if id.is_empty() || id.len() > 255 || !is_vschar_or_space(&id) {
        return Err(UpstreamError::NoSubject);
    }
    let display_name = [login, email, name]
        .into_iter()
        .find_map(|v| match v {
            Some(json::Scalar::Str(s)) => Some(s),
            _ => None,
        })
        .filter(|s| s.len() <= 255)
        .map(|s| s.chars().filter(|c| !c.is_control()).collect());
    let mut subject = String::with_capacity(prefix.len() + id.len());
    subject.push_str(prefix);
    subject.push_str(&id);
    Ok(UpstreamUser {
        subject,
        display_name,
    })
}

mod json {
    //! Reading a few members of an upstream JSON object without building a
    //! `serde_json::Value` tree: strings borrow the body when they have no escapes, every
    //! other member is skipped. Strict where the tree was lenient: the top level must be an
    //! object, and a member we read may appear only once (a repeated `access_token` or `id`
    //! is ambiguous, R22's rule applied to JSON).

    use core::fmt;
    use std::borrow::Cow;

    use serde::Deserializer as _;
    use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};

    /// A member's value, as far as we care.
    pub(super) enum Scalar<'de> {
        Str(Cow<'de, str>),
        Num(serde_json::Number),
        Other,
    }

    struct ScalarVisitor;

    impl<'de> Visitor<'de> for ScalarVisitor {
        type Value = Scalar<'de>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Scalar::Str(Cow::Borrowed(v)))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Scalar::Str(Cow::Owned(v.to_owned())))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Scalar::Str(Cow::Owned(v)))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Scalar::Num(v.into()))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Scalar::Num(v.into()))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(serde_json::Number::from_f64(v).map_or(Scalar::Other, Scalar::Num))
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(Scalar::Other)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Scalar::Other)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(Scalar::Other)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(Scalar::Other)
        }
    }

    impl<'de> de::Deserialize<'de> for Scalar<'de> {
        fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(ScalarVisitor)
        }
    }

    /// Reads a member name as its index in the wanted list (no allocation: the name is
    /// compared where it lies).
    struct KeySeed<'w, const N: usize>(&'w [&'static str; N]);

    impl<'de, const N: usize> de::DeserializeSeed<'de> for KeySeed<'_, N> {
        type Value = Option<usize>;
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(self)
        }
    }

    impl<'de, const N: usize> Visitor<'de> for KeySeed<'_, N> {
        type Value = Option<usize>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a member name")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(self.0.iter().position(|w| *w == v))
        }
    }

    struct ObjectVisitor<'w, const N: usize>(&'w [&'static str; N]);

    impl<'de, const N: usize> Visitor<'de> for ObjectVisitor<'_, N> {
        type Value = [Option<Scalar<'de>>; N];
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out: [Option<Scalar<'de>>; N] = core::array::from_fn(|_| None);
            while let Some(key) = map.next_key_seed(KeySeed(self.0))? {
                match key {
                    Some(i) if out[i].is_some() => {
                        return Err(de::Error::custom("repeated member"));
                    }
                    Some(i) => out[i] = Some(map.next_value::<Scalar<'de>>()?),
                    None => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(out)
        }
    }

    /// The members named in `wanted` of the JSON object `body`, in that order.
    pub(super) fn object_members<'de, const N: usize>(
        body: &'de [u8],
        wanted: &[&'static str; N],
    ) -> Result<[Option<Scalar<'de>>; N], serde_json::Error> {
        let mut d = serde_json::Deserializer::from_slice(body);
        let out = d.deserialize_map(ObjectVisitor(wanted))?;
        d.end()?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(body: &str) -> UpstreamResponse<'_> {
        UpstreamResponse {
            status: 200,
            content_type: Some("application/json"),
            body: body.as_bytes(),
        }
    }

    #[test]
    fn a_repeated_member_is_refused_not_last_wins() {
        // R22's rule for OAuth parameters, applied to the upstream's JSON: with "last
        // wins" a proxy or a smuggled member could decide which token or subject we take.
        let twice = r#"{"access_token":"a","token_type":"bearer","access_token":"b"}"#;
        assert_eq!(
            parse_token_response(&json(twice)).err(),
            Some(UpstreamError::Malformed)
        );
        let user = r#"{"id":1,"login":"octocat","id":2}"#;
        assert_eq!(
            parse_user(&json(user), "github:").err(),
            Some(UpstreamError::Malformed)
        );
        // Members we do not read may repeat: they are skipped, not judged.
        let other = r#"{"access_token":"a","scope":"x","scope":"y"}"#;
        assert!(parse_token_response(&json(other)).is_ok());
    }

    #[test]
    fn only_an_object_is_a_document() {
        // A derived struct visitor would also accept a JSON array, member by position.
        for body in [
            r#"["a","bearer"]"#,
            "\"a\"",
            "1",
            "null",
            r#"{"access_token":"a"} x"#,
        ] {
            assert!(parse_token_response(&json(body)).is_err(), "{body}");
        }
        let ok = parse_token_response(&json(
            r#"{"access_token":"gho_x","token_type":"bearer","expires_in":28800,"x":[1,{"y":null}]}"#,
        ))
        .expect("a GitHub-shaped answer");
        assert_eq!(ok.access_token.secret(), "gho_x");
        assert_eq!(ok.expires_in, Some(28800));
        assert_eq!(ok.refresh_token, None);
        let google = parse_token_response(&json(
            r#"{"access_token":"ya29.x","expires_in":3599,"token_type":"Bearer","refresh_token":"1//0g"}"#,
        ))
        .expect("a Google-shaped answer");
        assert_eq!(
            google.refresh_token.as_ref().map(|t| t.secret()),
            Some("1//0g")
        );
        let long = format!(
            r#"{{"access_token":"a","refresh_token":"{}"}}"#,
            "r".repeat(4097)
        );
        assert_eq!(
            parse_token_response(&json(&long)).err(),
            Some(UpstreamError::Incomplete)
        );
        assert_eq!(
            parse_user(&json(r#"{"login":"octocat","id":583231}"#), "github:")
                .expect("user")
                .subject,
            "github:583231"
        );
    }
}

#[cfg(test)]
#[path = "tests/upstream_json_checks.rs"]
mod checks;
