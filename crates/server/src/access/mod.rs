//! Who may come in and what they may do: connection limits (admission),
//! per-listener address allowlists, users and roles (auth), and TLS.

pub(crate) mod admission;
pub(crate) mod allowlist;
pub(crate) mod auth;
pub(crate) mod tls;
