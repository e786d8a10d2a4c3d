//! Against the kernel, in a network namespace of the test thread's own (needs root): nothing
//! here touches the machine's interfaces.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use rvs_twin::{AddressEvents, Error, Netlink};

/// Moves the calling test thread into a new, empty network namespace (with only `lo`).
fn own_namespace() {
    // SAFETY: CLONE_NEWNET changes only this thread's network namespace; it shares no file
    // table or memory state that other threads rely on.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }
        .expect("unshare(CLONE_NEWNET) needs root");
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn addresses_are_added_listed_watched_and_removed() {
    own_namespace();
    let mut nl = Netlink::new().unwrap();
    let lo = nl.link_index("lo").unwrap();
    nl.set_up(lo, 65535).unwrap();
    let mut events = AddressEvents::new(Duration::from_millis(100)).unwrap();
    nl.add_address(lo, ip("10.77.0.1"), 24).unwrap();
    nl.add_address(lo, ip("10.77.0.1"), 24)
        .expect("adding an address twice is no error");
    nl.add_address(lo, ip("2001:db8:77::1"), 64).unwrap();
    let held = nl.addresses().unwrap();
    let v4 = held.iter().find(|a| a.addr == ip("10.77.0.1")).expect("listed");
    assert_eq!((v4.index, v4.prefix_len, v4.tentative), (lo, 24, false));
    let v6 = held
        .iter()
        .find(|a| a.addr == ip("2001:db8:77::1"))
        .expect("listed");
    assert!(!v6.tentative, "added without duplicate address detection");

    let start = Instant::now();
    let mut seen = false;
    while !seen && start.elapsed() < Duration::from_secs(2) {
        seen = events.wait().unwrap();
    }
    assert!(seen, "the kernel's address events arrive");

    nl.del_address(lo, ip("10.77.0.1"), 24).unwrap();
    assert!(!nl.addresses().unwrap().iter().any(|a| a.addr == ip("10.77.0.1")));
    match nl.del_address(lo, ip("10.77.0.1"), 24) {
        Err(Error::Kernel { what, errno }) => {
            assert!(what.contains("removing 10.77.0.1/24"), "{what}");
            assert_eq!(errno.raw_os_error(), Some(99), "EADDRNOTAVAIL: {errno}");
        }
        other => panic!("removing an absent address is the kernel's error: {other:?}"),
    }
}

#[test]
fn an_unknown_interface_is_named() {
    own_namespace();
    let mut nl = Netlink::new().unwrap();
    match nl.link_index("rvs-nosuch0") {
        Err(e @ Error::NoSuchInterface(_)) => assert!(e.to_string().contains("rvs-nosuch0")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn waiting_without_events_returns_after_the_tick() {
    own_namespace();
    let mut events = AddressEvents::new(Duration::from_millis(50)).unwrap();
    let start = Instant::now();
    assert!(!events.wait().unwrap());
    assert!(start.elapsed() < Duration::from_secs(1));
}
