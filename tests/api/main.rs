//! The integration suite: one binary, a module per endpoint or concern.

mod admin_sql;
mod browser;
mod cli;
mod helpers;
mod logging;
mod process;
mod settings;
mod smoke;
