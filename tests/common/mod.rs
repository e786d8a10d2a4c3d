//! Helpers shared by the integration tests.

pub mod ha;
pub mod netns;
pub mod replay;
