//! `POST /revoke` (RFC 7009): a client revokes one of its tokens, and with it the grant.

use std::sync::Arc;

use consent_gate::{ClientRecord, RefreshRecord, RevocationRequest};

use crate::glue::{Req, Resp, V, now, reply, security};
use crate::routes::App;
use crate::store::Kind;

pub fn revoke(app: &App, req: &Req) -> Resp {
    let now = now();
    let request = match RevocationRequest::parse(&req.body, req.header("authorization")) {
        Ok(r) => r,
        Err(e) => return reply(e.response()),
    };
    let client: Option<Arc<ClientRecord>> = app.store.get_record(&request.client_key(), now);
    // Got, not taken: an unknown or foreign token must change nothing (§2.2).
    let refresh: Option<Arc<RefreshRecord>> = app.store.get_record(&request.refresh_key(), now);
    match app
        .gate
        .revoke(&request, client.as_deref(), refresh.as_deref(), now)
    {
        Ok(revocation) => {
            if let Some(grant) = &revocation.revoke_grant {
                // Deleted before the reply: the client may rely on "200 means gone".
                app.store.delete(Kind::Grant, grant.as_bytes());
                let client_id = client.as_ref().map_or(V::Null, |c| V::Short(c.client_id()));
                security("grant_revoked", &[("client_id", client_id)]);
            }
            reply(revocation.reply)
        }
        Err(e) => reply(e.response()),
    }
}
