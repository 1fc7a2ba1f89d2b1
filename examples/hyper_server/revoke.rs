//! `POST /revoke` (RFC 7009): a client revokes one of its tokens, and with it the grant.

use consent_gate::{ClientRecord, RefreshRecord, RevocationRequest};
use serde_json::json;

use crate::glue::{Req, Resp, now, reply, security, short};
use crate::routes::App;
use crate::store::Kind;

pub fn revoke(app: &App, req: &Req) -> Resp {
    let now = now();
    let request = match RevocationRequest::parse(&req.body, req.header("authorization")) {
        Ok(r) => r,
        Err(e) => return reply(e.response()),
    };
    let client: Option<ClientRecord> = app.store.get_record(&request.client_key(), now);
    // Got, not taken: an unknown or foreign token must change nothing (§2.2).
    let refresh: Option<RefreshRecord> = app.store.get_record(&request.refresh_key(), now);
    match app
        .gate
        .revoke(&request, client.as_ref(), refresh.as_ref(), now)
    {
        Ok(revocation) => {
            if let Some(grant) = &revocation.revoke_grant {
                // Deleted before the reply: the client may rely on "200 means gone".
                app.store.delete(Kind::Grant, grant.as_bytes());
                let client_id = client.as_ref().map(|c| short(c.client_id()));
                security("grant_revoked", json!({ "client_id": client_id }));
            }
            reply(revocation.reply)
        }
        Err(e) => reply(e.response()),
    }
}
