//! A global allocator that fails single allocations above a cap (1 GiB in a child,
//! `FUZZ_MAX_ALLOC` bytes to change it) as an exhausted machine would, so that a size
//! taken from a file is caught even where this machine could have satisfied it (with
//! `FUZZ_BACKTRACE=1` each refusal prints where it came from). The address-space limit
//! the parent sets stays the backstop for many smaller allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Largest single allocation allowed (no cap until [`arm`] is called).
static CAP: AtomicUsize = AtomicUsize::new(usize::MAX);
/// Set while a report is being written (its own allocations are not capped).
static REPORTING: AtomicBool = AtomicBool::new(false);

/// The capped allocator; every allocation of the fuzz binary goes through it.
pub struct Capped;

#[global_allocator]
static GLOBAL: Capped = Capped;

/// Start refusing allocations above the cap.
pub fn arm() {
    let cap = std::env::var("FUZZ_MAX_ALLOC")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1usize << 30);
    CAP.store(cap, Ordering::Relaxed);
}

/// Refuse a request over the cap: a null pointer, as when memory is exhausted. An
/// infallible allocation then aborts (std prints "memory allocation of N bytes
/// failed"), which is a crash; a fallible one (`try_reserve`) gets its error, which is
/// the caller handling a size it cannot have.
#[cold]
fn refuse(size: usize) -> *mut u8 {
    if std::env::var_os("FUZZ_BACKTRACE").is_some() && !REPORTING.swap(true, Ordering::SeqCst) {
        // A fixed buffer: the report must not need the allocation that failed.
        let mut buf = [0u8; 128];
        let mut w = &mut buf[..];
        let _ = writeln!(w, "fuzz: refused an allocation of {size} bytes, from:");
        let n = 128 - w.len();
        let _ = std::io::stderr().write_all(&buf[..n]);
        let bt = std::backtrace::Backtrace::force_capture();
        let _ = writeln!(std::io::stderr(), "{bt}");
        REPORTING.store(false, Ordering::SeqCst);
    }
    std::ptr::null_mut()
}

fn over_cap(size: usize) -> bool {
    size > CAP.load(Ordering::Relaxed) && !REPORTING.load(Ordering::Relaxed)
}

unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if over_cap(layout.size()) {
            return refuse(layout.size());
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if over_cap(layout.size()) {
            return refuse(layout.size());
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if over_cap(new_size) {
            return refuse(new_size);
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}
