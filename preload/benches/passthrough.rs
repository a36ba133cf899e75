//! What the shim costs a call on a descriptor that is not shunt's: a
//! 1-byte `write` then `read` on a pipe through the hooks, against the same
//! pair through libc's real functions (the pointers the hooks call) and
//! through raw system calls. Best of several rounds, in ns per call.
//!
//!   BENCH passthrough-overhead-ns <hook - libc, per call> ns
//!   RATIO passthrough-hook-vs-libc <hook time / libc time>

use std::hint::black_box;
use std::time::Instant;

use rustix::fd::AsRawFd;

const CALLS: usize = 400_000;
const ROUNDS: usize = 7;

/// Best time per (write + read) pair over `ROUNDS`.
fn best(mut pair: impl FnMut()) -> f64 {
    for _ in 0..CALLS / 10 {
        pair();
    }
    (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..CALLS {
                pair();
            }
            t.elapsed().as_nanos() as f64 / CALLS as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let (r, w) = rustix::pipe::pipe().expect("pipe");
    let (rfd, wfd) = (r.as_raw_fd(), w.as_raw_fd());
    let real_read = shunt::real::read().expect("libc read");
    let real_write = shunt::real::write().expect("libc write");
    let mut buf = [0u8; 1];
    let b = buf.as_mut_ptr().cast::<core::ffi::c_void>();

    let hook = best(|| {
        // SAFETY: a pipe we own and a 1-byte buffer.
        unsafe {
            black_box(shunt::hooks::write(black_box(wfd), b"x".as_ptr().cast(), 1));
            black_box(shunt::hooks::read(black_box(rfd), b, 1));
        }
    });
    let libc = best(|| {
        // SAFETY: as above, through libc's own functions.
        unsafe {
            black_box(real_write(black_box(wfd), b"x".as_ptr().cast(), 1));
            black_box(real_read(black_box(rfd), b, 1));
        }
    });
    let raw = best(|| {
        black_box(rustix::io::write(&w, b"x").ok());
        black_box(rustix::io::read(&r, &mut buf).ok());
    });
    // The lookup alone, for the record: one load per call.
    let t = Instant::now();
    let mut acc = 0u32;
    for i in 0..CALLS * 10 {
        acc = acc.wrapping_add(shunt::fdtable::get(black_box((i & 1023) as i32)));
    }
    black_box(acc);
    let lookup = t.elapsed().as_nanos() as f64 / (CALLS * 10) as f64;

    let per_call = |pair: f64| pair / 2.0;
    let overhead = (per_call(hook) - per_call(libc)).max(0.0);
    println!("BENCH passthrough-hook-call-ns {:.1} ns", per_call(hook));
    println!("BENCH passthrough-libc-call-ns {:.1} ns", per_call(libc));
    println!("BENCH passthrough-raw-syscall-ns {:.1} ns", per_call(raw));
    println!("BENCH passthrough-fdtable-lookup-ns {lookup:.2} ns");
    println!("BENCH passthrough-overhead-ns {overhead:.1} ns");
    println!("RATIO passthrough-hook-vs-libc {:.3}", hook / libc);
}
