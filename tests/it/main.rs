//! Integration tests: each starts the real `appliance` binary on 127.0.0.1:0 against a
//! temporary database and talks HTTP to it, or runs the CLI as a user would.

mod support;

mod api;
mod caddy;
mod cli;
mod client;
mod docs;
mod firstrun;
mod limits;
mod nginx;
mod oauth;
mod openapi;
mod ops;
mod replicas;
mod security;
mod signed;
mod skips;
mod users;
mod web;
mod wording;
