//! The module's memory allocator (Wasm builds only).
//!
//! Every request allocates at least its [`Request`](crate::Request), and the
//! C library's `malloc`/`free`, which Rust uses by default on `wasm32-wasip1`,
//! cost about 1,200 + 350 Wasm instructions for that one allocation (counted
//! by `cargo xtask bench --work`). [`talc`] serves the same allocation in
//! about a third of that, which is most of what separates a plugin on this
//! SDK from a module written on `proxy-wasm` alone.
//!
//! talc takes its memory in chunks from the C library's `malloc` rather than
//! growing linear memory itself: the C library already owns the free space
//! between the module's data and the end of its initial memory (and still
//! serves its own few allocations from it), so borrowing from it keeps a VM
//! within its initial pages until the plugin really needs more. A chunk is
//! never handed back, as memory a Wasm VM has grown never shrinks anyway.
//!
//! A Proxy-Wasm VM runs one thread, so the allocator takes no lock.

use std::alloc::Layout;
use talc::{locking::AssumeUnlockable, OomHandler, Span, Talc, Talck};

#[global_allocator]
static ALLOCATOR: Talck<AssumeUnlockable, ChunksFromLibc> = Talc::new(ChunksFromLibc).lock();

/// How much talc asks the C library for at a time: the heap a plugin
/// usually needs, small enough to fit the free space of the initial memory.
const CHUNK: usize = 16 * 1024;

/// Room for talc's own bookkeeping in a chunk (its bins in the first chunk,
/// tags around each allocation).
const BOOKKEEPING: usize = 1024;

pub struct ChunksFromLibc;

extern "C" {
    fn malloc(size: usize) -> *mut u8;
}

impl OomHandler for ChunksFromLibc {
    fn handle_oom(talc: &mut Talc<Self>, layout: Layout) -> Result<(), ()> {
        let needed = layout.size().checked_add(layout.align()).and_then(|n| n.checked_add(BOOKKEEPING)).ok_or(())?;
        let size = needed.max(CHUNK);
        // SAFETY: plain C `malloc`; a null answer is handled below.
        let base = unsafe { malloc(size) };
        if base.is_null() {
            return Err(());
        }
        // SAFETY: the chunk is ours alone from here on: it is never freed or
        // used through the C library again.
        unsafe { talc.claim(Span::from_base_size(base, size)) }.map(|_| ())
    }
}
