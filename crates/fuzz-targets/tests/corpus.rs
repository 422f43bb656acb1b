//! Replays every saved fuzz input: `fuzz/corpus/<target>/` (what the fuzzers
//! found interesting, minimised) and `fuzz/regressions/<target>/` (inputs
//! that once crashed a target, kept so the bug stays fixed). Runs in
//! `cargo test` on the stable toolchain; writes one row per target to the
//! reliability table.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use e2e::reliability::Case;
use std::path::{Path, PathBuf};

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn every_saved_input_passes_its_target() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut failures = Vec::new();
    for (name, target) in gateway_fuzz_targets::TARGETS {
        let corpus = inputs(&fuzz.join("corpus").join(name));
        let regressions = inputs(&fuzz.join("regressions").join(name));
        let case = Case::start(
            "fuzz",
            &format!("{name}: replay of the saved corpus and crash reproducers (cargo test)"),
            "no input panics, traps or breaks a property",
        );
        let mut failed = Vec::new();
        for file in corpus.iter().chain(&regressions) {
            let data = std::fs::read(file).unwrap();
            if std::panic::catch_unwind(|| target(&data)).is_err() {
                failed.push(file.strip_prefix(&fuzz).unwrap_or(file).display().to_string());
            }
        }
        let total = (corpus.len() + regressions.len()) as u64;
        let text = format!(
            "{} corpus inputs, {} reproducers: {}",
            corpus.len(),
            regressions.len(),
            if failed.is_empty() { "all pass".to_string() } else { format!("FAILING {failed:?}") }
        );
        case.finish(total, &text, failed.is_empty() && !corpus.is_empty());
        if !failed.is_empty() || corpus.is_empty() {
            failures.push(format!("{name}: {text}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
