//! EAL argument errors. Its own test binary: EAL is once per process, and the bad arguments
//! must be tried in a process where EAL never initialised.

mod common;

use dpdk::{Eal, Error};

#[test]
fn bad_eal_arguments_return_an_error_with_dpdks_reason() {
    let mut bad = common::test_eal_args();
    bad.push("--no-such-eal-option".into());
    let e = Eal::init(&bad).unwrap_err();
    match &e {
        Error::Dpdk {
            op: "rte_eal_init",
            errno,
            reason,
        } => {
            assert_eq!(*errno, 22, "EINVAL");
            assert!(reason.contains("Invalid argument"), "{reason}");
        }
        other => panic!("unexpected {other:?}"),
    }

    let mut bad = common::test_eal_args();
    bad.extend(["--lcores".into(), "not-a-core-list".into()]);
    assert!(matches!(
        Eal::init(&bad),
        Err(Error::Dpdk {
            op: "rte_eal_init",
            ..
        })
    ));

    // Still nothing initialised: the refusal is reported, not a panic or an abort.
    assert_eq!(dpdk::current_lcore(), None);
}
