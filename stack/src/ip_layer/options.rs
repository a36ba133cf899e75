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

#[cfg(test)]
mod tests {
    use super::*;

    const US: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const OTHER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 9);
    const MS: u32 = 0x0102_0304;

    fn ours(a: Ipv4Addr) -> bool {
        a == US
    }

    fn rec() -> Recorder<'static> {
        Recorder {
            addr: US,
            ms: MS,
            is_local: &ours,
        }
    }

    /// Receive, then answer, as the stack does: the echoed options.
    fn answer(opts: &[u8]) -> Option<Vec<u8>> {
        let mut rx = opts.to_vec();
        let c = compile(&mut rx, Some(&rec())).ok()?;
        let mut out = [0xeeu8; MAX_LEN];
        let n = echo(&rx, &c, &rec(), &mut out)?;
        Some(out[..n].to_vec())
    }

    fn check(opts: &[u8]) -> Result<Compiled, usize> {
        compile(&mut opts.to_vec(), None)
    }

    #[test]
    fn timestamps_are_ms_of_day_with_a_wall_clock() {
        // 2023-11-14 22:13:20 UTC.
        let wall = 1_700_000_000 * 1_000_000_000;
        let now = Instant::from_millis(1_500);
        assert_eq!(timestamp(Some(wall), now), 80_001_500);
        // A day later, the same time of day.
        let later = Instant::from_millis(86_400_000 + 1_500);
        assert_eq!(timestamp(Some(wall), later), 80_001_500);
        // Without one: the high-order bit says "not ms since midnight UT".
        assert_eq!(timestamp(None, now), 0x8000_0000 | 1_500);
    }

    #[test]
    fn record_route_comes_back_with_our_address_in_and_out() {
        // What IP-2.1 sends: room for 4 addresses, then end of list.
        let mut rr = vec![7, 19, 4];
        rr.extend([0; 16]);
        rr.push(0);
        let got = answer(&rr).unwrap();
        let mut want = vec![7, 19, 12, 192, 0, 2, 1, 192, 0, 2, 1];
        want.extend([0; 8]);
        want.push(0); // padding to 20
        assert_eq!(got, want);
        // Full: copied as it came.
        let mut full = vec![7, 11, 12, 10, 0, 0, 1, 10, 0, 0, 2, 0];
        assert_eq!(answer(&full).unwrap(), full);
        // Room for the entry on the way in but not on the way out: no
        // answer at all (Linux's ip_options_echo fails).
        full[1] = 9;
        full[2] = 4;
        full.truncate(9);
        full.extend([0, 0, 0]);
        assert_eq!(answer(&full), None);
    }

    #[test]
    fn timestamp_option_by_flag() {
        // Timestamps only (IP-2.2): ours in, ours out.
        let mut ts = vec![68, 20, 5, 0];
        ts.extend([0; 16]);
        let got = answer(&ts).unwrap();
        let t = MS.to_be_bytes();
        let mut want = vec![68, 20, 13, 0];
        want.extend(t);
        want.extend(t);
        want.extend([0; 8]);
        assert_eq!(got, want);
        // Address and timestamp pairs.
        let mut ta = vec![68, 20, 5, 1];
        ta.extend([0; 16]);
        let got = answer(&ta).unwrap();
        let mut want = vec![68, 20, 21, 1];
        for _ in 0..2 {
            want.extend(US.octets());
            want.extend(t);
        }
        assert_eq!(got, want);
        // Prespecified: only the slots naming us are filled.
        let mut pre = vec![68, 28, 5, 3];
        for a in [US, OTHER, US] {
            pre.extend(a.octets());
            pre.extend([0; 4]);
        }
        let got = answer(&pre).unwrap();
        assert_eq!(got[2], 13, "our slot filled, the next names another host");
        assert_eq!(got[8..12], t);
        assert_eq!(got[16..20], [0; 4]);
        assert_eq!(got[24..28], [0; 4]);
        // Full: the overflow count goes up on the way in, not the times.
        let mut full = vec![68, 8, 9, 0x20];
        full.extend([9; 4]);
        assert_eq!(answer(&full).unwrap(), vec![68, 8, 9, 0x30, 9, 9, 9, 9]);
        full[3] = 0xf0;
        assert_eq!(check(&full), Err(20 + 3), "overflow count would wrap");
    }

    #[test]
    fn bad_options_point_where_linux_points() {
        assert_eq!(check(&[7, 3, 3, 0]), Err(22), "RR pointer below 4");
        assert_eq!(check(&[7, 2, 0, 0]), Err(21), "RR too short");
        assert_eq!(check(&[7, 9, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0]), Err(22));
        assert_eq!(check(&[1, 7, 3, 4, 7, 3, 4, 0]), Err(24), "second RR");
        assert_eq!(check(&[68, 3, 5, 0]), Err(21), "TS too short");
        assert_eq!(check(&[68, 4, 4, 0]), Err(22), "TS pointer below 5");
        assert_eq!(
            check(&[68, 8, 5, 1, 0, 0, 0, 0]),
            Err(22),
            "no room for a pair"
        );
        assert_eq!(check(&[0x1e, 40, 0, 0]), Err(20), "length overruns");
        assert_eq!(check(&[131, 3, 2, 0]), Err(22), "source route pointer");
        assert!(check(&[131, 3, 4, 0]).unwrap().source_route);
        // Unknown options, NOPs and bytes after end of list are ignored,
        // and nothing is echoed for them.
        let c = check(&[0x1e, 4, 0, 0, 1, 1, 0, 0x55]).unwrap();
        assert_eq!(c, Compiled::default());
        assert_eq!(answer(&[0x1e, 4, 0, 0]), Some(vec![]));
        // Without a recorder nothing is written.
        let mut rr = vec![7, 7, 4, 0, 0, 0, 0, 0];
        compile(&mut rr, None).unwrap();
        assert_eq!(rr, [7, 7, 8, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn later_fragments_keep_only_copied_options() {
        let opts = [
            7, 7, 8, 1, 2, 3, 4, 1, 0x82, 3, 9, 1, 68, 8, 9, 0, 1, 2, 3, 4,
        ];
        let mut out = [0u8; MAX_LEN];
        let n = for_later_fragments(&opts, &mut out);
        assert_eq!(
            out[..n],
            [
                1, 1, 1, 1, 1, 1, 1, 1, 0x82, 3, 9, 1, 1, 1, 1, 1, 1, 1, 1, 1
            ]
        );
    }

    proptest::proptest! {
        #[test]
        fn random_options_never_panic(
            opts in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..=MAX_LEN),
            kinds in proptest::collection::vec(0usize..4, 0..4),
        ) {
            // Bias towards the options acted on.
            let mut opts = opts;
            for (i, k) in kinds.into_iter().enumerate() {
                if let Some(b) = opts.get_mut(i * 8) {
                    *b = [7, 68, 131, 1][k];
                }
            }
            let checked = check(&opts);
            let mut rx = opts.clone();
            let c = compile(&mut rx, Some(&rec()));
            proptest::prop_assert_eq!(checked.is_ok(), c.is_ok());
            if let Ok(c) = c {
                let mut out = [0u8; MAX_LEN];
                if let Some(n) = echo(&rx, &c, &rec(), &mut out) {
                    proptest::prop_assert!(n <= MAX_LEN && n % 4 == 0);
                }
            }
            let mut out = [0u8; MAX_LEN];
            proptest::prop_assert_eq!(for_later_fragments(&opts, &mut out), opts.len());
        }
    }
}
