//! rvsd's control plane, which needs no DPDK of its own: the service tables as operators edit
//! them (published to the workers RCU-style), the control socket, health checks, the IPVS
//! sync daemons, the peer link of an HA pair, the routes published for ECMP, and `/metrics`.
//! [`ControlPlane`] starts their threads around one [`control::ControlState`] and stops them
//! in order.

pub mod control;
pub mod health;
pub mod peer;
pub mod routes;
pub mod sync;

use std::sync::{Arc, Mutex};

use anyhow::Result;
use rvs_api::config::Config;

use control::ControlState;

/// The control plane's threads around one state, in the order they stop.
pub struct ControlPlane {
    pub state: Arc<Mutex<ControlState>>,
    routes: Option<routes::Routes>,
    health: health::Health,
    peer: Option<peer::Peer>,
    metrics: Option<control::metrics::MetricsServer>,
    server: control::ServerHandle,
}

impl ControlPlane {
    /// Starts, over `state`, the sync daemons of the configuration, the peer link, the health
    /// checker, the routes, the metrics endpoint and, last, the control socket.
    pub fn start(cfg: &Config, state: Arc<Mutex<ControlState>>) -> Result<ControlPlane> {
        let locked = || state.lock().unwrap_or_else(|p| p.into_inner());
        locked()
            .start_sync(&cfg.sync_daemons)
            .map_err(|m| anyhow::anyhow!("[[sync_daemon]]: {m}"))?;
        let peer = match &cfg.peer {
            Some(p) => {
                let counters = Arc::new(peer::PeerCounters::default());
                locked().set_peer_counters(counters.clone());
                Some(peer::Peer::start(p.clone(), state.clone(), counters)?)
            }
            None => None,
        };
        let health = health::Health::start(state.clone())?;
        let routes = match &cfg.routes {
            Some(r) => Some(routes::Routes::start(r, state.clone())?),
            None => None,
        };
        let metrics = match cfg.metrics_listen {
            Some(addr) => Some(control::metrics::serve(addr, state.clone())?),
            None => None,
        };
        let server = control::serve(&cfg.socket, state.clone(), &cfg.control)?;
        Ok(ControlPlane {
            state,
            routes,
            health,
            peer,
            metrics,
            server,
        })
    }

    /// Stops the threads: the routes first (withdrawn, then a linger while the routers move
    /// the flows away, everything still forwarding), then health checks, the peer link, the
    /// sync daemons, metrics and the socket. The state is returned for the last figures.
    pub fn stop(self) -> Arc<Mutex<ControlState>> {
        if let Some(r) = self.routes {
            r.withdraw_and_linger();
        }
        self.health.stop();
        if let Some(p) = self.peer {
            p.stop();
        }
        self.state.lock().unwrap_or_else(|p| p.into_inner()).stop_sync();
        if let Some(m) = self.metrics {
            m.stop();
        }
        self.server.stop();
        self.state
    }
}
