//! The IPv4 options a host acts on (RFC 791 3.1; RFC 1122 3.2.1.8 and
//! 3.2.2.6), as Linux does: [`compile`] is `ip_options_compile` on
//! receive (the checks behind a parameter problem, and the entries a
//! Record Route or Timestamp option gets on its way in), [`echo`] is
//! `ip_options_echo` with `ip_options_build` (the options an echo or
//! timestamp reply carries back, with the entries made on the way out).
//! So a Record Route option comes back with our address twice, as `ping
//! -R` shows against Linux. Source routes are not echoed: the datagram is
//! dropped on receipt (`accept_source_route` 0).

use crate::ip::Ipv4Addr;
use crate::time::Instant;
use crate::wire::ipv4::{HEADER_LEN, Ipv4Options, option};

/// The most option bytes a header holds.
pub const MAX_LEN: usize = 40;

/// Timestamp option flags (RFC 791: the low four bits of the fourth byte).
const TS_ONLY: u8 = 0;
const TS_AND_ADDR: u8 = 1;
const TS_PRESPEC: u8 = 3;

/// What [`compile`] found: where the options that [`echo`] copies are,
/// and which of their entries the answer must fill.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Compiled {
    /// Offset of the Record Route option in the option bytes.
    rr: Option<usize>,
    rr_needaddr: bool,
    /// Offset of the Timestamp option.
    ts: Option<usize>,
    ts_needaddr: bool,
    ts_needtime: bool,
    /// A loose or strict source route is present.
    pub source_route: bool,
}

/// The entries a host writes into options on the way in or out.
#[derive(Clone, Copy)]
pub struct Recorder<'a> {
    /// On receive: the address the datagram reached us at (Linux's
    /// `spec_dst`); on send: the reply's source address.
    pub addr: Ipv4Addr,
    /// The time to record: see [`timestamp`].
    pub ms: u32,
    /// Whether an address is ours (a prespecified timestamp slot naming it
    /// is for us to fill; Linux: `inet_addr_type() != RTN_UNICAST`).
    pub is_local: &'a dyn Fn(Ipv4Addr) -> bool,
}

/// The value for a timestamp: milliseconds since midnight UT when the
/// wall clock is known (`wall_at_zero`: Unix time in nanoseconds at
/// [`Instant::ZERO`]), else, as RFC 791 and RFC 792 allow, any time with
/// the high-order bit set (here the monotonic milliseconds).
pub fn timestamp(wall_at_zero: Option<u64>, now: Instant) -> u32 {
    const DAY_MS: u64 = 86_400_000;
    match wall_at_zero {
        Some(w) => (w.wrapping_add(now.as_nanos()) / 1_000_000 % DAY_MS) as u32,
        None => (now.as_nanos() / 1_000_000) as u32 | 0x8000_0000,
    }
}

/// Checks the option bytes of a received header (`opts`, at most
/// [`MAX_LEN`]) and, given a recorder, writes our entries into them as
/// Linux does on receive. `Err(pointer)`: the offset from the start of the
/// IP header of the byte a parameter problem points at.
pub fn compile(opts: &mut [u8], rec: Option<&Recorder<'_>>) -> Result<Compiled, usize> {
    let mut orig = [0u8; MAX_LEN];
    let n = opts.len().min(MAX_LEN);
    orig[..n].copy_from_slice(&opts[..n]);
    let mut c = Compiled::default();
    for o in Ipv4Options::new(&orig[..n]) {
        let o = o.map_err(|e| match e {
            crate::wire::ParseError::Malformed { offset } => offset,
            _ => HEADER_LEN,
        })?;
        let at = o.offset;
        let s = at - HEADER_LEN;
        let len = o.data.len() + 2;
        match o.kind {
            option::LOOSE_SOURCE_ROUTE | option::STRICT_SOURCE_ROUTE => {
                if len < 3 {
                    return Err(at + 1);
                }
                if o.data[0] < 4 {
                    return Err(at + 2);
                }
                if c.source_route {
                    return Err(at);
                }
                c.source_route = true;
            }
            option::RECORD_ROUTE => {
                if c.rr.is_some() {
                    return Err(at);
                }
                if len < 3 {
                    return Err(at + 1);
                }
                let ptr = usize::from(o.data[0]);
                if ptr < 4 {
                    return Err(at + 2);
                }
                if ptr <= len {
                    if ptr + 3 > len {
                        return Err(at + 2);
                    }
                    if let Some(r) = rec {
                        opts[s + ptr - 1..s + ptr + 3].copy_from_slice(&r.addr.octets());
                    }
                    opts[s + 2] += 4;
                    c.rr_needaddr = true;
                }
                c.rr = Some(s);
            }
            option::TIMESTAMP => {
                if c.ts.is_some() {
                    return Err(at);
                }
                if len < 4 {
                    return Err(at + 1);
                }
                let (ptr, flags) = (usize::from(o.data[0]), o.data[1]);
                if ptr < 5 {
                    return Err(at + 2);
                }
                if ptr <= len {
                    if ptr + 3 > len {
                        return Err(at + 2);
                    }
                    let mut time_at = None;
                    match flags & 0xf {
                        TS_ONLY => {
                            time_at = Some(ptr - 1);
                            c.ts_needtime = true;
                            opts[s + 2] += 4;
                        }
                        TS_AND_ADDR => {
                            if ptr + 7 > len {
                                return Err(at + 2);
                            }
                            if let Some(r) = rec {
                                opts[s + ptr - 1..s + ptr + 3].copy_from_slice(&r.addr.octets());
                            }
                            time_at = Some(ptr + 3);
                            c.ts_needaddr = true;
                            c.ts_needtime = true;
                            opts[s + 2] += 8;
                        }
                        TS_PRESPEC => {
                            if ptr + 7 > len {
                                return Err(at + 2);
                            }
                            let named = addr_at(&orig, s + ptr - 1);
                            if rec.is_some_and(|r| (r.is_local)(named)) {
                                time_at = Some(ptr + 3);
                                c.ts_needtime = true;
                                opts[s + 2] += 8;
                            }
                        }
                        // Unknown flags: left alone on receive.
                        _ => {}
                    }
                    if let (Some(r), Some(t)) = (rec, time_at) {
                        opts[s + t..s + t + 4].copy_from_slice(&r.ms.to_be_bytes());
                    }
                } else if flags & 0xf != TS_PRESPEC {
                    // Full: the overflow count goes up (RFC 791).
                    let overflow = flags >> 4;
                    if overflow == 15 {
                        return Err(at + 3);
                    }
                    if rec.is_some() {
                        opts[s + 3] = (flags & 0xf) | ((overflow + 1) << 4);
                    }
                }
                c.ts = Some(s);
            }
            _ => {}
        }
    }
    Ok(c)
}

