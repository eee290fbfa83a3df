//! Who an HTTP request is: HTTP Basic credentials checked against the
//! server's users before any handler runs, and what that login may see.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64ct::{Base64, Encoding};

use crate::access::auth::{Refused, Role};
use crate::shared::Shared;
use crate::tenant::Tenant;

/// The client's address, for the failed-login brake.
#[derive(Clone, Copy)]
pub(crate) struct Peer(pub(crate) IpAddr);

/// What a request may see: the tenants, whether server-wide figures, and
/// what it may do.
pub(crate) struct Scope {
    pub(crate) tenants: Vec<Arc<Tenant>>,
    pub(crate) server_wide: bool,
    pub(crate) role: Role,
}

/// Every handler that needs a login takes a `Scope`: the credentials are
/// checked before the handler runs, and a refusal answers for it.
impl FromRequestParts<Arc<Shared>> for Scope {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> Result<Self, Response> {
        let peer = parts
            .extensions
            .get::<Peer>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |p| p.0);
        scope(shared, peer, &parts.headers).await
    }
}

/// Checks the request's Basic credentials when the server has users.
async fn scope(shared: &Shared, peer: IpAddr, headers: &HeaderMap) -> Result<Scope, Response> {
    if !shared.auth.required() {
        return Ok(Scope {
            tenants: shared.tenants.iter().cloned().collect(),
            server_wide: true,
            role: Role::Admin,
        });
    }
    let challenge = || {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"sessiond\"")],
            "authentication required: HTTP Basic with a sessiond user\n",
        )
            .into_response()
    };
    let Some((user, password)) = basic_credentials(headers) else {
        return Err(challenge());
    };
    match shared.auth.login(peer, Some(&user), &password).await {
        Ok(login) => {
            let tenant = shared.tenants.get(&login.tenant).cloned();
            Ok(Scope {
                tenants: tenant.into_iter().collect(),
                server_wide: login.role == Role::Admin,
                role: login.role,
            })
        }
        Err(Refused::Throttled(s)) => Err((
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, s.to_string())],
            format!("{}\n", Refused::Throttled(s).message()),
        )
            .into_response()),
        Err(_) => Err(challenge()),
    }
}

/// `Authorization: Basic base64(user:password)`.
fn basic_credentials(headers: &HeaderMap) -> Option<(Vec<u8>, Vec<u8>)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = Base64::decode_vec(token.trim()).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_read_and_anything_else_is_not() {
        let mut h = HeaderMap::new();
        assert_eq!(basic_credentials(&h), None);
        h.insert(
            header::AUTHORIZATION,
            "Basic YWxpY2U6cHc6eA==".parse().unwrap(),
        );
        assert_eq!(
            basic_credentials(&h),
            Some((b"alice".to_vec(), b"pw:x".to_vec())),
            "the password may hold colons"
        );
        h.insert(
            header::AUTHORIZATION,
            "Bearer YWxpY2U6cHc=".parse().unwrap(),
        );
        assert_eq!(basic_credentials(&h), None);
        h.insert(header::AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert_eq!(basic_credentials(&h), None);
    }
}
