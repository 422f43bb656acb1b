//! Every command answers `-h` and `--help` at once: exit 0, its usage on
//! stdout, and no work. The binary runs with an empty `PATH`, so a command
//! that went on to install, build or serve would fail at its first `cargo`,
//! `rustup` or `apt-get` instead of exiting 0.

use std::process::{Command, Output};

const COMMANDS: &[&str] = &["setup", "build", "new", "test", "up", "bench", "package", "push", "pull", "reliability"];

fn xtask(args: &[&str]) -> Output {
    let empty = std::env::temp_dir().join("xtask-help-test-empty-path");
    let _ = std::fs::create_dir_all(&empty);
    let run = Command::new(env!("CARGO_BIN_EXE_xtask")).args(args).env("PATH", &empty).output();
    run.unwrap_or_else(|err| panic!("cannot run xtask {args:?}: {err}"))
}

fn assert_help(args: &[&str], usage: &str) {
    let out = xtask(args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "xtask {args:?} exited {}:\n{stdout}\n{stderr}", out.status);
    assert!(stdout.contains(usage), "xtask {args:?} printed no {usage:?}:\n{stdout}\n{stderr}");
    assert!(!stderr.contains("$ "), "xtask {args:?} ran a command:\n{stderr}");
}

#[test]
fn top_level_help_lists_every_command() {
    for flag in ["-h", "--help"] {
        assert_help(&[flag], "Usage: cargo xtask <COMMAND>");
        let stdout = String::from_utf8_lossy(&xtask(&[flag]).stdout).into_owned();
        for command in COMMANDS {
            assert!(stdout.contains(&format!("  {command} ")), "{command} missing from the help:\n{stdout}");
        }
    }
}

#[test]
fn every_command_answers_help_without_work() {
    for command in COMMANDS {
        for flag in ["-h", "--help"] {
            assert_help(&[command, flag], &format!("Usage: cargo xtask {command}"));
        }
    }
    // Also after other arguments: a name is not taken for `--help`.
    assert_help(&["build", "mock", "--help"], "Usage: cargo xtask build");
    assert_help(&["new", "header-echo", "--help"], "Usage: cargo xtask new");
    assert_help(&["bench", "--smoke", "--help"], "Usage: cargo xtask bench");
    assert_help(&["help", "up"], "Usage: cargo xtask up");
}

#[test]
fn wrong_arguments_are_refused_before_any_work() {
    for args in [
        &["frobnicate"][..],
        &[],
        &["new"],
        &["new", "a", "b"],
        &["bench", "--rounds", "many"],
        &["bench", "--no-such-option"],
        &["up", "--port", "http"],
        &["push", "mock"],
        &["push", "--all", "a", "b", "c"],
        &["reliability", "--windows"],
    ] {
        let out = xtask(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "xtask {args:?} succeeded");
        assert!(!stderr.contains("$ "), "xtask {args:?} ran a command before refusing:\n{stderr}");
        assert!(
            stderr.contains("error:") || stderr.contains("Usage:") || stderr.contains("xtask: push"),
            "xtask {args:?} said:\n{stderr}"
        );
    }
}
