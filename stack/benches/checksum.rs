//! Internet checksum throughput against the byte-by-byte RFC 1071 loop,
//! in the project's one-line format (`BENCH name value unit`, `RATIO`).
//! No framework: `cargo bench -p shunt-stack --bench checksum`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use shunt_stack::wire::checksum::checksum;

fn naive(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in bytes.chunks(2) {
        let hi = u32::from(c[0]) << 8;
        let lo = c.get(1).map_or(0, |&b| u32::from(b));
        sum += hi | lo;
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Gbit/s of `f` over `buf`, measured for about `budget`.
fn rate(buf: &[u8], budget: Duration, f: impl Fn(&[u8]) -> u16) -> f64 {
    let mut iters = 0u64;
    let start = Instant::now();
    while start.elapsed() < budget {
        for _ in 0..64 {
            black_box(f(black_box(buf)));
        }
        iters += 64;
    }
    (iters as f64 * buf.len() as f64 * 8.0) / start.elapsed().as_secs_f64() / 1e9
}

fn main() {
    let budget = Duration::from_millis(300);
    for size in [64usize, 1500, 65536] {
        let buf: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
        assert_eq!(checksum(&buf), naive(&buf));
        let fast = rate(&buf, budget, checksum);
        let slow = rate(&buf, budget, naive);
        println!("BENCH checksum-{size}B {fast:.2} Gbit/s");
        println!("RATIO checksum-{size}B-vs-naive {:.2}", fast / slow);
    }
}
