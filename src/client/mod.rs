//! The client side: credentials store, failover HTTP client, error advice, the renewal
//! agent, and a `Validator` for Rust services.

pub mod commands;
