//! rvsd's host path: the kernel twins of the data ports, the thread that moves frames between
//! them and the workers, and the thread that follows the twins' addresses.
//!
//! - At start, each `[[port]]` with `host_interface` gets a `net_tap` port named so, with the
//!   data port's MAC; rvsd sets its MTU, brings it up and gives it the port's addresses.
//! - The host thread ([`rvs_dataplane::host::run`]) polls the twins and the rings.
//! - The address thread waits for the kernel's address events; on one it reads the twins'
//!   addresses again and, if they changed, publishes tables with the new sets (so a
//!   `follow-host` VIP is answered exactly while its twin holds it) and announces every VIP
//!   that became answered on a port (gratuitous ARP, unsolicited neighbor advertisement).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use dpdk::{Eal, Mempool, Port, PortConfig};
use rvs_api::config::{Config, PortConfig as PortCfg};
use rvs_core::Tables;
use rvs_dataplane::host::TwinQueues;
use rvs_dataplane::{neighbor, HostRings, Shared};
use rvs_twin::{AddressEvents, Netlink};

use crate::control::ControlState;

/// Mbufs a twin's queues hold (the tap PMD fills its rx ring up front).
pub const TWIN_MBUFS: usize = 512;

/// A data port's kernel twin.
pub struct Twin {
    /// The data port's position.
    pub port: u16,
    pub name: String,
    pub index: u32,
    pub dev: Port,
}

/// Opens the twins the config asks for, with the data ports' MACs and MTUs and addresses.
pub fn open_twins(eal: &Eal, cfg: &Config, macs: &[[u8; 6]], pool: &Mempool) -> Result<Vec<Twin>> {
    let wanted: Vec<(usize, &PortCfg, &String)> = cfg
        .ports
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.host_interface.as_ref().map(|n| (i, p, n)))
        .collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        bail!(
            "port {:?}: host_interface {:?} needs /dev/net/tun (load the tun module: modprobe tun), or remove host_interface",
            wanted[0].1.name,
            wanted[0].2
        );
    }
    let mut nl = Netlink::new().context("opening an rtnetlink socket for the twin interfaces")?;
    let mut twins = Vec::new();
    for (i, p, name) in wanted {
        let field = format!("port[{i}].host_interface");
        if let Some(why) = rvs_api::config::interface_name_problem(name) {
            bail!("{field}: {name:?} {why}");
        }
        let m = macs[i];
        let mac = format!(
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        );
        let dev = format!("net_tap_rvs{}_{i},iface={name},mac={mac}", std::process::id());
        let pc = PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 256,
            tx_desc: 256,
            ..Default::default()
        };
        let port = Port::open(eal, &dev, &pc, pool)
            .with_context(|| format!("{field}: creating the twin {name:?}"))?;
        port.start()
            .with_context(|| format!("{field}: starting the twin {name:?}"))?;
        let index = nl
            .link_index(name)
            .with_context(|| format!("{field}: the twin {name:?}"))?;
        nl.set_up(index, p.mtu)
            .with_context(|| format!("{field}: the twin {name:?}"))?;
        let addrs =
            p.v4.iter()
                .map(|&(a, l)| (IpAddr::V4(a), l))
                .chain(p.v6.iter().map(|&(a, l)| (IpAddr::V6(a), l)));
        for (a, l) in addrs {
            nl.add_address(index, a, l)
                .with_context(|| format!("{field}: the twin {name:?}"))?;
        }
        twins.push(Twin {
            port: i as u16,
            name: name.clone(),
            index,
            dev: port,
        });
    }
    Ok(twins)
}

/// The addresses each data port's twin holds now (empty for ports without one); tentative
/// IPv6 addresses are not held yet.
pub fn held(nl: &mut Netlink, twins: &[Twin], ports: usize) -> Result<Vec<Vec<IpAddr>>> {
    let all = nl.addresses()?;
    let mut out = vec![Vec::new(); ports];
    for t in twins {
        out[t.port as usize] = usable(&all, t.index);
    }
    Ok(out)
}

