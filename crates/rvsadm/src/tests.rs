use super::*;
use rvs_api::proto::RealView;

fn args(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

fn id(p: &str, a: &str) -> ServiceId {
    ServiceId::addr(p, a)
}

#[test]
fn commands_parse_like_ipvsadm() {
    assert_eq!(
        parse(&args("-A -t 10.0.0.100:80 -s rr -p 600 -M 255.255.255.0")).unwrap(),
        Cmd::AddService(RawService {
            protocol: Some("tcp".into()),
            address: Some("10.0.0.100:80".into()),
            scheduler: Some("rr".into()),
            persistence: Some(600),
            netmask: Some("255.255.255.0".into()),
            ..Default::default()
        })
    );
    match parse(&args("-A -u [2001:db8::1]:domain -p")).unwrap() {
        Cmd::AddService(s) => {
            assert_eq!(
                s.address.as_deref(),
                Some("[2001:db8::1]:53"),
                "service names resolve"
            );
            assert_eq!(s.scheduler.as_deref(), Some("wlc"), "wlc is the default");
            assert_eq!(
                s.persistence,
                Some(360),
                "bare -p is 360 s, as ipvsadm's code has it"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        parse(&args(
            "-a -t 10.0.0.100:http -r 192.168.1.2:8080 -m -w 3 -x 100 -y 50"
        ))
        .unwrap(),
        Cmd::AddReal(
            id("tcp", "10.0.0.100:80"),
            RawReal {
                address: Some("192.168.1.2:8080".into()),
                method: Some("nat".into()),
                weight: Some(3),
                upper: Some(100),
                lower: Some(50),
                check: None,
            }
        )
    );
    match parse(&args("-e -t 10.0.0.100:80 -r 192.168.1.2")).unwrap() {
        Cmd::EditReal(_, r) => {
            assert_eq!(
                (r.method.as_deref(), r.weight),
                (Some("dr"), Some(1)),
                "ipvsadm's defaults"
            );
            assert_eq!(r.address.as_deref(), Some("192.168.1.2"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        parse(&args("-d -t 10.0.0.100:80 -r 192.168.1.2:80")).unwrap(),
        Cmd::DeleteReal(id("tcp", "10.0.0.100:80"), "192.168.1.2:80".into())
    );
    assert_eq!(
        parse(&args("-D --sctp-service 10.0.0.1:3868")).unwrap(),
        Cmd::DeleteService(id("sctp", "10.0.0.1:3868"))
    );
    assert_eq!(parse(&args("-C")).unwrap(), Cmd::Clear);
    assert_eq!(
        parse(&args("--set 600 60 30")).unwrap(),
        Cmd::SetTimeouts(600, 60, 30)
    );
    assert_eq!(
        parse(&args("-Sn")).unwrap(),
        Cmd::Save {
            numeric: true,
            nosort: false,
            marks: false,
        }
    );
    assert_eq!(
        parse(&args("-Z -t 10.0.0.100:80")).unwrap(),
        Cmd::Zero(Some(id("tcp", "10.0.0.100:80")))
    );
    match parse(&args("-Ln --stats --exact")).unwrap() {
        Cmd::List { service: None, opts } => assert!(opts.numeric && opts.stats && opts.exact && !opts.rate),
        other => panic!("{other:?}"),
    }
    match parse(&args("-lnc")).unwrap() {
        Cmd::List { opts, .. } => assert!(opts.numeric && opts.conns),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        parse(&[]).unwrap(),
        Cmd::List {
            service: None,
            opts: ListOpts::default()
        }
    );
}

#[test]
fn bad_command_lines_say_why() {
    for (line, want) in [
        ("-A -a -t 1.2.3.4:80", "only one command"),
        (
            "-A",
            "You need to supply the 'service-address' option for the 'add-service' command",
        ),
        ("-A -t 1.2.3.4", "needs a port"),
        (
            "-A -t 1.2.3.4:nosuchservice",
            "neither a port number nor a service name",
        ),
        (
            "-a -t 1.2.3.4:80",
            "You need to supply the 'real-server' option for the 'add-server' command",
        ),
        (
            "-A -t 1.2.3.4:80 -r 10.0.0.1",
            "Illegal 'real-server' option with the 'add-service' command",
        ),
        (
            "-L -c -t 1.2.3.4:80",
            "The option 'service-address' conflicts with the 'connection' option in the 'list' command",
        ),
        (
            "-D -t 1.2.3.4:80 -s rr",
            "Illegal 'scheduler' option with the 'delete-service' command",
        ),
        ("-C -n", "Illegal 'numeric' option with the 'flush' command"),
        ("-Z -n", "Illegal 'numeric' option with the 'zero' command"),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.1 -w many",
            "-w: \"many\" is not a number",
        ),
        (
            "-A -f 1 -t 1.2.3.4:80",
            "multiple 'service-address' options specified",
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.1 -g -m",
            "multiple 'forwarding-method' options specified",
        ),
        ("--bogus", "unknown option \"--bogus\""),
        ("--set 1 2", "--set needs a value"),
        ("-t 1.2.3.4:80", "no command given"),
    ] {
        let e = parse(&args(line)).unwrap_err();
        assert!(e.contains(want), "{line}: {e}");
    }
}

fn sample() -> Vec<ServiceView> {
    let stats = Stats {
        conns: 12,
        in_packets: 340,
        out_packets: 300,
        in_bytes: 123_456_789_012,
        out_bytes: 45_000,
        cps: 1,
        in_pps: 20,
        out_pps: 18,
        in_bps: 9000,
        out_bps: 8000,
    };
    vec![
        ServiceView {
            fwmark: None,
            announce: None,
            sloppy: false,
            one_packet: false,
            local_addresses: Vec::new(),
            proxy_protocol: None,
            toa: false,
            protocol: "tcp".into(),
            address: "10.0.0.100".into(),
            port: 80,
            scheduler: "wlc".into(),
            flags: vec![],
            persistence: Some(300),
            netmask: Some(24),
            stats,
            reals: vec![
                RealView {
                    address: "192.168.1.2".into(),
                    port: 80,
                    method: "nat".into(),
                    weight: 3,
                    upper: 100,
                    lower: 50,
                    active: 2,
                    inactive: 7,
                    persistent: 4,
                    stats,
                },
                RealView {
                    address: "192.168.1.3".into(),
                    port: 8080,
                    method: "nat".into(),
                    weight: 0,
                    upper: 0,
                    lower: 0,
                    active: 0,
                    inactive: 0,
                    persistent: 0,
                    stats: Stats::default(),
                },
            ],
        },
        ServiceView {
            fwmark: None,
            announce: None,
            sloppy: false,
            one_packet: false,
            local_addresses: Vec::new(),
            proxy_protocol: None,
            toa: false,
            protocol: "udp".into(),
            address: "2001:db8::1".into(),
            port: 53,
            scheduler: "sh".into(),
            flags: vec!["sh-fallback".into(), "sh-port".into()],
            persistence: None,
            netmask: None,
            stats: Stats::default(),
            reals: vec![RealView {
                address: "2001:db8::5".into(),
                port: 53,
                method: "dr".into(),
                weight: 1,
                upper: 0,
                lower: 0,
                active: 0,
                inactive: 1,
                persistent: 0,
                stats: Stats::default(),
            }],
        },
    ]
}

#[test]
fn golden_ln() {
    let want = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.0.0.100:80 wlc persistent 300 mask 255.255.255.0
  -> 192.168.1.2:80               Masq    3      2          7         
  -> 192.168.1.3:8080             Masq    0      0          0         
UDP  [2001:db8::1]:53 sh (sh-fallback,sh-port)
  -> [2001:db8::5]:53             Route   1      0          1         
";
    assert_eq!(
        fmt_list(
            4096,
            &sample(),
            &ListOpts {
                numeric: true,
                ..Default::default()
            }
        ),
        want
    );
}

#[test]
fn golden_l_with_service_names() {
    let out = fmt_list(4096, &sample(), &ListOpts::default());
    assert!(out.contains("TCP  10.0.0.100:http wlc persistent 300"), "{out}");
    assert!(
        out.contains(&format!("  -> {:<28} Masq", "192.168.1.2:http")),
        "{out}"
    );
    assert!(
        out.contains(&format!("  -> {:<28} Masq", "192.168.1.3:http-alt")),
        "{out}"
    );
    assert!(out.contains("UDP  [2001:db8::1]:domain sh"), "{out}");
}

#[test]
fn golden_stats_rate_exact() {
    let o = ListOpts {
        numeric: true,
        stats: true,
        ..Default::default()
    };
    let out = fmt_list(4096, &sample(), &o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[1],
        "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes"
    );
    assert_eq!(lines[2], "  -> RemoteAddress:Port");
    // The counters start in the same column (34) on service and real-server lines.
    let row = |first: &str| format!("{first:<33}       12      340      300     123G    45000");
    assert_eq!(lines[3], row("TCP  10.0.0.100:80"));
    assert_eq!(lines[4], row("  -> 192.168.1.2:80"));
    let exact = fmt_list(4096, &sample(), &ListOpts { exact: true, ..o });
    assert!(
        exact.contains("      12      340      300 123456789012    45000"),
        "{exact}"
    );
    let rate = fmt_list(
        4096,
        &sample(),
        &ListOpts {
            numeric: true,
            rate: true,
            ..Default::default()
        },
    );
    let lines: Vec<&str> = rate.lines().collect();
    assert_eq!(
        lines[1],
        "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS"
    );
    assert_eq!(
        lines[3],
        format!(
            "{:<33}        1       20       18     9000     8000",
            "TCP  10.0.0.100:80"
        )
    );
}

#[test]
fn golden_thresholds_and_persistent_conn() {
    let t = fmt_list(
        4096,
        &sample(),
        &ListOpts {
            numeric: true,
            thresholds: true,
            ..Default::default()
        },
    );
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(
        lines[1],
        "Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn"
    );
    // ipvsadm prints the service line of --thresholds as the plain listing's.
    assert_eq!(
        lines[3],
        "TCP  10.0.0.100:80 wlc persistent 300 mask 255.255.255.0"
    );
    assert_eq!(
        lines[4],
        "  -> 192.168.1.2:80               100        50         2          7         "
    );
    let p = fmt_list(
        4096,
        &sample(),
        &ListOpts {
            numeric: true,
            persistent_conn: true,
            ..Default::default()
        },
    );
    let lines: Vec<&str> = p.lines().collect();
    assert_eq!(
        lines[1],
        "Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn"
    );
    assert_eq!(
        lines[4],
        "  -> 192.168.1.2:80               3         4           2          7         "
    );
}

#[test]
fn golden_connections() {
    let c = vec![ConnView {
        protocol: "TCP".into(),
        expires: 899,
        state: "ESTABLISHED".into(),
        client: "198.51.100.7:40000".into(),
        virtual_: "10.0.0.100:80".into(),
        destination: "192.168.1.2:8080".into(),
    }];
    assert_eq!(
        fmt_conns(&c, true),
        "IPVS connection entries\npro expire state       source             virtual            destination\n\
         TCP 14:59  ESTABLISHED 198.51.100.7:40000 10.0.0.100:80      192.168.1.2:8080\n"
    );
    assert!(fmt_conns(&c, false).contains("10.0.0.100:http"));
}

#[test]
fn golden_save_and_it_parses_back() {
    let want = "\
-A -t 10.0.0.100:80 -s wlc -p 300 -M 255.255.255.0
-a -t 10.0.0.100:80 -r 192.168.1.2:80 -m -w 3 -x 100 -y 50
-a -t 10.0.0.100:80 -r 192.168.1.3:8080 -m -w 0
-A -u [2001:db8::1]:53 -s sh -b sh-fallback,sh-port
-a -u [2001:db8::1]:53 -r [2001:db8::5]:53 -g -w 1
";
    let saved = fmt_save(&sample(), true);
    assert_eq!(saved, want);
    assert!(fmt_save(&sample(), false).starts_with("-A -t 10.0.0.100:http -s wlc"));
    for line in saved.lines() {
        let cmd = parse(&args(line)).unwrap();
        assert!(matches!(cmd, Cmd::AddService(_) | Cmd::AddReal(..)), "{line}");
    }
}

#[test]
fn announce_is_saved_only_when_it_is_not_ipvsadms_and_parses_back() {
    let mut services = sample();
    services[1].announce = Some("follow-host".into());
    let saved = fmt_save(&services, true);
    assert!(
        saved.starts_with("-A -t 10.0.0.100:80 -s wlc -p 300 -M 255.255.255.0\n"),
        "{saved}"
    );
    assert!(
        saved.contains("-A -u [2001:db8::1]:53 -s sh -b sh-fallback,sh-port --announce follow-host\n"),
        "{saved}"
    );
    let line = saved.lines().find(|l| l.contains("--announce")).unwrap();
    match parse(&args(line)).unwrap() {
        Cmd::AddService(s) => assert_eq!(s.announce.as_deref(), Some("follow-host")),
        other => panic!("{other:?}"),
    }
    match parse(&args("-E -t 10.0.0.100:80 -s rr")).unwrap() {
        Cmd::EditService(s) => assert_eq!(s.announce, None, "-E without --announce keeps it"),
        other => panic!("{other:?}"),
    }
    assert!(parse(&args("-A -t 10.0.0.100:80 --announce")).is_err());
}

#[test]
fn golden_health() {
    use rvs_api::proto::{HealthRealView, HealthServiceView};
    let real = |address: &str, check: &str, state: &str, w: u32, e: u32, last: &str, age: Option<u64>| {
        HealthRealView {
            address: address.into(),
            check: check.into(),
            state: state.into(),
            weight: w,
            effective_weight: e,
            last: last.into(),
            age_ms: age,
            successes: if state == "up" { 12 } else { 0 },
            failures: if state == "down" { 3 } else { 0 },
            transitions: 1,
        }
    };
    let services = vec![HealthServiceView {
        protocol: "tcp".into(),
        service: "10.0.0.100:80".into(),
        quorum: 4,
        hysteresis: 1,
        live_weight: 2,
        quorum_up: false,
        sorry_server: Some("10.0.0.9:80".into()),
        reals: vec![
            real("192.168.1.2:80", "http", "up", 2, 0, "http status 200", Some(400)),
            real(
                "192.168.1.3:80",
                "http",
                "down",
                2,
                0,
                "connect refused",
                Some(1250),
            ),
            real("192.168.1.4:80", "none", "unchecked", 1, 0, "", None),
        ],
    }];
    assert_eq!(
        fmt_health(&services),
        "\
Prot LocalAddress:Port            Quorum     LiveWeight Sorry
  -> RemoteAddress:Port           Check  State     Weight Effective Ok   Fail Trans  Age      Last
TCP  10.0.0.100:80                lost 4     2          10.0.0.9:80
  -> 192.168.1.2:80               http   up        2      0         12   0    1      0.4s     http status 200
  -> 192.168.1.3:80               http   down      2      0         0    3    1      1.2s     connect refused
  -> 192.168.1.4:80               none   unchecked 1      0         0    0    1      -        \n"
    );
}

#[test]
fn sync_daemon_commands_parse_like_ipvsadm() {
    match parse(&args(
        "--start-daemon backup --mcast-interface eth1 --syncid 9 --sync-maxlen 1400 --mcast-group 224.0.0.82 --mcast-port 9000 --mcast-ttl 2",
    ))
    .unwrap()
    {
        Cmd::StartDaemon(d) => {
            let v = d.validate().unwrap();
            assert_eq!(
                v.line(),
                "backup sync daemon (mcast=eth1, syncid=9, maxlen=1400, group=224.0.0.82, port=9000, ttl=2)"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        parse(&args("--stop-daemon master")).unwrap(),
        Cmd::StopDaemon("master".into())
    );
    match parse(&args("-L --daemon")).unwrap() {
        Cmd::List { opts, .. } => assert!(opts.daemon),
        other => panic!("{other:?}"),
    }
    for bad in [
        "--start-daemon primary --mcast-interface eth0",
        "--start-daemon master",
        "--start-daemon master --mcast-interface eth0 --syncid 300",
        "--start-daemon master --mcast-interface eth0 --mcast-group 10.0.0.1",
        "--stop-daemon",
        "--start-daemon master --mcast-interface eth0 -A -t 10.0.0.1:80",
    ] {
        assert!(parse(&args(bad)).is_err(), "{bad} is refused");
    }
}

#[test]
fn listings_sort_as_ipvsadm_sorts_including_its_int_wraparound() {
    let svc = |p: &str, a: &str, port: u16, reals: &[(&str, u16)]| ServiceView {
        fwmark: None,
        protocol: p.into(),
        address: a.into(),
        port,
        scheduler: "rr".into(),
        flags: vec![],
        persistence: None,
        netmask: None,
        announce: None,
        sloppy: false,
        one_packet: false,
        local_addresses: Vec::new(),
        proxy_protocol: None,
        toa: false,
        stats: Default::default(),
        reals: reals
            .iter()
            .map(|&(a, port)| RealView {
                address: a.into(),
                port,
                method: "nat".into(),
                weight: 1,
                upper: 0,
                lower: 0,
                active: 0,
                inactive: 0,
                persistent: 0,
                stats: Default::default(),
            })
            .collect(),
    };
    let mut v = vec![
        svc("udp", "10.0.0.1", 53, &[]),
        svc("tcp", "2001:db8::1", 80, &[]),
        svc(
            "tcp",
            "10.0.0.2",
            80,
            &[("192.168.1.3", 80), ("192.168.1.2", 81), ("192.168.1.2", 80)],
        ),
        svc("tcp", "10.0.0.2", 22, &[]),
        svc("tcp", "10.0.0.1", 443, &[]),
        svc("sctp", "10.0.0.1", 9, &[]),
    ];
    sort_like_ipvsadm(&mut v);
    let order: Vec<String> = v
        .iter()
        .map(|s| format!("{} {}:{}", s.protocol, s.address, s.port))
        .collect();
    assert_eq!(
        order,
        [
            "tcp 10.0.0.1:443",
            "tcp 10.0.0.2:22",
            "tcp 10.0.0.2:80",
            "udp 10.0.0.1:53",
            "sctp 10.0.0.1:9",
            "tcp 2001:db8::1:80"
        ],
        "IPv4 before IPv6, then protocol number, address, port"
    );
    let reals: Vec<String> = v[2]
        .reals
        .iter()
        .map(|r| format!("{}:{}", r.address, r.port))
        .collect();
    assert_eq!(reals, ["192.168.1.2:80", "192.168.1.2:81", "192.168.1.3:80"]);
    // ipvsadm subtracts addresses as unsigned words read back as int: 10.0.0.1 - 192.168.0.1
    // wraps to a positive int, so 10/8 lists after 192.168/16, as ipvsadm lists them.
    let mut w = vec![
        svc("tcp", "10.0.0.1", 80, &[]),
        svc("tcp", "192.168.0.1", 80, &[]),
    ];
    sort_like_ipvsadm(&mut w);
    assert_eq!(w[0].address, "192.168.0.1");
}

#[test]
fn popt_spellings_parse_as_ipvsadm_takes_them() {
    let a = parse(&args(
        "--add-service --tcp-service=10.0.0.1:80 --scheduler=wrr -p600",
    ))
    .unwrap();
    match a {
        Cmd::AddService(s) => {
            assert_eq!(s.address.as_deref(), Some("10.0.0.1:80"));
            assert_eq!(s.scheduler.as_deref(), Some("wrr"));
            assert_eq!(s.persistence, Some(600));
        }
        other => panic!("{other:?}"),
    }
    match parse(&args("-a -t 10.0.0.1:80 -r 192.168.1.2 -i --tun-type ipip -w3")).unwrap() {
        Cmd::AddReal(_, r) => {
            assert_eq!(r.method.as_deref(), Some("tun"));
            assert_eq!(r.weight, Some(3));
        }
        other => panic!("{other:?}"),
    }
    match parse(&args("-LnX")).unwrap() {
        Cmd::List { opts, .. } => assert!(opts.exact && opts.numeric),
        other => panic!("{other:?}"),
    }
    assert_eq!(parse(&args("-v")).unwrap(), Cmd::Version);
    for (bad, says) in [
        ("-a -t 10.0.0.1:80 -r 192.168.1.2 -i --tun-type gue", "ipip only"),
        ("-a -t 10.0.0.1:80 -r 192.168.1.2 -i --tun-port 6080", "gue/gre"),
        ("-A -t 10.0.0.1:80 -p --pe sip", "persistence engines"),
    ] {
        let e = parse(&args(bad)).unwrap_err();
        assert!(e.contains(says), "{bad}: {e}");
    }
}

#[test]
fn one_packet_services_show_and_save_as_ipvsadm_writes_them() {
    match parse(&args("-A -u 10.0.0.1:53 -s rr -o")).unwrap() {
        Cmd::AddService(s) => assert_eq!(s.one_packet, Some(true)),
        other => panic!("{other:?}"),
    }
    let s = ServiceView {
        fwmark: None,
        protocol: "udp".into(),
        address: "10.0.0.1".into(),
        port: 53,
        scheduler: "rr".into(),
        flags: vec![],
        persistence: None,
        netmask: None,
        announce: None,
        sloppy: false,
        one_packet: true,
        local_addresses: Vec::new(),
        proxy_protocol: None,
        toa: false,
        stats: Default::default(),
        reals: vec![],
    };
    assert_eq!(
        fmt_save(std::slice::from_ref(&s), true),
        "-A -u 10.0.0.1:53 -s rr -o\n"
    );
    let l = fmt_list(
        4096,
        &[s],
        &ListOpts {
            numeric: true,
            ..Default::default()
        },
    );
    assert!(l.lines().any(|x| x == "UDP  10.0.0.1:53 rr ops"), "{l}");
}

#[test]
fn large_counters_scale_as_ipvsadm_scales_them() {
    assert_eq!(largenum(99_999_999, false), "99999999");
    assert_eq!(largenum(123_456_789, false), " 123456K");
    assert_eq!(largenum(12_345_678_901, false), "  12345M");
    assert_eq!(largenum(123_456_789_012_345, false), "    123T");
    assert_eq!(largenum(99_999_999_999_999, false), "  99999G");
    assert_eq!(largenum(123_456_789, true), "123456789");
}

#[test]
fn scheduler_flags_fit_their_scheduler_and_list_by_its_names() {
    let e = parse(&args("-A -t 10.0.0.1:80 -s rr -b sh-port")).unwrap_err();
    assert_eq!(e, "incompatible scheduler flag `sh-port'");
    assert!(parse(&args("-A -t 10.0.0.1:80 -s mh -b mh-port,mh-fallback")).is_ok());
    assert!(parse(&args("-A -t 10.0.0.1:80 -s rr -b flag-1")).is_ok());
    let f = rvs_core::sched::SchedFlags::parse("flag-1,flag-2").unwrap();
    assert_eq!(f.names("rr"), ["flag-1", "flag-2"]);
    assert_eq!(f.names("sh"), ["sh-fallback", "sh-port"]);
    assert_eq!(f.names("mh"), ["mh-fallback", "mh-port"]);
}

#[test]
fn host_names_resolve_on_input_and_addresses_to_names_without_n() {
    match parse(&args("-A -t localhost:80 -s rr")).unwrap() {
        Cmd::AddService(s) => assert_eq!(s.address.as_deref(), Some("127.0.0.1:80")),
        other => panic!("{other:?}"),
    }
    match parse(&args("-a -t 10.0.0.1:80 -r localhost:8080 -m")).unwrap() {
        Cmd::AddReal(_, r) => assert_eq!(r.address.as_deref(), Some("127.0.0.1:8080")),
        other => panic!("{other:?}"),
    }
    assert!(parse(&args("-A -t no-such-host.invalid:80")).is_err());
    assert_eq!(endpoint("127.0.0.1", 80, "tcp", false), "localhost:http");
    assert_eq!(endpoint("127.0.0.1", 80, "tcp", true), "127.0.0.1:80");
}

/// Two mark services (IPv4 persistent with a mask, IPv6) beside an address service.
fn with_marks() -> Vec<ServiceView> {
    let mut v = sample();
    let mut m1 = v[0].clone();
    m1.fwmark = Some(1);
    m1.protocol = String::new();
    m1.address = "0.0.0.0".into();
    m1.port = 0;
    m1.scheduler = "rr".into();
    m1.reals.truncate(1);
    m1.reals[0].port = 0;
    let mut m2 = v[1].clone();
    m2.fwmark = Some(2);
    m2.protocol = String::new();
    m2.address = "::".into();
    m2.port = 0;
    m2.scheduler = "wlc".into();
    m2.flags.clear();
    m2.reals[0].port = 0;
    v.insert(0, m2);
    v.insert(0, m1);
    v
}

#[test]
fn golden_fwmark_listings() {
    let mut v = with_marks();
    sort_like_ipvsadm(&mut v);
    let want = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.0.0.100:80 wlc persistent 300 mask 255.255.255.0
  -> 192.168.1.2:80               Masq    3      2          7         
  -> 192.168.1.3:8080             Masq    0      0          0         
UDP  [2001:db8::1]:53 sh (sh-fallback,sh-port)
  -> [2001:db8::5]:53             Route   1      0          1         
FWM  1 rr persistent 300 mask 255.255.255.0
  -> 192.168.1.2:0                Masq    3      2          7         
FWM  2 IPv6 wlc
  -> [2001:db8::5]:0              Route   1      0          1         
";
    let o = ListOpts {
        numeric: true,
        ..ListOpts::default()
    };
    assert_eq!(fmt_list(4096, &v, &o), want);
    let stats = fmt_list(
        4096,
        &v,
        &ListOpts {
            numeric: true,
            stats: true,
            ..ListOpts::default()
        },
    );
    assert!(
        stats.contains("\nFWM  1                                  12      340      300     123G    45000\n"),
        "{stats}"
    );
    assert!(
        stats.contains("\nFWM  2 IPv6                              0        0        0        0        0\n"),
        "{stats}"
    );
    let one = fmt_list_body(&v[2..3], &o);
    assert!(
        one.starts_with("Prot LocalAddress:Port Scheduler Flags\n"),
        "{one}"
    );
    assert!(one.contains("FWM  1 rr persistent 300"), "{one}");
}

#[test]
fn golden_fwmark_save_and_the_round_trip() {
    let mut v = with_marks();
    sort_like_ipvsadm(&mut v);
    let saved = fmt_save(&v, true);
    let want = "\
-A -t 10.0.0.100:80 -s wlc -p 300 -M 255.255.255.0
-a -t 10.0.0.100:80 -r 192.168.1.2:80 -m -w 3 -x 100 -y 50
-a -t 10.0.0.100:80 -r 192.168.1.3:8080 -m -w 0
-A -u [2001:db8::1]:53 -s sh -b sh-fallback,sh-port
-a -u [2001:db8::1]:53 -r [2001:db8::5]:53 -g -w 1
-A -f 1 -s rr -p 300 -M 255.255.255.0
-a -f 1 -r 192.168.1.2:0 -m -w 3 -x 100 -y 50
-A -f 2 -6 -s wlc
-a -f 2 -6 -r [2001:db8::5]:0 -g -w 1
";
    assert_eq!(saved, want);
    let parsed: Vec<Cmd> = saved.lines().map(|l| parse(&args(l)).unwrap()).collect();
    match &parsed[5] {
        Cmd::AddService(s) => {
            assert_eq!((s.fwmark, s.ipv6, s.protocol.as_deref()), (Some(1), None, None));
            assert_eq!(
                (s.persistence, s.netmask.as_deref()),
                (Some(300), Some("255.255.255.0"))
            );
        }
        other => panic!("{other:?}"),
    }
    match &parsed[8] {
        Cmd::AddReal(id, r) => {
            assert_eq!(*id, ServiceId::fwmark(2, true));
            assert_eq!(r.address.as_deref(), Some("[2001:db8::5]:0"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn fwmark_command_lines_as_ipvsadm_takes_them() {
    assert_eq!(
        parse(&args("-D -f 7")).unwrap(),
        Cmd::DeleteService(ServiceId::fwmark(7, false))
    );
    assert_eq!(
        parse(&args("-Ln -f 7 -6")).unwrap(),
        Cmd::List {
            service: Some(ServiceId::fwmark(7, true)),
            opts: ListOpts {
                numeric: true,
                ..ListOpts::default()
            }
        }
    );
    assert_eq!(parse(&args("-A -6 -f 1")).unwrap_err(), "-6 used before -f");
    assert_eq!(
        parse(&args("-A -t 10.0.0.1:80 -6")).unwrap_err(),
        "-6 used before -f"
    );
    for bad in ["-A -f 0", "-A -f x", "-A -f 4294967296", "-A -f -1"] {
        assert_eq!(
            parse(&args(bad)).unwrap_err(),
            "illegal fwmark specified",
            "{bad}"
        );
    }
    assert!(parse(&args("-A -f")).is_err());
}

#[test]
fn mark_rules_parse_list_and_save_as_lines_that_parse_back() {
    let cmd = parse(&args(
        "--add-mark 1 --proto tcp --dest 10.0.0.100 --dports 80,443",
    ))
    .unwrap();
    let Cmd::AddMark(raw) = cmd else { panic!("{cmd:?}") };
    let m = rvs_api::mark::validate_mark(&raw, "mark").unwrap();
    assert_eq!(
        m.to_string(),
        "--add-mark 1 --proto tcp --dest 10.0.0.100/32 --dports 80,443"
    );
    assert_eq!(parse(&args(&m.to_string())).unwrap(), Cmd::AddMark(m.to_raw()));
    let all = rvs_api::mark::validate_mark(
        &match parse(&args("--delete-mark 9 --dest 2001:db8::/64")).unwrap() {
            Cmd::DeleteMark(r) => r,
            other => panic!("{other:?}"),
        },
        "mark",
    )
    .unwrap();
    assert_eq!(
        fmt_marks(&[m, all]),
        "\
Mark       Prot Destination                              Ports
1          tcp  10.0.0.100/32                            80,443
9          all  2001:db8::/64                            all
"
    );
    assert!(parse(&args("-A -t 10.0.0.1:80 --dports 80")).is_err());
    assert!(parse(&args("--add-mark 1 --dest 10.0.0.1 -n")).is_err());
    assert!(parse(&args("--add-mark x --dest 10.0.0.1")).is_err());
    match parse(&args("-S --marks")).unwrap() {
        Cmd::Save { marks, .. } => assert!(marks),
        other => panic!("{other:?}"),
    }
}

#[test]
fn golden_tun_info() {
    let mut v = sample();
    v[1].reals[0].method = "tun".into();
    let got = fmt_list(
        4096,
        &v,
        &ListOpts {
            numeric: true,
            tun_info: true,
            ..ListOpts::default()
        },
    );
    let want = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn
TCP  10.0.0.100:80 wlc persistent 300 mask 255.255.255.0
  -> 192.168.1.2:80               Masq    n/a           3      2          7         
  -> 192.168.1.3:8080             Masq    n/a           0      0          0         
UDP  [2001:db8::1]:53 sh (sh-fallback,sh-port)
  -> [2001:db8::5]:53             Tunnel  ipip          1      0          1         
";
    assert_eq!(got, want);
    assert!(parse(&args("-Ln --tun-info")).is_ok());
    assert!(
        fmt_save(&v, true).contains("-a -u [2001:db8::1]:53 -r [2001:db8::5]:53 -i -w 1 --tun-type ipip\n")
    );
}

#[test]
fn fullnat_services_parse_list_and_save_as_dpvs_ipvsadm_writes_them() {
    match parse(&args("-A -t 10.0.0.1:80 -s rr --proxy-protocol v2 --toa on")).unwrap() {
        Cmd::AddService(s) => {
            assert_eq!(s.proxy_protocol.as_deref(), Some("v2"));
            assert_eq!(s.toa, Some(true));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        parse(&args("-P -t 10.0.0.1:80 -z 192.168.1.250")).unwrap(),
        Cmd::AddLocalAddress(ServiceId::addr("tcp", "10.0.0.1:80"), "192.168.1.250".into())
    );
    assert_eq!(
        parse(&args("--del-laddr -t 10.0.0.1:80 -z192.168.1.250")).unwrap(),
        Cmd::DeleteLocalAddress(ServiceId::addr("tcp", "10.0.0.1:80"), "192.168.1.250".into())
    );
    assert_eq!(parse(&args("-G")).unwrap(), Cmd::ListLocalAddresses(None));
    match parse(&args("-a -t 10.0.0.1:80 -r 192.168.7.2:8080 --fullnat -w 2")).unwrap() {
        Cmd::AddReal(_, r) => assert_eq!(r.method.as_deref(), Some("fullnat")),
        other => panic!("{other:?}"),
    }
    for (bad, says) in [
        ("-P -t 10.0.0.1:80", "-z"),
        ("-P -t 10.0.0.1:80 -z nowhere", "not an IPv4/IPv6 address"),
        (
            "-a -t 10.0.0.1:80 -r 192.168.7.2 -z 192.168.1.250",
            "-z goes with",
        ),
        ("-A -t 10.0.0.1:80 --proxy-protocol v3", "not one of v1, v2, off"),
        ("-a -t 10.0.0.1:80 -r 192.168.7.2 --toa on", "go with -A or -E"),
        ("-A -t 10.0.0.1:80 --toa yes", "on or off"),
        (
            "-a -t 10.0.0.1:80 -r 192.168.7.2 --fullnat -m",
            "multiple 'forwarding-method'",
        ),
        ("-G -t 10.0.0.1:80 -s rr", "take only a service"),
    ] {
        let e = parse(&args(bad)).unwrap_err();
        assert!(e.contains(says), "{bad}: {e}");
    }
    let s = ServiceView {
        fwmark: None,
        protocol: "tcp".into(),
        address: "10.0.0.1".into(),
        port: 80,
        scheduler: "rr".into(),
        flags: vec![],
        persistence: None,
        netmask: None,
        announce: None,
        sloppy: false,
        one_packet: false,
        local_addresses: vec!["192.168.1.250".into(), "192.168.1.251".into()],
        proxy_protocol: Some("v2".into()),
        toa: true,
        stats: Default::default(),
        reals: vec![RealView {
            address: "192.168.7.2".into(),
            port: 8080,
            method: "fullnat".into(),
            weight: 2,
            upper: 0,
            lower: 0,
            active: 1,
            inactive: 0,
            persistent: 0,
            stats: Default::default(),
        }],
    };
    let saved = fmt_save(std::slice::from_ref(&s), true);
    assert_eq!(
        saved,
        "-A -t 10.0.0.1:80 -s rr --proxy-protocol v2 --toa on\n\
         -P -t 10.0.0.1:80 -z 192.168.1.250\n\
         -P -t 10.0.0.1:80 -z 192.168.1.251\n\
         -a -t 10.0.0.1:80 -r 192.168.7.2:8080 --fullnat -w 2\n"
    );
    // What -S writes, -R reads back.
    for line in saved.lines() {
        parse(&args(line)).unwrap_or_else(|e| panic!("{line}: {e}"));
    }
    let l = fmt_list(
        4096,
        std::slice::from_ref(&s),
        &ListOpts {
            numeric: true,
            ..Default::default()
        },
    );
    assert!(
        l.lines()
            .any(|x| x.starts_with("  -> 192.168.7.2:8080") && x.contains("FullNat")),
        "{l}"
    );
    assert_eq!(
        fmt_laddrs(&[s]),
        "VIP:VPORT                    TOTAL   SNAT_IP\n\
         10.0.0.1:80                  2       192.168.1.250\n\
         10.0.0.1:80                  2       192.168.1.251\n"
    );
}
