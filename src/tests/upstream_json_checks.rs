//! Checks of the upstream's token response and user document, member by member (issue 10,
//! item 7): what each member may be, what its absence means, what an `error` member or a
//! status does, and the size bound.

use super::*;

fn resp<'a>(status: u16, content_type: Option<&'a str>, body: &'a str) -> UpstreamResponse<'a> {
    UpstreamResponse {
        status,
        content_type,
        body: body.as_bytes(),
    }
}

fn json(body: &str) -> UpstreamResponse<'_> {
    resp(200, Some("application/json"), body)
}

fn token(r: &UpstreamResponse<'_>) -> Result<(String, Option<u64>), UpstreamError> {
    parse_token_response(r).map(|t| (t.access_token.secret().to_owned(), t.expires_in))
}

fn user(r: &UpstreamResponse<'_>) -> Result<UpstreamUser, UpstreamError> {
    parse_user(r, "gh:")
}

fn ok(access: &str, expires_in: Option<u64>) -> Result<(String, Option<u64>), UpstreamError> {
    Ok((access.to_owned(), expires_in))
}

/// `body` padded with trailing whitespace to exactly `len` bytes.
fn padded(body: &str, len: usize) -> String {
    format!("{body}{}", " ".repeat(len - body.len()))
}

#[test]
fn access_token_must_be_a_non_empty_string_of_at_most_4096_bytes() {
    assert_eq!(token(&json(r#"{"access_token":"t"}"#)), ok("t", None));
    let max = "t".repeat(4096);
    let body = format!(r#"{{"access_token":"{max}"}}"#);
    assert_eq!(token(&json(&body)), ok(&max, None));
    let over = format!(r#"{{"access_token":"{max}t"}}"#);
    assert_eq!(token(&json(&over)), Err(UpstreamError::Incomplete));
    for body in [
        r#"{}"#,
        r#"{"access_token":""}"#,
        r#"{"access_token":123}"#,
        r#"{"access_token":null}"#,
        r#"{"access_token":true}"#,
        r#"{"access_token":["t"]}"#,
        r#"{"access_token":{"t":1}}"#,
        r#"{"token":"t"}"#,
    ] {
        assert_eq!(token(&json(body)), Err(UpstreamError::Incomplete), "{body}");
    }
    // Escapes are decoded (an owned string, not a borrow of the body).
    assert_eq!(
        token(&json(r#"{"access_token":"a\u0062"}"#)),
        ok("ab", None)
    );
}

#[test]
fn token_type_is_bearer_in_any_case_or_absent() {
    for tt in ["bearer", "Bearer", "BEARER"] {
        let body = format!(r#"{{"access_token":"t","token_type":"{tt}"}}"#);
        assert_eq!(token(&json(&body)), ok("t", None), "{tt}");
    }
    for tt in ["mac", "bearer2", "DPoP", " bearer"] {
        let body = format!(r#"{{"access_token":"t","token_type":"{tt}"}}"#);
        assert_eq!(token(&json(&body)), Err(UpstreamError::Incomplete), "{tt}");
    }
    // Not a string: as if absent.
    assert_eq!(
        token(&json(r#"{"access_token":"t","token_type":1}"#)),
        ok("t", None)
    );
}

#[test]
fn expires_in_is_a_number_or_a_numeric_string_else_absent() {
    for (v, want) in [
        ("3600", Some(3600)),
        ("\"3600\"", Some(3600)),
        ("0", Some(0)),
        ("18446744073709551615", Some(u64::MAX)),
        ("-1", None),
        ("3600.5", None),
        ("1e3", None),
        ("\"soon\"", None),
        ("\"\"", None),
        ("null", None),
        ("true", None),
        ("[1]", None),
    ] {
        let body = format!(r#"{{"access_token":"t","expires_in":{v}}}"#);
        assert_eq!(token(&json(&body)), ok("t", want), "{v}");
    }
}

#[test]
fn an_error_member_fails_whatever_else_is_there() {
    for (body, code) in [
        (
            r#"{"error":"bad_verification_code","access_token":"t"}"#,
            "bad_verification_code",
        ),
        (r#"{"error":"<script>x-y_z</script>"}"#, "scriptxy_zscript"),
        (r#"{"error":"\u00e9t\u00e9"}"#, "t"),
    ] {
        assert_eq!(
            token(&json(body)),
            Err(UpstreamError::ErrorResponse(code.into())),
            "{body}"
        );
    }
    // At most 64 characters of it are kept.
    let long = format!(r#"{{"error":"{}"}}"#, "e".repeat(100));
    assert_eq!(
        token(&json(&long)),
        Err(UpstreamError::ErrorResponse("e".repeat(64)))
    );
    // Whatever the status.
    let e = resp(
        400,
        Some("application/json"),
        r#"{"error":"invalid_grant"}"#,
    );
    assert_eq!(
        token(&e),
        Err(UpstreamError::ErrorResponse("invalid_grant".into()))
    );
    // A non-string `error` is not an error member.
    assert_eq!(
        token(&json(r#"{"error":1,"access_token":"t"}"#)),
        ok("t", None)
    );
}

#[test]
fn the_status_decides_only_when_the_body_does_not() {
    // A token under another status is not accepted.
    let r = resp(201, Some("application/json"), r#"{"access_token":"t"}"#);
    assert_eq!(token(&r), Err(UpstreamError::Status(201)));
    // An unparsable body: the status, if it is not 200; else malformed.
    let r = resp(502, Some("application/json"), "<html>Bad gateway</html>");
    assert_eq!(token(&r), Err(UpstreamError::Status(502)));
    let r = resp(200, Some("application/json"), "<html>OK</html>");
    assert_eq!(token(&r), Err(UpstreamError::Malformed));
    let r = resp(500, Some("application/x-www-form-urlencoded"), "a=1");
    assert_eq!(token(&r), Err(UpstreamError::Status(500)));
}

#[test]
fn form_and_text_bodies_are_read_as_forms_by_content_type() {
    let form = "access_token=t%2B1&token_type=bearer&expires_in=60&scope=x";
    for ct in [
        "application/x-www-form-urlencoded",
        "Application/X-WWW-Form-Urlencoded; charset=utf-8",
        "text/plain",
        "TEXT/PLAIN;charset=utf-8",
    ] {
        assert_eq!(
            token(&resp(200, Some(ct), form)),
            ok("t+1", Some(60)),
            "{ct}"
        );
    }
    // GitHub's error answer in form encoding.
    let e = "error=bad_verification_code&error_description=The+code";
    assert_eq!(
        token(&resp(200, Some("application/x-www-form-urlencoded"), e)),
        Err(UpstreamError::ErrorResponse("bad_verification_code".into()))
    );
    let r = resp(200, Some("text/plain"), "access_token=t&token_type=mac");
    assert_eq!(token(&r), Err(UpstreamError::Incomplete));
    let r = resp(200, Some("text/plain"), "access_token=%ZZ");
    assert_eq!(token(&r), Err(UpstreamError::Malformed));
    // JSON under any other type, or none, or a type shorter than the ones we compare.
    let j = r#"{"access_token":"t"}"#;
    for ct in [Some("application/json"), None, Some("text"), Some("")] {
        assert_eq!(token(&resp(200, ct, j)), ok("t", None), "{ct:?}");
    }
    assert_eq!(token(&resp(200, None, form)), Err(UpstreamError::Malformed));
}

#[test]
fn upstream_bodies_are_read_up_to_the_size_bound() {
    let body = padded(r#"{"access_token":"t"}"#, MAX_UPSTREAM_BODY);
    assert_eq!(token(&json(&body)), ok("t", None));
    let body = padded(r#"{"access_token":"t"}"#, MAX_UPSTREAM_BODY + 1);
    assert_eq!(token(&json(&body)), Err(UpstreamError::Malformed));
    let body = padded(r#"{"id":1}"#, MAX_UPSTREAM_BODY);
    assert_eq!(user(&json(&body)).map(|u| u.subject), Ok("gh:1".into()));
    let body = padded(r#"{"id":1}"#, MAX_UPSTREAM_BODY + 1);
    assert_eq!(user(&json(&body)), Err(UpstreamError::Malformed));
}

#[test]
fn the_subject_is_sub_then_id() {
    for (body, subject) in [
        (r#"{"sub":"abc","id":5}"#, "gh:abc"),
        (r#"{"id":5,"sub":"abc"}"#, "gh:abc"),
        (r#"{"sub":7,"id":5}"#, "gh:5"),
        (r#"{"sub":null,"id":"x5"}"#, "gh:x5"),
        (r#"{"id":583231}"#, "gh:583231"),
        (r#"{"id":"s p"}"#, "gh:s p"),
        (r#"{"id":-3}"#, "gh:-3"),
    ] {
        assert_eq!(
            user(&json(body)).map(|u| u.subject),
            Ok(subject.into()),
            "{body}"
        );
    }
    let max = "i".repeat(255);
    let body = format!(r#"{{"sub":"{max}"}}"#);
    assert_eq!(
        user(&json(&body)).map(|u| u.subject),
        Ok(format!("gh:{max}"))
    );
    for body in [
        r#"{}"#.to_owned(),
        r#"{"sub":7}"#.to_owned(),
        r#"{"id":true}"#.to_owned(),
        r#"{"id":""}"#.to_owned(),
        r#"{"sub":""}"#.to_owned(),
        r#"{"id":"a\u0001b"}"#.to_owned(),
        r#"{"id":"\u00e9"}"#.to_owned(),
        r#"{"login":"octocat"}"#.to_owned(),
        format!(r#"{{"sub":"{max}i"}}"#),
    ] {
        assert_eq!(user(&json(&body)), Err(UpstreamError::NoSubject), "{body}");
    }
}

#[test]
fn the_display_name_is_the_first_string_of_login_email_name() {
    let name = |body: &str| user(&json(body)).map(|u| u.display_name);
    assert_eq!(
        name(r#"{"id":1,"name":"N","email":"e@x","login":"L"}"#),
        Ok(Some("L".into()))
    );
    assert_eq!(
        name(r#"{"id":1,"login":null,"email":"e@x","name":"N"}"#),
        Ok(Some("e@x".into()))
    );
    assert_eq!(
        name(r#"{"id":1,"login":5,"email":null,"name":"N"}"#),
        Ok(Some("N".into()))
    );
    assert_eq!(name(r#"{"id":1}"#), Ok(None));
    // Control characters are dropped; 255 bytes are kept, 256 are not shown at all.
    assert_eq!(
        name(r#"{"id":1,"login":"a\u0007b\nc"}"#),
        Ok(Some("abc".into()))
    );
    let max = "n".repeat(255);
    assert_eq!(
        name(&format!(r#"{{"id":1,"login":"{max}"}}"#)),
        Ok(Some(max.clone()))
    );
    assert_eq!(
        name(&format!(r#"{{"id":1,"login":"{max}n","name":"N"}}"#)),
        Ok(None)
    );
}

#[test]
fn a_user_document_needs_status_200_and_an_object() {
    let r = resp(401, Some("application/json"), r#"{"id":1}"#);
    assert_eq!(user(&r), Err(UpstreamError::Status(401)));
    let r = resp(201, Some("application/json"), r#"{"id":1}"#);
    assert_eq!(user(&r), Err(UpstreamError::Status(201)));
    for body in ["", "[1]", "{", r#"{"id":1}{"#, r#"{"id":1,"id":2}"#] {
        assert_eq!(user(&json(body)), Err(UpstreamError::Malformed), "{body}");
    }
    // Members we do not read may be anything.
    let body = r#"{"id":1,"plan":{"name":"pro","seats":[1,2.5,null,true]},"x":-0.5}"#;
    assert_eq!(user(&json(body)).map(|u| u.subject), Ok("gh:1".into()));
}
