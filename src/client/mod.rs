//! The client side: credentials store, failover HTTP client, error advice, the renewal
//! agent, and a `Validator` for Rust services.

pub mod advice;
pub mod agent;
pub mod commands;
pub mod credentials;
pub mod http;
pub mod validator;

pub use validator::{Cache, Identity, MemoryCache, ValidateError, Validator};

#[cfg(test)]
mod fake_server;
