//! Fragmentation on send (RFC 791 2.3 and 3.2; RFC 8200 4.5): where the
//! pieces of a payload go. The version writes each piece's header (IPv4
//! flags and offset, or an IPv6 fragment header); the cutting is shared.

/// The pieces of a `len`-byte payload for a link whose MTU leaves
/// `room` bytes after each fragment's headers: `(offset, length, more)`,
/// every piece but the last a multiple of 8 bytes long, in order (as
/// Linux sends them).
pub fn plan(len: usize, room: usize) -> impl Iterator<Item = (usize, usize, bool)> {
    let step = (room & !7).max(8);
    let mut off = 0;
    let mut done = len == 0;
    core::iter::from_fn(move || {
        if done {
            return None;
        }
        let n = step.min(len - off);
        let piece = (off, n, off + n < len);
        off += n;
        done = off >= len;
        Some(piece)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn pieces() {
        let v: Vec<_> = plan(3000, 1480).collect();
        assert_eq!(
            v,
            vec![(0, 1480, true), (1480, 1480, true), (2960, 40, false)]
        );
        let v: Vec<_> = plan(100, 1475).collect();
        assert_eq!(v, vec![(0, 100, false)]);
        let v: Vec<_> = plan(20, 13).collect();
        assert_eq!(v, vec![(0, 8, true), (8, 8, true), (16, 4, false)]);
    }

    proptest! {
        #[test]
        fn covers_exactly(len in 1usize..70000, room in 8usize..9000) {
            let mut next = 0;
            let v: Vec<_> = plan(len, room).collect();
            for (i, &(o, n, m)) in v.iter().enumerate() {
                prop_assert_eq!(o, next);
                prop_assert!(n <= room);
                prop_assert_eq!(m, i + 1 < v.len());
                if m { prop_assert_eq!(n % 8, 0); }
                next += n;
            }
            prop_assert_eq!(next, len);
        }
    }
}
