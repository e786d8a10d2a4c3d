//! A looped replay as an rvsd config, for the opt-in measurements (soak, checked servers).

#![allow(dead_code)]

use std::path::Path;

/// The bench's 1,000 established NAT flows.
pub fn established_1k() -> Vec<Vec<u8>> {
    let w = rvs_traffic::workload::workloads(true)
        .into_iter()
        .find(|w| w.name == "established-1k")
        .expect("the smoke set has established-1k");
    rvs_traffic::workload::frames(&w)
}

/// `pcap` looped on port `outside` (net_pcap infinite_rx) into a `net_null` sink, NAT wrr
/// over three servers, one worker on CPU 1. `tag` keeps the device names unique; more ports,
/// tables and services may follow.
pub fn looped_replay(tag: &str, socket: &str, pcap: &Path) -> String {
    format!(
        r#"
[dataplane]
workers = [1]
[eal]
memory = "no-huge"
[control]
socket = "{socket}"
[[port]]
name = "outside"
device = "net_pcap_{tag}o,rx_pcap={pcap},infinite_rx=1"
mac = "02:00:00:00:00:a0"
addresses = ["203.0.113.1/24"]
gateway = "203.0.113.254"
neighbors = [{{ ip = "203.0.113.254", mac = "02:00:00:00:00:01" }}]
[[port]]
name = "inside"
device = "net_null_{tag}i,no-rx=1"
mac = "02:00:00:00:00:b0"
addresses = ["192.168.1.1/24"]
neighbors = [{{ ip = "192.168.1.2", mac = "02:11:c0:a8:01:02" }}, {{ ip = "192.168.1.3", mac = "02:11:c0:a8:01:03" }}, {{ ip = "192.168.1.4", mac = "02:11:c0:a8:01:04" }}]
[[service]]
address = "10.0.0.100:80"
scheduler = "wrr"
real = [
    {{ address = "192.168.1.2:8080", method = "nat", weight = 2 }},
    {{ address = "192.168.1.3:8080", method = "nat", weight = 1 }},
    {{ address = "192.168.1.4:8080", method = "nat", weight = 1 }},
]
"#,
        pcap = pcap.display()
    )
}
