//! rvs-api: what rvsd and its users agree on. Today that is the daemon's TOML configuration:
//! [`config::RawConfig`] is the file as serde reads it, [`config::Config`] the validated form
//! with typed addresses and IPVS values. Validation collects every problem, each naming its
//! field (`service[1].real[0].address: ...`), so an operator fixes a file in one pass.

pub mod check;
pub mod config;
pub mod fuzzing;
pub mod ha;
pub mod mark;
pub mod proto;

pub use config::{Config, ConfigError};
