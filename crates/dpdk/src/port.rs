//! Ethernet ports: probe from a device string, configure queues/RSS/MTU, start, stats, and the
//! per-queue handles that workers own.

use std::ffi::CString;
use std::sync::{Arc, Mutex};

use dpdk_sys as sys;

use crate::burst::Burst;
use crate::eal::Eal;
use crate::error::{Error, Result};
use crate::mempool::Mempool;

/// RSS hash-field bits (`RTE_ETH_RSS_*`: bindgen cannot expand their `RTE_BIT64` macros).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RssHash(pub u64);

impl RssHash {
    pub const IPV4: RssHash = RssHash(1 << 2);
    pub const FRAG_IPV4: RssHash = RssHash(1 << 3);
    pub const NONFRAG_IPV4_TCP: RssHash = RssHash(1 << 4);
    pub const NONFRAG_IPV4_UDP: RssHash = RssHash(1 << 5);
    pub const NONFRAG_IPV4_SCTP: RssHash = RssHash(1 << 6);
    pub const NONFRAG_IPV4_OTHER: RssHash = RssHash(1 << 7);
    pub const IPV6: RssHash = RssHash(1 << 8);
    pub const FRAG_IPV6: RssHash = RssHash(1 << 9);
    pub const NONFRAG_IPV6_TCP: RssHash = RssHash(1 << 10);
    pub const NONFRAG_IPV6_UDP: RssHash = RssHash(1 << 11);
    pub const NONFRAG_IPV6_SCTP: RssHash = RssHash(1 << 12);
    pub const NONFRAG_IPV6_OTHER: RssHash = RssHash(1 << 13);
    /// Modifiers: hash only the source (or destination) half of the L3/L4 fields. NAT steering
    /// uses source-only on the client side and destination-only on the server side.
    pub const L4_DST_ONLY: RssHash = RssHash(1 << 60);
    pub const L4_SRC_ONLY: RssHash = RssHash(1 << 61);
    pub const L3_DST_ONLY: RssHash = RssHash(1 << 62);
    pub const L3_SRC_ONLY: RssHash = RssHash(1 << 63);

    /// IPv4/IPv6 addresses and TCP/UDP/SCTP ports: what an L4 balancer wants spread.
    pub const L3_L4: RssHash = RssHash(
        Self::IPV4.0
            | Self::FRAG_IPV4.0
            | Self::NONFRAG_IPV4_TCP.0
            | Self::NONFRAG_IPV4_UDP.0
            | Self::NONFRAG_IPV4_SCTP.0
            | Self::NONFRAG_IPV4_OTHER.0
            | Self::IPV6.0
            | Self::FRAG_IPV6.0
            | Self::NONFRAG_IPV6_TCP.0
            | Self::NONFRAG_IPV6_UDP.0
            | Self::NONFRAG_IPV6_SCTP.0
            | Self::NONFRAG_IPV6_OTHER.0,
    );

    pub const fn union(self, other: RssHash) -> RssHash {
        RssHash(self.0 | other.0)
    }
}

/// How to set up a port.
#[derive(Debug, Clone)]
pub struct PortConfig {
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rx_desc: u16,
    pub tx_desc: u16,
    /// Hash fields to request when there is more than one rx queue; masked by what the device
    /// supports ([`Port::rss`] tells what was kept).
    pub rss: RssHash,
    /// None keeps the device's default (1500 for most).
    pub mtu: Option<u16>,
    pub promiscuous: bool,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            rss: RssHash::L3_L4,
            mtu: None,
            promiscuous: true,
        }
    }
}

/// Port counters, as the device reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    /// Packets the NIC dropped because rx queues were full (the workers fell behind).
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    /// Receives that failed for lack of mbufs (the pool is too small or mbufs leak).
    pub rx_nombuf: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub up: bool,
    pub speed_mbps: u32,
    pub full_duplex: bool,
}

/// A configured Ethernet port. Clones of the port and its queues share it; the port is stopped,
/// closed and its device removed when the last of them is dropped.
#[derive(Debug, Clone)]
pub struct Port {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    id: u16,
    name: String,
    device: *mut sys::rte_device,
    rss: RssHash,
    rx_queues: u16,
    tx_queues: u16,
    started: Mutex<bool>,
    queues_taken: Mutex<bool>,
    // Keeps the rx pool alive as long as the port can fill mbufs from it.
    _pool: Mempool,
}

