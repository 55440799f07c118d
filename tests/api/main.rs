//! The integration suite: one binary, a module per endpoint or concern.

mod helpers;
mod smoke;
