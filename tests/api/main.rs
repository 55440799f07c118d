//! The integration suite: one binary, a module per endpoint or concern.

mod admin_sql;
mod authorize;
mod browser;
mod cli;
mod concurrency;
mod deployment;
mod hardening;
mod helpers;
mod instances;
mod keys;
mod logging;
mod outage;
mod process;
mod registration;
mod settings;
mod smoke;
mod soak;
mod tenancy;
mod token;