// SAFETY: the raw device pointer is only passed back to DPDK at close; ethdev control calls on
// one port are serialised through the `started` mutex, and data-path calls go through queue
// handles that are each owned by one thread.
unsafe impl Send for Inner {}
// SAFETY: see Send.
unsafe impl Sync for Inner {}

impl Port {
    /// Probes the device named by `devargs` (a vdev string such as
    /// `net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap`, or a PCI address with options) and
    /// configures it with `cfg`, filling rx queues from `pool`. The port is not started.
    pub fn open(_eal: &Eal, devargs: &str, cfg: &PortConfig, pool: &Mempool) -> Result<Port> {
        let name = devargs.split(',').next().unwrap_or("").trim().to_string();
        if name.is_empty() {
            return Err(Error::Invalid {
                what: "device string",
                why: format!("{devargs:?} has no device name"),
            });
        }
        if cfg.rx_queues == 0 || cfg.tx_queues == 0 {
            return Err(Error::Invalid {
                what: "port queues",
                why: "a port needs at least one rx and one tx queue".into(),
            });
        }
        let cdevargs = CString::new(devargs).map_err(|_| Error::Invalid {
            what: "device string",
            why: "contains a NUL byte".into(),
        })?;
        let cname = CString::new(name.as_str()).expect("checked above");
        // SAFETY: EAL is up; devargs is a valid C string. -EEXIST means the device was already
        // probed (a PCI device found at EAL init), which is fine: look its port up.
        let ret = unsafe { sys::rte_dev_probe(cdevargs.as_ptr()) };
        if ret < 0 && ret != -libc::EEXIST {
            return Err(Error::dpdk("rte_dev_probe", ret));
        }
        let mut id = 0u16;
        // SAFETY: cname is a valid C string; id is a valid out pointer.
        let ret = unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        if ret < 0 {
            return Err(Error::Invalid {
                what: "device string",
                why: format!("{name:?} was probed but is not an Ethernet port"),
            });
        }
        configure(id, name, cfg, pool)
    }