fn addr_at(b: &[u8], i: usize) -> Ipv4Addr {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(i..i + 4) {
        a.copy_from_slice(s);
    }
    Ipv4Addr::from_octets(a)
}

/// The options of an answer to a datagram whose options `rx` were
/// [`compile`]d (with a recorder) into `c`: its Record Route and Timestamp
/// options with our entries on the way out, padded with end-of-list to a
/// whole word. `out` receives them; returns their length, or `None` when
/// Linux sends no answer (an entry that no longer fits).
pub fn echo(rx: &[u8], c: &Compiled, rec: &Recorder<'_>, out: &mut [u8; MAX_LEN]) -> Option<usize> {
    let mut n = 0;
    if let Some(s) = c.rr {
        let len = usize::from(*rx.get(s + 1)?);
        let ptr = usize::from(*rx.get(s + 2)?);
        out.get_mut(n..n + len)?
            .copy_from_slice(rx.get(s..s + len)?);
        if c.rr_needaddr && ptr <= len {
            if ptr + 3 > len {
                return None;
            }
            out[n + 2] = (ptr + 4) as u8;
            out[n + ptr - 1..n + ptr + 3].copy_from_slice(&rec.addr.octets());
        }
        n += len;
    }
    if let Some(s) = c.ts {
        let len = usize::from(*rx.get(s + 1)?);
        let mut ptr = usize::from(*rx.get(s + 2)?);
        out.get_mut(n..n + len)?
            .copy_from_slice(rx.get(s..s + len)?);
        if ptr <= len {
            let mut needaddr = false;
            let mut needtime = false;
            if c.ts_needaddr {
                if ptr + 3 > len {
                    return None;
                }
                needaddr = true;
                ptr += 4;
            }
            if c.ts_needtime {
                if ptr + 3 > len {
                    return None;
                }
                if out[n + 3] & 0xf != TS_PRESPEC {
                    needtime = true;
                    ptr += 4;
                } else if ptr + 7 <= len && (rec.is_local)(addr_at(&out[..], n + ptr - 1)) {
                    needtime = true;
                    ptr += 8;
                }
            }
            out[n + 2] = ptr as u8;
            if needaddr {
                out[n + ptr - 9..n + ptr - 5].copy_from_slice(&rec.addr.octets());
            }
            if needtime {
                out[n + ptr - 5..n + ptr - 1].copy_from_slice(&rec.ms.to_be_bytes());
            }
        }
        n += len;
    }
    let padded = n.div_ceil(4) * 4;
    out.get_mut(n..padded)?.fill(option::END);
    Some(padded)
}

/// The options of a fragment after the first: the ones without the
/// copied flag become no-operations, so every fragment's header keeps the
/// first one's length (Linux's `ip_options_fragment`).
pub fn for_later_fragments(opts: &[u8], out: &mut [u8; MAX_LEN]) -> usize {
    let n = opts.len().min(MAX_LEN);
    out[..n].copy_from_slice(&opts[..n]);
    let mut i = 0;
    while i < n {
        match out[i] {
            option::END => break,
            option::NOP => i += 1,
            kind => {
                let len = usize::from(out.get(i + 1).copied().unwrap_or(0));
                if len < 2 || i + len > n {
                    break;
                }
                if kind & 0x80 == 0 {
                    out[i..i + len].fill(option::NOP);
                }
                i += len;
            }
        }
    }
    n
}
