//! `gateway-bench -h` / `--help` (and each subcommand's) answer at once with exit 0
//! and the usage, and do nothing else: no file is read or written, no
//! process started (an empty `PATH` would make any command fail).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

fn assert_help(args: &[&str]) {
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gateway-bench")).args(args).env("PATH", empty.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{args:?}: {}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("Usage: gateway-bench"), "{args:?}:\n{stdout}");
}

#[test]
fn help_answers_at_once() {
    for flag in ["-h", "--help"] {
        assert_help(&[flag]);
        assert_help(&["--smoke", flag]);
    }
}