    pub fn id(&self) -> u16 {
        self.inner.id
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The RSS hash fields in force (empty with one rx queue or a device without RSS).
    pub fn rss(&self) -> RssHash {
        self.inner.rss
    }

    pub fn start(&self) -> Result<()> {
        let mut started = self.inner.started.lock().unwrap_or_else(|p| p.into_inner());
        if !*started {
            // SAFETY: the port is configured with its queues set up.
            Error::check("rte_eth_dev_start", unsafe {
                sys::rte_eth_dev_start(self.inner.id)
            })?;
            *started = true;
        }
        Ok(())
    }

    /// Stops the port; tx queues are drained by the driver (a pcap vdev flushes its file).
    /// Workers must have stopped using the queues first.
    pub fn stop(&self) -> Result<()> {
        let mut started = self.inner.started.lock().unwrap_or_else(|p| p.into_inner());
        if *started {
            // SAFETY: the port is started and valid.
            Error::check("rte_eth_dev_stop", unsafe {
                sys::rte_eth_dev_stop(self.inner.id)
            })?;
            *started = false;
        }
        Ok(())
    }

    /// Hands out the rx and tx queue handles, once: each is meant to be owned by one worker.
    pub fn take_queues(&self) -> Result<(Vec<RxQueue>, Vec<TxQueue>)> {
        let mut taken = self.inner.queues_taken.lock().unwrap_or_else(|p| p.into_inner());
        if *taken {
            return Err(Error::QueuesTaken { port: self.inner.id });
        }
        *taken = true;
        let rx = (0..self.inner.rx_queues)
            .map(|q| RxQueue {
                port: self.clone(),
                queue: q,
            })
            .collect();
        let tx = (0..self.inner.tx_queues)
            .map(|q| TxQueue {
                port: self.clone(),
                queue: q,
            })
            .collect();
        Ok((rx, tx))
    }

    pub fn mac(&self) -> Result<[u8; 6]> {
        let mut addr = sys::rte_ether_addr::default();
        // SAFETY: the port is valid; addr is a valid out pointer.
        Error::check("rte_eth_macaddr_get", unsafe {
            sys::rte_eth_macaddr_get(self.inner.id, &mut addr)
        })?;
        Ok(addr.addr_bytes)
    }

    /// Sets the port's MAC address (a vdev such as net_pcap makes one up).
    pub fn set_mac(&self, mac: [u8; 6]) -> Result<()> {
        let mut addr = sys::rte_ether_addr { addr_bytes: mac };
        // SAFETY: the port is valid; addr is a valid, initialised address.
        Error::check("rte_eth_dev_default_mac_addr_set", unsafe {
            sys::rte_eth_dev_default_mac_addr_set(self.inner.id, &mut addr)
        })
        .map(|_| ())
    }

    pub fn mtu(&self) -> Result<u16> {
        let mut mtu = 0u16;
        // SAFETY: the port is valid; mtu is a valid out pointer.
        Error::check("rte_eth_dev_get_mtu", unsafe {
            sys::rte_eth_dev_get_mtu(self.inner.id, &mut mtu)
        })?;
        Ok(mtu)
    }

    pub fn link(&self) -> Result<Link> {
        let mut link = sys::rte_eth_link::default();
        // SAFETY: the port is valid; link is a valid out pointer; nowait never blocks.
        Error::check("rte_eth_link_get_nowait", unsafe {
            sys::rte_eth_link_get_nowait(self.inner.id, &mut link)
        })?;
        Ok(Link {
            up: link.link_status() != 0,
            speed_mbps: link.link_speed,
            full_duplex: link.link_duplex() != 0,
        })
    }

    pub fn stats(&self) -> Result<PortStats> {
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: the port is valid; s is a valid out pointer.
        Error::check("rte_eth_stats_get", unsafe {
            sys::rte_eth_stats_get(self.inner.id, &mut s)
        })?;
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    pub fn reset_stats(&self) -> Result<()> {
        // SAFETY: the port is valid.
        Error::check("rte_eth_stats_reset", unsafe {
            sys::rte_eth_stats_reset(self.inner.id)
        })
        .map(|_| ())
    }
}

fn configure(id: u16, name: String, cfg: &PortConfig, pool: &Mempool) -> Result<Port> {
    let mut info = sys::rte_eth_dev_info::default();
    // SAFETY: id is a valid port; info is a valid out pointer.
    Error::check("rte_eth_dev_info_get", unsafe {
        sys::rte_eth_dev_info_get(id, &mut info)
    })?;
    if cfg.rx_queues > info.max_rx_queues || cfg.tx_queues > info.max_tx_queues {
        return Err(Error::Invalid {
            what: "port queues",
            why: format!(
                "{name} supports at most {} rx and {} tx queues, {} and {} were asked for",
                info.max_rx_queues, info.max_tx_queues, cfg.rx_queues, cfg.tx_queues
            ),
        });
    }
    let mut conf = sys::rte_eth_conf::default();
    let rss = if cfg.rx_queues > 1 {
        RssHash(cfg.rss.0 & info.flow_type_rss_offloads)
    } else {
        RssHash(0)
    };
    if rss.0 != 0 {
        conf.rxmode.mq_mode = sys::RTE_ETH_MQ_RX_RSS;
        // SAFETY: writing the rss_conf member of a plain-data union.
        conf.rx_adv_conf.rss_conf.rss_hf = rss.0;
    }
    // The NIC's checksum checks where it has them: the path then skips its own (a frame the
    // NIC calls bad is still dropped, counted by reason).
    // SAFETY: a pure function of its argument.
    conf.rxmode.offloads |= unsafe { sys::rvs_rx_csum_offloads(info.rx_offload_capa) };
    if let Some(mtu) = cfg.mtu {
        if mtu < info.min_mtu || mtu > info.max_mtu {
            return Err(Error::Invalid {
                what: "port MTU",
                why: format!(
                    "{mtu} is outside {name}'s range {}..={}",
                    info.min_mtu, info.max_mtu
                ),
            });
        }
        conf.rxmode.mtu = mtu as u32;
    }
    // SAFETY: id is valid and stopped; conf is fully initialised.
    Error::check("rte_eth_dev_configure", unsafe {
        sys::rte_eth_dev_configure(id, cfg.rx_queues, cfg.tx_queues, &conf)
    })?;
    let (mut rxd, mut txd) = (cfg.rx_desc, cfg.tx_desc);
    // SAFETY: id is valid; rxd/txd are valid in-out pointers.
    Error::check("rte_eth_dev_adjust_nb_rx_tx_desc", unsafe {
        sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut rxd, &mut txd)
    })?;
    // SAFETY: id is valid.
    let socket = unsafe { sys::rte_eth_dev_socket_id(id) };
    let socket = if socket < 0 { 0 } else { socket as u32 };
    for q in 0..cfg.rx_queues {
        // SAFETY: id is configured for rx_queues queues; a null rx_conf means the driver's
        // defaults; the pool outlives the port (Inner holds a clone).
        Error::check("rte_eth_rx_queue_setup", unsafe {
            sys::rte_eth_rx_queue_setup(id, q, rxd, socket, std::ptr::null(), pool.as_ptr())
        })?;
    }
    for q in 0..cfg.tx_queues {
        // SAFETY: id is configured for tx_queues queues; null tx_conf means defaults.
        Error::check("rte_eth_tx_queue_setup", unsafe {
            sys::rte_eth_tx_queue_setup(id, q, txd, socket, std::ptr::null())
        })?;
    }
    if cfg.promiscuous {
        // SAFETY: id is valid. Some vdevs do not support promiscuous mode: that is not an error
        // for them (they deliver every frame anyway).
        unsafe { sys::rte_eth_promiscuous_enable(id) };
    }
    Ok(Port {
        inner: Arc::new(Inner {
            id,
            name,
            device: info.device,
            rss,
            rx_queues: cfg.rx_queues,
            tx_queues: cfg.tx_queues,
            started: Mutex::new(false),
            queues_taken: Mutex::new(false),
            _pool: pool.clone(),
        }),
    })
}

impl Drop for Inner {
    fn drop(&mut self) {
        // SAFETY: this is the last handle to the port, so no queue is in use. Stop, close and
        // remove the device so its name can be probed again; failures here have no one to be
        // reported to and leave the device as DPDK keeps it.
        unsafe {
            if *self.started.get_mut().unwrap_or_else(|p| p.into_inner()) {
                sys::rte_eth_dev_stop(self.id);
            }
            sys::rte_eth_dev_close(self.id);
            if !self.device.is_null() {
                sys::rte_dev_remove(self.device);
            }
        }
    }
}

/// Receive side of one queue of a port. Owned by one worker.
#[derive(Debug)]
pub struct RxQueue {
    port: Port,
    queue: u16,
}

/// Transmit side of one queue of a port. Owned by one worker.
#[derive(Debug)]
pub struct TxQueue {
    port: Port,
    queue: u16,
}

impl RxQueue {
    pub fn port_id(&self) -> u16 {
        self.port.inner.id
    }

