//! The committed fuzz corpora of the config parser and the control protocol
//! (`fuzz/corpus/config`, `fuzz/corpus/control`), replayed through the harnesses cargo-fuzz
//! runs, so what fuzzing found stays fixed in every CI run.

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        run(&std::fs::read(e.unwrap().path()).unwrap());
        n += 1;
    }
    n
}

#[test]
fn the_config_corpus_replays_without_a_failure() {
    assert!(replay("config", rvs_api::fuzzing::config) >= 4);
}

#[test]
fn the_control_corpus_replays_without_a_failure() {
    assert!(replay("control", rvs_api::fuzzing::control) >= 5);
}
