//! The DPDK layer against a real EAL (no hugepages) and real vdevs.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{eal, read_pcap, udp_frame, write_pcap};
use dpdk::{spawn_worker, Burst, Error, MbufError, Mempool, Port, PortConfig, DEFAULT_DATA_ROOM};

/// Mempool names are process-global in DPDK: give every test its own.
fn pool(tag: &str, n: u32) -> Mempool {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let name = format!("t{}-{tag}", SEQ.fetch_add(1, Ordering::Relaxed));
    Mempool::new(eal(), &name, n, 32, DEFAULT_DATA_ROOM).expect("mempool")
}

#[test]
fn frames_move_through_a_pcap_vdev_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (inp, out) = (dir.path().join("in.pcap"), dir.path().join("out.pcap"));
    let frames: Vec<Vec<u8>> = (0..1000)
        .map(|i| udp_frame(i, 18 + (i as usize * 7) % 1400))
        .collect();
    write_pcap(&inp, &frames);

    let mp = pool("pcap", 4095);
    let start_in_use = mp.in_use();
    let dev = format!("net_pcap_t0,rx_pcap={},tx_pcap={}", inp.display(), out.display());
    let port = Port::open(eal(), &dev, &PortConfig::default(), &mp).expect("open pcap port");
    port.start().unwrap();
    let (mut rxq, mut txq) = port.take_queues().unwrap();
    let (rx, tx) = (&mut rxq[0], &mut txq[0]);

    let mut burst = Burst::new();
    let (mut got, mut sent) = (0usize, 0usize);
    let deadline = Instant::now() + Duration::from_secs(20);
    while got < frames.len() && Instant::now() < deadline {
        got += rx.rx_burst(&mut burst);
        while !burst.is_empty() {
            sent += tx.tx_burst(&mut burst);
        }
    }
    assert_eq!(got, frames.len(), "every frame of the input pcap is received");
    assert_eq!(sent, frames.len());
    let stats = port.stats().unwrap();
    assert_eq!(stats.ipackets, frames.len() as u64);
    assert_eq!(stats.opackets, frames.len() as u64);
    assert_eq!(stats.rx_nombuf, 0);
    drop((rxq, txq));
    port.stop().unwrap();
    drop(port); // closes the device, which flushes the tx pcap

    assert_eq!(
        read_pcap(&out),
        frames,
        "output pcap equals the input, byte for byte"
    );
    assert_eq!(mp.in_use(), start_in_use, "no mbuf leaked");
}

#[test]
fn mbuf_prepend_adj_append_keep_data_and_refuse_cleanly() {
    let mp = pool("mbuf", 63);
    let mut m = mp.alloc().expect("alloc");
    assert_eq!(m.len(), 0);
    let head = m.headroom();
    assert_eq!(head, 128, "DPDK's default headroom");

    let payload: Vec<u8> = (0..200u8).collect();
    m.append(payload.len()).unwrap().copy_from_slice(&payload);
    assert_eq!(m.data(), &payload[..]);

    // Encapsulate: 20 bytes in front, data behind untouched.
    m.prepend(20).unwrap().fill(0xee);
    assert_eq!(m.len(), 220);
    assert_eq!(&m.data()[..20], &[0xee; 20]);
    assert_eq!(&m.data()[20..], &payload[..]);
    // Decapsulate again.
    m.adj(20).unwrap();
    assert_eq!(m.data(), &payload[..]);
    m.trim(50).unwrap();
    assert_eq!(m.data(), &payload[..150]);

    // Refusals leave the mbuf as it was.
    let (len, head, tail) = (m.len(), m.headroom(), m.tailroom());
    assert_eq!(
        m.prepend(head + 1),
        Err(MbufError::NoHeadroom {
            wanted: head + 1,
            room: head
        })
    );
    assert_eq!(
        m.append(tail + 1).unwrap_err(),
        MbufError::NoTailroom {
            wanted: tail + 1,
            room: tail
        }
    );
    assert_eq!(m.adj(len + 1), Err(MbufError::TooShort { wanted: len + 1, len }));
    assert_eq!(m.trim(len + 1), Err(MbufError::TooShort { wanted: len + 1, len }));
    assert_eq!((m.len(), m.headroom(), m.tailroom()), (len, head, tail));
    assert_eq!(m.data(), &payload[..150]);

    // The whole headroom can be used, exactly.
    m.prepend(head).unwrap();
    assert_eq!(m.headroom(), 0);
    assert!(m.prepend(1).is_err());

    let in_use = mp.in_use();
    drop(m);
    assert_eq!(mp.in_use(), in_use - 1, "Drop returns the mbuf to its pool");
}

