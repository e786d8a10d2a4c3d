use super::*;

const GOOD: &str = r#"
[dataplane]
workers = [1]
conn_capacity = 4096

[eal]
memory = "no-huge"

[[port]]
name = "outside"
device = "net_pcap0,rx_pcap=/tmp/in.pcap,tx_pcap=/tmp/out.pcap"
addresses = ["203.0.113.1/24", "2001:db8:ff::1/64"]
gateway = "203.0.113.254"
mac = "02:00:00:00:00:a0"
neighbors = [{ ip = "203.0.113.254", mac = "02:00:00:00:00:01" }]

[[port]]
name = "inside"
device = "net_pcap1,rx_pcap=/tmp/in1.pcap,tx_pcap=/tmp/out1.pcap"
addresses = ["192.168.1.1/24"]

[timeouts]
tcp = 600
udp = 30

[[service]]
protocol = "tcp"
address = "10.0.0.100:80"
scheduler = "rr"
persistence = 300
netmask = "255.255.255.0"

[[service.real]]
address = "192.168.1.2:8080"
method = "nat"
weight = 3

[[service.real]]
address = "192.168.1.3"
method = "dr"
upper = 100
lower = 50

[[service]]
protocol = "udp"
address = "[2001:db8::100]:53"
scheduler = "mh"
flags = "mh-port"
"#;

#[test]
fn a_complete_config_validates() {
    let c = Config::from_toml(GOOD).unwrap();
    assert_eq!(c.workers, vec![1]);
    assert_eq!(c.conn_capacity, 4096);
    assert_eq!(c.memory, MemoryMode::NoHuge);
    assert_eq!(c.socket, PathBuf::from(DEFAULT_SOCKET));
    assert_eq!(c.ports.len(), 2);
    assert_eq!(c.ports[0].v4, vec![("203.0.113.1".parse().unwrap(), 24)]);
    assert_eq!(c.ports[0].mac, Some([2, 0, 0, 0, 0, 0xa0]));
    assert_eq!(c.ports[0].neighbors.len(), 1);
    assert_eq!(c.timeouts.shown(), (600, 120, 30));
    let s = &c.services[0];
    assert_eq!(
        s.persistence,
        Some(Persistence {
            timeout_s: 300,
            prefix_len: 24
        })
    );
    assert_eq!(
        s.reals[0],
        RealConfig {
            addr: "192.168.1.2".parse().unwrap(),
            port: 8080,
            forward: Forward::Nat,
            weight: 3,
            upper: 0,
            lower: 0,
            check: None,
            raw_check: None,
        }
    );
    assert_eq!(s.reals[1].port, 80, "a bare real address takes the virtual port");
    assert_eq!(s.reals[1].forward, Forward::Dr);
    assert_eq!(
        c.services[1].flags,
        SchedFlags {
            fallback: false,
            port: true
        }
    );
}

