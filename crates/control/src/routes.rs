//! Publishing VIPs for a routing daemon (`[routes]`): the VIPs this director wants traffic
//! for are put on a kernel interface as /32 (/128) addresses; BIRD's `direct` protocol (or
//! FRR's connected routes) sees them there and announces them to the routers. rvs speaks no
//! BGP: the kernel is the coupling.
//!
//! A VIP is wanted while some service of it has a live real server (health checks set dead
//! ones to weight 0) and the operator has not drained the director (`rvsadm --drain`). Every
//! 200 ms the exporter compares that with what it put on the interface and adds or removes the
//! difference. It removes only VIPs: the interface's other addresses (a twin's port address)
//! are never touched. On a clean stop it withdraws everything, then rvsd keeps forwarding for
//! `linger` so the routers move the flows first; on a crash the twin vanishes with rvsd and
//! the routes with it (with a dummy interface they would stay: use the twin).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rvs_api::ha::RoutesConfig;
use rvs_twin::Netlink;

use crate::control::ControlState;

const TICK: Duration = Duration::from_millis(200);

pub struct Routes {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
    linger: Duration,
}

fn host_len(a: IpAddr) -> u8 {
    if a.is_ipv4() {
        32
    } else {
        128
    }
}

/// Brings the interface's VIP addresses to `wanted`; returns what is there afterwards.
fn apply(
    nl: &mut Netlink,
    index: u32,
    vips: &BTreeSet<IpAddr>,
    wanted: &BTreeSet<IpAddr>,
) -> BTreeSet<IpAddr> {
    let have: BTreeSet<IpAddr> = match nl.addresses() {
        Ok(a) => a
            .into_iter()
            .filter(|h| h.index == index && h.prefix_len == host_len(h.addr) && vips.contains(&h.addr))
            .map(|h| h.addr)
            .collect(),
        Err(e) => {
            eprintln!("rvsd: routes: listing addresses: {e}");
            return BTreeSet::new();
        }
    };
    let mut now = have.clone();
    for &a in wanted.difference(&have) {
        match nl.add_address(index, a, host_len(a)) {
            Ok(()) => {
                eprintln!("rvsd: routes: {a} announced");
                now.insert(a);
            }
            Err(e) => eprintln!("rvsd: routes: adding {a}: {e}"),
        }
    }
    for &a in have.difference(wanted) {
        match nl.del_address(index, a, host_len(a)) {
            Ok(()) => {
                eprintln!("rvsd: routes: {a} withdrawn");
                now.remove(&a);
            }
            Err(e) => eprintln!("rvsd: routes: removing {a}: {e}"),
        }
    }
    now
}

fn lock(s: &Mutex<ControlState>) -> std::sync::MutexGuard<'_, ControlState> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

impl Routes {
    pub fn start(cfg: &RoutesConfig, state: Arc<Mutex<ControlState>>) -> anyhow::Result<Routes> {
        let mut nl = Netlink::new().map_err(|e| anyhow::anyhow!("[routes]: netlink: {e}"))?;
        let index = nl.link_index(&cfg.interface).map_err(|e| {
            anyhow::anyhow!(
                "[routes] interface = {:?}: {e} (a port's host_interface, or an interface of rvsd's namespace)",
                cfg.interface
            )
        })?;
        lock(&state).set_routes_interface(&cfg.interface);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let handle = std::thread::Builder::new()
            .name("rvs-routes".into())
            .spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    let (wanted, vips) = {
                        let st = lock(&state);
                        let (wanted, withdrawn) = st.route_plan();
                        let vips: BTreeSet<IpAddr> = wanted
                            .iter()
                            .copied()
                            .chain(withdrawn.iter().map(|w| w.0))
                            .collect();
                        (wanted, vips)
                    };
                    let now = apply(&mut nl, index, &vips, &wanted);
                    lock(&state).set_announced(now);
                    std::thread::sleep(TICK);
                }
                // Withdraw everything this director announced (any VIP on the interface).
                let vips: BTreeSet<IpAddr> = {
                    let st = lock(&state);
                    let (w, d) = st.route_plan();
                    w.into_iter().chain(d.into_iter().map(|x| x.0)).collect()
                };
                let now = apply(&mut nl, index, &vips, &BTreeSet::new());
                lock(&state).set_announced(now);
            })?;
        Ok(Routes {
            stop,
            handle,
            linger: cfg.linger,
        })
    }

    /// Withdraws every VIP, then waits `linger` while the workers still forward.
    pub fn withdraw_and_linger(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.handle.join();
        eprintln!("rvsd: routes: withdrawn; forwarding {:?} more", self.linger);
        std::thread::sleep(self.linger);
    }
}