#[test]
fn bulk_alloc_fills_a_burst_and_clear_frees_it() {
    let mp = pool("bulk", 127);
    let before = mp.in_use();
    let mut b = Burst::new();
    mp.alloc_bulk(&mut b, 20).unwrap();
    assert_eq!(b.len(), 20);
    assert_eq!(mp.in_use(), before + 20);
    assert!(mp.alloc_bulk(&mut b, 13).is_err(), "only 12 slots are free");
    let m = b.pop().unwrap();
    drop(m);
    assert_eq!(mp.in_use(), before + 19);
    b.clear();
    assert_eq!(mp.in_use(), before);
}

#[test]
fn bad_device_strings_return_dpdk_reasons() {
    let mp = pool("baddev", 255);
    // A driver that does not exist.
    let e = Port::open(eal(), "net_nosuchdriver0", &PortConfig::default(), &mp).unwrap_err();
    match &e {
        Error::Dpdk {
            op: "rte_dev_probe",
            reason,
            ..
        } => assert!(!reason.is_empty()),
        other => panic!("unexpected error {other:?}"),
    }
    // A real driver with an input file that does not exist.
    let e = Port::open(
        eal(),
        "net_pcap_bad0,rx_pcap=/nonexistent/in.pcap,tx_pcap=/tmp/x.pcap",
        &PortConfig::default(),
        &mp,
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Dpdk {
                op: "rte_dev_probe",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("rte_dev_probe failed"), "{e}");
    // No device name at all.
    let e = Port::open(eal(), ",iface=x", &PortConfig::default(), &mp).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Invalid {
                what: "device string",
                ..
            }
        ),
        "{e:?}"
    );
    // More queues than the device has.
    let cfg = PortConfig {
        rx_queues: 2000,
        ..Default::default()
    };
    let e = Port::open(eal(), "net_null_q0", &cfg, &mp).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Invalid {
                what: "port queues",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn a_second_eal_init_is_an_error_not_an_abort() {
    let _ = eal();
    assert_eq!(
        dpdk::Eal::init(common::test_eal_args()).unwrap_err(),
        Error::EalAlreadyInitialised
    );
}

#[test]
fn two_pinned_workers_have_their_own_lcores_and_use_the_mempool_cache() {
    let mp = pool("workers", 1023);
    let main_lcore = dpdk::current_lcore();
    let cpus = [0usize, 1 % std::thread::available_parallelism().unwrap().get()];
    // Both workers stay registered until both have looked, so their lcore ids coexist.
    let together = Arc::new(Barrier::new(2));
    let mut workers = Vec::new();
    for (i, cpu) in cpus.into_iter().enumerate() {
        let mp = mp.clone();
        let together = together.clone();
        let w = spawn_worker(eal(), &format!("w{i}"), cpu, move |lcore| {
            let seen = dpdk::current_lcore();
            let pinned = core_affinity_now();
            // Allocate and free: with an lcore id the freed mbufs land in this lcore's cache.
            let mut b = Burst::new();
            mp.alloc_bulk(&mut b, 8).unwrap();
            b.clear();
            together.wait();
            (lcore, seen, pinned, mp.cache_len(lcore))
        })
        .expect("spawn worker");
        workers.push((cpu, w));
    }
    let mut lcores = Vec::new();
    for (cpu, w) in workers {
        let reported = w.lcore();
        let (lcore, seen, pinned, cached) = w.join().unwrap();
        assert_eq!(lcore, reported);
        assert_eq!(seen, Some(lcore), "the worker sees its own lcore id");
        assert_eq!(pinned, vec![cpu], "the worker runs only on its CPU");
        assert!(cached > 0, "freed mbufs went to the lcore's mempool cache");
        assert_ne!(Some(lcore), main_lcore);
        lcores.push(lcore);
    }
    assert_ne!(lcores[0], lcores[1], "each worker has its own lcore id");
}

#[test]
fn a_worker_on_a_missing_cpu_is_refused() {
    let e = spawn_worker(eal(), "nope", 4096, |_| ()).unwrap_err();
    assert!(matches!(e, Error::NoSuchCpu { cpu: 4096, .. }), "{e:?}");
}

/// The CPUs the calling thread may run on.
fn core_affinity_now() -> Vec<usize> {
    // SAFETY-free: sched_getaffinity via /proc is enough for a test.
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("Cpus_allowed_list:"))
        .unwrap();
    parse_cpu_list(line.split(':').nth(1).unwrap().trim())
}

fn parse_cpu_list(s: &str) -> Vec<usize> {
    s.split(',')
        .flat_map(|part| match part.split_once('-') {
            Some((a, b)) => (a.parse().unwrap()..=b.parse().unwrap()).collect::<Vec<usize>>(),
            None => vec![part.parse().unwrap()],
        })
        .collect()
}