/// Each broken field gives its own error naming the field.
#[test]
fn each_invalid_field_names_itself() {
    let cases: &[(&str, &str, &str)] = &[
        ("workers = [1]", "workers = []", "dataplane.workers: needs at least one CPU"),
        ("workers = [1]", "workers = [1, 1]", "dataplane.workers[1]: CPU 1 is listed twice"),
        ("conn_capacity = 4096", "conn_capacity = 0", "dataplane.conn_capacity: 0 is outside"),
        ("memory = \"no-huge\"", "memory = \"lots\"", "eal.memory: \"lots\" is not one of"),
        ("name = \"inside\"", "name = \"outside\"", "port[1].name: \"outside\" is used by another port"),
        ("device = \"net_pcap1,rx_pcap=/tmp/in1.pcap,tx_pcap=/tmp/out1.pcap\"", "device = \"\"", "port[1].device: missing"),
        ("addresses = [\"192.168.1.1/24\"]", "addresses = [\"192.168.1.1\"]", "port[1].addresses[0]: \"192.168.1.1\" is not an address with prefix"),
        ("gateway = \"203.0.113.254\"", "gateway = \"10.9.9.9\"", "port[0].gateway: 10.9.9.9 is not in any of the port's subnets"),
        ("gateway = \"203.0.113.254\"", "gateway = \"nope\"", "port[0].gateway: \"nope\" is not an IPv4 address"),
        ("mac = \"02:00:00:00:00:a0\"", "mac = \"02:00:00\"", "port[0].mac: \"02:00:00\" is not a MAC address"),
        ("mac = \"02:00:00:00:00:01\" }", "mac = \"zz\" }", "port[0].neighbors[0].mac"),
        ("tcp = 600", "tcp = -5", "timeouts.tcp: -5 is not a number of seconds"),
        ("protocol = \"tcp\"", "protocol = \"icmp\"", "service[0].protocol: \"icmp\" is not one of tcp, udp, sctp"),
        ("address = \"10.0.0.100:80\"", "address = \"10.0.0.100\"", "service[0].address: \"10.0.0.100\" is not an IPv4/IPv6 socket address"),
        ("scheduler = \"rr\"", "scheduler = \"fastest\"", "service[0].scheduler: unknown scheduler \"fastest\" (valid: rr, wrr"),
        ("flags = \"mh-port\"", "flags = \"mh-bogus\"", "service[1].flags: unknown scheduler flag \"mh-bogus\""),
        ("persistence = 300", "persistence = 0", "service[0].persistence: 0 is not a timeout"),
        ("netmask = \"255.255.255.0\"", "netmask = \"255.0.255.0\"", "service[0].netmask: \"255.0.255.0\" is not a netmask"),
        ("address = \"192.168.1.2:8080\"", "address = \"192.168.1.2:99999\"", "service[0].real[0].address: \"192.168.1.2:99999\" is not an IPv4/IPv6 socket address"),
        ("address = \"192.168.1.2:8080\"", "address = \"2001:db8::5\"", "service[0].real[0].address: 2001:db8::5 is not of the virtual address's family"),
        ("method = \"nat\"", "method = \"teleport\"", "service[0].real[0].method: \"teleport\" is not one of nat, dr, tun"),
        ("method = \"nat\"", "method = \"dr\"", "service[0].real[0].address: port 8080 differs from the virtual port 80: DR and TUN cannot change the port"),
        ("weight = 3", "weight = 70000", "service[0].real[0].weight: 70000 is outside 0..=65535"),
        ("lower = 50", "lower = 500", "service[0].real[1].lower: 500 is above the upper threshold 100"),
        ("address = \"192.168.1.3\"", "address = \"192.168.1.2:8080\"", "service[0].real[1].address"),
        ("address = \"192.168.1.3\"", "address = \"172.16.0.9\"", "service[0].real[1].address: 172.16.0.9: direct routing needs the real server on a port's subnet"),
    ];
    for (from, to, want) in cases {
        assert!(GOOD.contains(from), "fixture text {from:?}");
        let text = GOOD.replacen(from, to, 1);
        let err = Config::from_toml(&text).expect_err(want).to_string();
        assert!(err.contains(want), "{to:?}: expected {want:?} in\n{err}");
    }
}

#[test]
fn a_duplicate_service_and_errors_are_all_reported_together() {
    let text = GOOD
        .replace("address = \"[2001:db8::100]:53\"", "address = \"10.0.0.100:80\"")
        .replace("protocol = \"udp\"", "protocol = \"tcp\"");
    let e = Config::from_toml(&text).unwrap_err().to_string();
    assert!(
        e.contains("service[1].address: tcp 10.0.0.100:80 is defined twice"),
        "{e}"
    );
    let text = GOOD
        .replace("weight = 3", "weight = -1")
        .replace("tcp = 600", "tcp = 0");
    let e = Config::from_toml(&text).unwrap_err();
    assert_eq!(e.0.len(), 2, "{e}");
}