/// The addresses interface `index` holds and may use (sorted, without tentative ones).
fn usable(all: &[rvs_twin::HeldAddress], index: u32) -> Vec<IpAddr> {
    let set: BTreeSet<IpAddr> = all
        .iter()
        .filter(|a| a.index == index && !a.tentative)
        .map(|a| a.addr)
        .collect();
    set.into_iter().collect()
}

/// The running host path: its two threads.
pub struct HostPath {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl HostPath {
    /// Starts the host thread on the twins' queues and the address thread.
    pub fn start(
        twins: &[Twin],
        queues: Vec<TwinQueues>,
        shared: Arc<Shared>,
        state: Arc<Mutex<ControlState>>,
        pool: Mempool,
    ) -> Result<HostPath> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        {
            let (stop, shared) = (stop.clone(), shared.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("rvs-host".into())
                    .spawn(move || {
                        if let Some(rings) = &shared.host {
                            rvs_dataplane::host::run(rings, queues, &stop);
                        }
                    })?,
            );
        }
        let mut events = AddressEvents::new(Duration::from_millis(200))
            .context("subscribing to the kernel's address events")?;
        let mut nl = Netlink::new()?;
        let twins: Vec<(u16, u32)> = twins.iter().map(|t| (t.port, t.index)).collect();
        {
            let stop = stop.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("rvs-addresses".into())
                    .spawn(move || follow(&mut events, &mut nl, &twins, &shared, &state, &pool, &stop))?,
            );
        }
        Ok(HostPath { stop, threads })
    }

    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// The address thread: on every address event, the twins' addresses read again and, when they
/// changed, published and announced.
fn follow(
    events: &mut AddressEvents,
    nl: &mut Netlink,
    twins: &[(u16, u32)],
    shared: &Shared,
    state: &Mutex<ControlState>,
    pool: &Mempool,
    stop: &AtomicBool,
) {
    let mut failing = false;
    // Read once at start too: addresses may have come (an IPv6 link-local) or moved since
    // set-up.
    let mut first = true;
    while !stop.load(Ordering::Relaxed) {
        let changed = match events.wait() {
            Ok(c) => c,
            Err(e) => {
                if !failing {
                    eprintln!("rvsd: host path: waiting for address events: {e}");
                }
                failing = true;
                std::thread::sleep(Duration::from_millis(200));
                true
            }
        };
        if !changed && !std::mem::take(&mut first) {
            continue;
        }
        let all = match nl.addresses() {
            Ok(a) => a,
            Err(e) => {
                eprintln!("rvsd: host path: reading the twins' addresses: {e}");
                continue;
            }
        };
        failing = false;
        let before = answered(&shared.tables.load());
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        for &(port, index) in twins {
            st.set_host_addresses(port, usable(&all, index));
        }
        st.publish_if_changed();
        drop(st);
        let tables = shared.tables.load();
        for (port, vip) in answered(&tables).difference(&before) {
            announce(shared, &tables, pool, *port, *vip);
        }
    }
}

/// Every (port, VIP) answered now.
fn answered(t: &Tables) -> BTreeSet<(u16, IpAddr)> {
    (0..t.net.ports.len() as u16)
        .flat_map(|p| t.vips_on(p).map(move |a| (p, a)))
        .collect()
}

/// A gratuitous ARP (IPv4) or unsolicited neighbor advertisement (IPv6) for `vip` out of
/// `port`, sent by the worker that transmits for the port's twin.
fn announce(shared: &Shared, t: &Tables, pool: &Mempool, port: u16, vip: IpAddr) {
    let (Some(rings), Some(p)) = (&shared.host, t.net.port(port)) else {
        return;
    };
    let frame = neighbor::announcement(p.mac, vip);
    let Some(mut m) = pool.alloc() else { return };
    if let Ok(buf) = m.append(frame.len()) {
        buf.copy_from_slice(&frame);
        rings.send_down(port, m);
    }
}

/// The rings for `cfg`'s twins, if it has any.
pub fn rings(cfg: &Config) -> Option<HostRings> {
    let twins: Vec<bool> = cfg.ports.iter().map(|p| p.host_interface.is_some()).collect();
    twins
        .iter()
        .any(|&t| t)
        .then(|| HostRings::new(cfg.workers.len(), twins, cfg.host_path.rate, cfg.host_path.burst))
}