    pub fn queue_id(&self) -> u16 {
        self.queue
    }

    /// Receives into the burst's free slots; returns how many arrived.
    #[inline]
    pub fn rx_burst(&mut self, burst: &mut Burst) -> usize {
        let room = burst.room() as u16;
        if room == 0 {
            return 0;
        }
        // SAFETY: this handle is the only user of (port, queue) (queues are handed out once and
        // are not Clone/Sync); the destination has `room` free slots.
        unsafe {
            let dst = burst.raw_slots().add(burst.len());
            let n = sys::rvs_rx_burst(self.port.inner.id, self.queue, dst, room) as usize;
            burst.filled(n);
            n
        }
    }
}

impl TxQueue {
    pub fn port_id(&self) -> u16 {
        self.port.inner.id
    }

    pub fn queue_id(&self) -> u16 {
        self.queue
    }

    /// Transmits the burst's mbufs; returns how many the device took. The rest stay in the
    /// burst, in order, for the caller to retry or drop (and count).
    #[inline]
    pub fn tx_burst(&mut self, burst: &mut Burst) -> usize {
        if burst.is_empty() {
            return 0;
        }
        // SAFETY: this handle is the only user of (port, queue); slots 0..len hold owned mbufs;
        // the PMD takes ownership of the first n it reports.
        unsafe {
            let n = sys::rvs_tx_burst(
                self.port.inner.id,
                self.queue,
                burst.raw_slots(),
                burst.len() as u16,
            ) as usize;
            burst.consumed(n);
            n
        }
    }
}