#[test]
fn unknown_fields_and_bad_toml_are_refused() {
    let e = Config::from_toml(&GOOD.replace("weight = 3", "wieght = 3"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field `wieght`"), "{e}");
    let e = Config::from_toml("[[port]\nname=").unwrap_err().to_string();
    assert!(e.starts_with("TOML"), "{e}");
    let e = Config::from_toml("").unwrap_err().to_string();
    assert!(e.contains("port: at least one [[port]] is needed"), "{e}");
}

const TWIN: &str = r#"
[[port]]
name = "lan"
device = "net_pcap0,rx_pcap=/tmp/in.pcap,tx_pcap=/tmp/out.pcap"
addresses = ["192.168.1.1/24"]
host_interface = "rvs-lan"

[host_path]
rate = 5000
burst = 100

[[service]]
address = "192.168.1.100:80"
announce = "follow-host"

[[service.real]]
address = "192.168.1.2"
"#;

#[test]
fn a_twin_and_a_follow_host_service_validate() {
    let c = Config::from_toml(TWIN).unwrap();
    assert_eq!(c.ports[0].host_interface.as_deref(), Some("rvs-lan"));
    assert_eq!(
        c.host_path,
        HostPathConfig {
            rate: 5000,
            burst: 100
        }
    );
    assert_eq!(c.services[0].announce, Announce::FollowHost);
    let plain = Config::from_toml(GOOD).unwrap();
    assert_eq!(
        plain.services[0].announce,
        Announce::Always,
        "the default is today's behaviour"
    );
    assert_eq!(plain.host_path, HostPathConfig::default());
    assert!(plain.ports.iter().all(|p| p.host_interface.is_none()));
}

#[test]
fn bad_twin_names_are_refused_naming_the_field() {
    for (name, why) in [
        ("a-name-of-16-byt", "1 to 15"),
        ("", "1 to 15"),
        ("rvs/0", "not a valid interface name"),
        ("rvs 0", "not a valid interface name"),
        ("..", "not a valid interface name"),
        // Every network namespace has a loopback interface.
        ("lo", "clashes with an existing interface"),
    ] {
        let text = TWIN.replace("\"rvs-lan\"", &format!("{name:?}"));
        let e = Config::from_toml(&text).unwrap_err();
        assert!(
            e.0.iter()
                .any(|l| l.starts_with("port[0].host_interface: ") && l.contains(why)),
            "{name:?}: {e}"
        );
    }
}

#[test]
fn bad_host_path_and_announce_settings_are_refused() {
    let text = TWIN
        .replace("rate = 5000", "rate = 0")
        .replace("burst = 100", "burst = -1")
        .replace("\"follow-host\"", "\"sometimes\"");
    let e = Config::from_toml(&text).unwrap_err().to_string();
    assert!(e.contains("host_path.rate: 0 is outside"), "{e}");
    assert!(e.contains("host_path.burst: -1 is outside"), "{e}");
    assert!(
        e.contains("service[0].announce: \"sometimes\" is not one of always, follow-host"),
        "{e}"
    );
    let no_twin = TWIN.replace("host_interface = \"rvs-lan\"", "");
    let e = Config::from_toml(&no_twin).unwrap_err().to_string();
    assert!(
        e.contains("service[0].announce: follow-host needs a port with a host_interface"),
        "{e}"
    );
    let two = TWIN.replace(
        "[host_path]",
        "[[port]]\nname = \"wan\"\ndevice = \"net_null0\"\nhost_interface = \"rvs-lan\"\n\n[host_path]",
    );
    let e = Config::from_toml(&two).unwrap_err().to_string();
    assert!(
        e.contains("port[1].host_interface: \"rvs-lan\" is the twin of another port"),
        "{e}"
    );
}

#[test]
fn buffers_are_sized_from_the_mtu_and_a_jumbo_mtu_needs_big_enough_ones() {
    let jumbo = GOOD.replace(
        "addresses = [\"192.168.1.1/24\"]",
        "addresses = [\"192.168.1.1/24\"]\nmtu = 9000",
    );
    let c = Config::from_toml(&jumbo).unwrap();
    assert_eq!(c.mbuf_size, 9152, "9000 + 18 + 128 headroom, rounded up to 64");
    assert_eq!(
        Config::from_toml(GOOD).unwrap().mbuf_size,
        2176,
        "the default for 1500"
    );
    let small = jumbo.replace("conn_capacity = 4096", "conn_capacity = 4096\nmbuf_size = 2176");
    let e = Config::from_toml(&small).unwrap_err().to_string();
    assert!(
        e.contains("port[1].mtu: 9000 needs buffers of at least 9152 bytes (dataplane.mbuf_size is 2176)"),
        "{e}"
    );
}

#[test]
fn limits_are_configuration() {
    let c = Config::from_toml(GOOD).unwrap();
    assert_eq!((c.max_services, c.max_real_servers), (4096, 16_384));
    let few = GOOD.replace(
        "conn_capacity = 4096",
        "conn_capacity = 4096\nmax_services = 1\nmax_real_servers = 7",
    );
    let e = Config::from_toml(&few).unwrap_err().to_string();
    assert!(
        e.contains("service: 2 services, more than dataplane.max_services (1)"),
        "{e}"
    );
    assert!(
        e.contains("dataplane.max_real_servers: 7 is outside 16..=1048576"),
        "{e}"
    );
}

#[test]
fn a_service_written_back_as_config_validates_to_itself() {
    let mut text = GOOD.to_string();
    text.push_str(
        r#"
[[service]]
protocol = "tcp"
address = "10.0.0.101:443"
scheduler = "wlc"
quorum = 2
hysteresis = 1
sorry_server = "192.168.1.9:443"
check = { type = "tcp", interval = "2s" }

[[service.real]]
address = "192.168.1.4:443"
method = "nat"
check = { fall = 5 }
"#,
    );
    let c = Config::from_toml(&text).unwrap();
    assert_eq!(c.services.len(), 3);
    for s in &c.services {
        let back = validate_service(&s.to_raw(), &c.ports).unwrap();
        assert_eq!(&back, s);
    }
}

#[test]
fn sloppy_needs_a_consistent_scheduler_and_routes_are_checked() {
    let base = "[dataplane]\nworkers = [1]\n[[port]]\nname = \"p\"\ndevice = \"net_null0\"\naddresses = [\"10.0.0.1/24\"]\nhost_interface = \"rvs-p\"\n";
    let ok = format!("{base}[routes]\ninterface = \"rvs-p\"\n[[service]]\naddress = \"10.0.1.1:80\"\nscheduler = \"mh\"\nsloppy = true\nreal = [{{ address = \"10.0.0.2:80\", method = \"dr\" }}]\n");
    let c = Config::from_toml(&ok).unwrap();
    assert!(c.services[0].sloppy);
    let r = c.routes.unwrap();
    assert_eq!(
        (r.interface.as_str(), r.linger),
        ("rvs-p", std::time::Duration::from_secs(2))
    );
    assert_eq!(
        validate_service(&c.services[0].to_raw(), &c.ports).unwrap(),
        c.services[0]
    );
    let bad = ok.replace("scheduler = \"mh\"", "scheduler = \"rr\"").replace(
        "interface = \"rvs-p\"\n[[service]]",
        "interface = \"a/b\"\nlinger = \"90s\"\n[[service]]",
    );
    let e = Config::from_toml(&bad).unwrap_err().to_string();
    let tcp_ops = ok.replace("sloppy = true", "one_packet = true");
    let e2 = Config::from_toml(&tcp_ops).unwrap_err().to_string();
    assert!(e2.contains("service[0].one_packet"), "{e2}");
    for f in ["service[0].sloppy", "routes.interface", "routes.linger"] {
        assert!(e.contains(f), "{f} in {e}");
    }
}

#[test]
fn a_port_zero_service_needs_persistence() {
    let base = "[dataplane]\nworkers = [1]\n[[port]]\nname = \"p\"\ndevice = \"net_null0\"\naddresses = [\"10.0.0.1/24\"]\n";
    let ok = format!("{base}[[service]]\naddress = \"10.0.1.1:0\"\npersistence = 360\nreal = [{{ address = \"10.0.0.2\", method = \"dr\" }}]\n");
    let c = Config::from_toml(&ok).unwrap();
    assert_eq!((c.services[0].key.port(), c.services[0].reals[0].port), (0, 0));
    let e = Config::from_toml(&ok.replace("persistence = 360\n", ""))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("port 0 (every port of the VIP) needs persistence"),
        "{e}"
    );
}

#[test]
fn fwmark_services_and_their_rules_validate_and_round_trip() {
    let base = "[dataplane]\nworkers = [1]\n[[port]]\nname = \"p\"\ndevice = \"net_null0\"\naddresses = [\"10.0.0.1/24\", \"2001:db8::1/64\"]\n";
    let ok = format!(
        "{base}[[mark]]\nmark = 1\nprotocol = \"tcp\"\ndestination = \"10.0.1.1\"\nports = \"80,443\"\n\
         [[mark]]\nmark = 1\ndestination = \"2001:db8:5::/48\"\n\
         [[service]]\nfwmark = 1\npersistence = 360\nreal = [{{ address = \"10.0.0.2\", method = \"nat\" }}]\n\
         [[service]]\nfwmark = 1\nipv6 = true\nreal = [{{ address = \"[2001:db8::2]:0\", method = \"dr\" }}]\n"
    );
    let c = Config::from_toml(&ok).unwrap();
    assert_eq!(c.marks.len(), 2);
    assert_eq!(c.marks[0].ports, vec![(80, 80), (443, 443)]);
    assert_eq!(c.services[0].key, ServiceKey::Fwmark { mark: 1, v6: false });
    assert_eq!(c.services[1].key, ServiceKey::Fwmark { mark: 1, v6: true });
    assert_eq!(
        (c.services[0].reals[0].port, c.services[0].reals[0].addr.is_ipv4()),
        (0, true)
    );
    // What a peer is sent validates back to the same service.
    let back = crate::config::validate_service(&c.services[1].to_raw(), &c.ports).unwrap();
    assert_eq!(back.key, c.services[1].key);

    let bad = format!(
        "{base}[[mark]]\nmark = 0\ndestination = \"10.0.1.1/24\"\n\
         [[mark]]\nmark = 2\ndestination = \"10.0.1.0/24\"\n[[mark]]\nmark = 2\ndestination = \"10.0.1.0/24\"\n\
         [[service]]\nfwmark = 1\nprotocol = \"tcp\"\nreal = [{{ address = \"2001:db8::2\", method = \"dr\" }}]\n\
         [[service]]\nfwmark = 7\n[[service]]\nfwmark = 7\n\
         [[service]]\naddress = \"10.0.1.1:80\"\nipv6 = true\n\
         [[service]]\nfwmark = -3\n"
    );
    let e = Config::from_toml(&bad).unwrap_err().to_string();
    for want in [
        "mark[0].mark: 0 is outside",
        "mark[0].destination: \"10.0.1.1/24\" has bits set",
        "mark[2]: repeats mark[1]",
        "service[0].fwmark: a service is a mark's (-f) or an address's",
        "service[0].real[0]",
        "service[2].fwmark: fwmark 7 is defined twice",
        "service[3].ipv6: goes with fwmark",
        "service[4].fwmark: -3 is outside",
    ] {
        assert!(e.contains(want), "{want:?} in:\n{e}");
    }
}

#[test]
fn fullnat_services_need_local_addresses_and_keep_their_rules() {
    let base = "[dataplane]\nworkers = [1]\n[[port]]\nname = \"p\"\ndevice = \"net_null0\"\naddresses = [\"10.0.0.1/24\"]\ngateway = \"10.0.0.254\"\n";
    let svc = |proto: &str, extra: &str, reals: &str| {
        format!(
            "{base}[[service]]\nprotocol = \"{proto}\"\naddress = \"10.0.1.1:80\"\n{extra}real = [{reals}]\n"
        )
    };
    let fnat = "{ address = \"172.16.5.2:8080\", method = \"fullnat\" }";
    let ok = svc(
        "tcp",
        "local_addresses = [\"10.0.0.250\", \"10.0.0.251\"]\nproxy_protocol = \"v2\"\ntoa = true\n",
        fnat,
    );
    let c = Config::from_toml(&ok).unwrap();
    let s = &c.services[0];
    assert_eq!(s.reals[0].forward, Forward::FullNat);
    assert_eq!(s.reals[0].port, 8080, "FullNAT may change the port");
    assert_eq!(s.fullnat.laddrs.len(), 2);
    assert_eq!(s.fullnat.proxy, ProxyProtocol::V2);
    assert!(s.fullnat.toa);
    assert_eq!(validate_service(&s.to_raw(), &c.ports).unwrap(), *s);
    assert!(s.build(Vec::new()).unwrap().fullnat.toa);
    for (bad, field, says) in [
        (svc("tcp", "", fnat), "service[0].local_addresses", "missing"),
        (
            svc("tcp", "local_addresses = [\"2001:db8::1\"]\n", fnat),
            "service[0].local_addresses[0]",
            "family",
        ),
        (
            svc(
                "tcp",
                "local_addresses = [\"10.0.0.250\", \"10.0.0.250\"]\n",
                fnat,
            ),
            "service[0].local_addresses[1]",
            "twice",
        ),
        (
            svc("tcp", "local_addresses = [\"0.0.0.0\"]\n", fnat),
            "service[0].local_addresses[0]",
            "cannot be",
        ),
        (
            svc(
                "tcp",
                "local_addresses = [\"10.0.0.250\"]\nproxy_protocol = \"v3\"\n",
                fnat,
            ),
            "service[0].proxy_protocol",
            "not one of",
        ),
        (
            svc("udp", "local_addresses = [\"10.0.0.250\"]\ntoa = true\n", fnat),
            "service[0].toa",
            "TCP",
        ),
        (
            svc(
                "udp",
                "local_addresses = [\"10.0.0.250\"]\none_packet = true\n",
                fnat,
            ),
            "service[0].one_packet",
            "cannot go with fullnat",
        ),
        (
            svc("sctp", "local_addresses = [\"10.0.0.250\"]\n", fnat),
            "service[0].real",
            "TCP and UDP",
        ),
        (
            svc(
                "tcp",
                "local_addresses = [\"10.0.0.250\"]\n",
                &format!("{fnat}, {{ address = \"172.16.5.3:8080\", method = \"nat\" }}"),
            ),
            "service[0].real",
            "all fullnat or none",
        ),
    ] {
        let e = Config::from_toml(&bad).unwrap_err().to_string();
        assert!(e.contains(field) && e.contains(says), "{field} / {says} in {e}");
    }
}
