//! rvsd's control plane: the service tables as the operator edits them, published to the
//! workers RCU-style, and the Unix socket that takes the edits.

mod estimator;
pub mod metrics;
mod server;
mod state;
mod view;

pub use server::{serve, ServerHandle};
pub use state::{ControlState, RealKey};
pub use view::service_view;
