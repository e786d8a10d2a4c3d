//! The one way a service becomes a [`ServiceView`] (the control socket's listing and rvsd's
//! final report both use it).

use std::sync::atomic::Ordering;

use rvs_api::proto::{RealView, ServiceView, Stats};
use rvs_core::model::{Announce, RealId, RealRegistry, Service, ServiceKey};

/// `stats` gives each real server's counters (and rates, where known); the service's are the
/// sums of its servers'.
pub fn service_view(s: &Service, reg: &RealRegistry, stats: impl Fn(RealId) -> Stats) -> ServiceView {
    let reals: Vec<RealView> = s
        .reals
        .iter()
        .map(|r| {
            let shared = reg.get(r.id);
            RealView {
                address: r.addr.to_string(),
                port: r.port,
                method: r.forward.name().into(),
                weight: r.weight,
                upper: r.upper,
                lower: r.lower,
                active: shared.active(),
                inactive: shared.inactive(),
                persistent: shared.persistent.load(Ordering::Relaxed),
                stats: stats(r.id),
            }
        })
        .collect();
    let mut total = Stats::default();
    for r in &reals {
        let x = &r.stats;
        total.conns += x.conns;
        total.in_packets += x.in_packets;
        total.out_packets += x.out_packets;
        total.in_bytes += x.in_bytes;
        total.out_bytes += x.out_bytes;
        total.cps += x.cps;
        total.in_pps += x.in_pps;
        total.out_pps += x.out_pps;
        total.in_bps += x.in_bps;
        total.out_bps += x.out_bps;
    }
    let (protocol, fwmark) = match s.key {
        ServiceKey::Addr { protocol, .. } => (protocol.name().into(), None),
        ServiceKey::Fwmark { mark, .. } => (String::new(), Some(mark)),
    };
    ServiceView {
        protocol,
        address: s.key.family_addr().ip().to_string(),
        port: s.key.port(),
        fwmark,
        scheduler: s.scheduler.name().into(),
        flags: s.flags.names(s.scheduler.name()),
        persistence: s.persistence.map(|p| p.timeout_s),
        netmask: s.persistence.map(|p| p.prefix_len),
        announce: (s.announce != Announce::Always).then(|| s.announce.name().into()),
        sloppy: s.sloppy,
        one_packet: s.one_packet,
        local_addresses: s.fullnat.laddrs.iter().map(|a| a.to_string()).collect(),
        proxy_protocol: (s.fullnat.proxy != rvs_core::model::ProxyProtocol::Off)
            .then(|| s.fullnat.proxy.name().to_string()),
        toa: s.fullnat.toa,
        stats: total,
        reals,
    }
}
