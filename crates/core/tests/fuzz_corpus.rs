//! The committed fuzz corpus of the packet path (`fuzz/corpus/packet`), replayed through the
//! harness cargo-fuzz runs, so what fuzzing found stays fixed in every CI run.

#[test]
fn the_packet_corpus_replays_without_a_failure() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/packet");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect("fuzz/corpus/packet") {
        let path = e.unwrap().path();
        rvs_core::fuzzing::packet(&std::fs::read(&path).unwrap());
        n += 1;
    }
    assert!(n >= 10, "the corpus has its seeds ({n})");
}

#[test]
fn the_sync_corpus_replays_without_a_failure() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/sync");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect("fuzz/corpus/sync") {
        rvs_core::fuzzing::sync(&std::fs::read(e.unwrap().path()).unwrap());
        n += 1;
    }
    assert!(n >= 6, "the corpus has its seeds ({n})");
}
