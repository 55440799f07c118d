//! The integration suite: one binary, a module per endpoint or concern.

mod admin_sql;
mod browser;
mod cli;
mod concurrency;
mod deployment;
mod helpers;
mod instances;
mod logging;
mod outage;
mod process;
mod settings;
mod smoke;
