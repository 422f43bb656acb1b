//! Keeps a plugin's `.so` on the glibc baseline of the Envoy that loads it.
//!
//! The official Envoy 1.40 binary needs glibc 2.30 at most (the newest
//! `GLIBC_x.y` version it references), so it runs on hosts that old; a module
//! that needs a newer glibc would fail to load there ("version `GLIBC_2.34'
//! not found"). Rust's standard library, linked against the build machine's
//! glibc, binds five functions to versions newer than that:
//!
//! * `pthread_key_create`, `pthread_key_delete`, `pthread_setspecific`
//!   (`GLIBC_2.34`, when glibc moved them from `libpthread` into `libc`;
//!   thread-local destructors use them);
//! * `stat64`, `fstat64` (`GLIBC_2.33`, when they became real symbols; before,
//!   they were inline wrappers of `__xstat64` / `__fxstat64` with version 1).
//!
//! This module defines those five names, hidden (the module does not export
//! them, and nothing outside it binds to them), so that the standard library's
//! calls link to them instead of the C library's newest versions; each jumps
//! to the oldest version every glibc since 2.2.5 still exports (the same
//! functions, kept for old binaries). In an Envoy process the `pthread_*`
//! ones resolve in `libpthread.so.0` on glibc < 2.34 (Envoy links it) and in
//! `libc.so.6` after. Weak references (`statx`, `gettid`) are not bound:
//! the standard library checks for them at run time.
//!
//! `e2e/tests/native_symbols.rs` checks every `.so` against the Envoy binary:
//! a newer standard library that needs another new symbol fails it.

// x86-64 System V calling convention: arguments in rdi, rsi, rdx. Intel syntax.
#[cfg(all(target_os = "linux", target_env = "gnu", target_arch = "x86_64"))]
core::arch::global_asm!(
    // The oldest versions, under names of their own (an undefined name bound to a version).
    ".symver gateway_glibc_pthread_key_create, pthread_key_create@GLIBC_2.2.5",
    ".symver gateway_glibc_pthread_key_delete, pthread_key_delete@GLIBC_2.2.5",
    ".symver gateway_glibc_pthread_setspecific, pthread_setspecific@GLIBC_2.2.5",
    ".symver gateway_glibc_xstat64, __xstat64@GLIBC_2.2.5",
    ".symver gateway_glibc_fxstat64, __fxstat64@GLIBC_2.2.5",
    ".pushsection .text.gateway_glibc,\"ax\",@progbits",
    ".globl pthread_key_create",
    ".hidden pthread_key_create",
    ".type pthread_key_create, @function",
    "pthread_key_create:",
    "    jmp gateway_glibc_pthread_key_create@PLT",
    ".globl pthread_key_delete",
    ".hidden pthread_key_delete",
    ".type pthread_key_delete, @function",
    "pthread_key_delete:",
    "    jmp gateway_glibc_pthread_key_delete@PLT",
    ".globl pthread_setspecific",
    ".hidden pthread_setspecific",
    ".type pthread_setspecific, @function",
    "pthread_setspecific:",
    "    jmp gateway_glibc_pthread_setspecific@PLT",
    // stat64(path, buf) is __xstat64(1, path, buf): _STAT_VER_LINUX is 1 on x86-64.
    ".globl stat64",
    ".hidden stat64",
    ".type stat64, @function",
    "stat64:",
    "    mov rdx, rsi",
    "    mov rsi, rdi",
    "    mov edi, 1",
    "    jmp gateway_glibc_xstat64@PLT",
    // fstat64(fd, buf) is __fxstat64(1, fd, buf).
    ".globl fstat64",
    ".hidden fstat64",
    ".type fstat64, @function",
    "fstat64:",
    "    mov rdx, rsi",
    "    mov esi, edi",
    "    mov edi, 1",
    "    jmp gateway_glibc_fxstat64@PLT",
    ".popsection",
);
