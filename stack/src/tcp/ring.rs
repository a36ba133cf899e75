//! A byte ring: the send and receive buffers. Allocated once per
//! connection (and regrown, rarely, when the buffer is autotuned), never
//! per segment. Data is addressed by its offset from the head, so the
//! receive side can write out-of-order segments straight to their final
//! place beyond the readable bytes (one copy from the frame, none later).

#[derive(Clone, Debug, Default)]
pub struct Ring {
    buf: Vec<u8>,
    head: usize,
    len: usize,
}

impl Ring {
    pub fn with_capacity(cap: usize) -> Ring {
        Ring {
            buf: vec![0; cap],
            head: 0,
            len: 0,
        }
    }
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }
    /// Bytes held (from the head).
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn free(&self) -> usize {
        self.buf.len() - self.len
    }

    /// The index of `head + off` for `off <= capacity`: a compare, not a
    /// division (done several times per segment).
    #[inline]
    fn index(&self, off: usize) -> usize {
        let i = self.head + off;
        if i >= self.buf.len() {
            i - self.buf.len()
        } else {
            i
        }
    }

    /// Copies `data` to `off` bytes past the head, as far as the capacity
    /// allows, without changing the length. Returns the bytes written.
    pub fn write_at(&mut self, off: usize, data: &[u8]) -> usize {
        let cap = self.buf.len();
        if off >= cap {
            return 0;
        }
        let n = data.len().min(cap - off);
        let start = self.index(off);
        let first = n.min(cap - start);
        self.buf[start..start + first].copy_from_slice(&data[..first]);
        self.buf[..n - first].copy_from_slice(&data[first..n]);
        n
    }

    /// Appends as much of `data` as fits; returns the count.
    pub fn append(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.free());
        let w = self.write_at(self.len, &data[..n]);
        self.len += w;
        w
    }

    /// Makes `n` bytes already written past the end part of the data.
    pub fn commit(&mut self, n: usize) {
        self.len = (self.len + n).min(self.buf.len());
    }

    /// The `n` bytes at `off` as at most two slices (the ring wraps).
    pub fn slices(&self, off: usize, n: usize) -> (&[u8], &[u8]) {
        let cap = self.buf.len();
        if cap == 0 || off >= self.len {
            return (&[], &[]);
        }
        let n = n.min(self.len - off);
        let start = self.index(off);
        let first = n.min(cap - start);
        (&self.buf[start..start + first], &self.buf[..n - first])
    }

    /// Copies bytes from `off` into `out`; returns the count.
    pub fn read_at(&self, off: usize, out: &mut [u8]) -> usize {
        let (a, b) = self.slices(off, out.len());
        out[..a.len()].copy_from_slice(a);
        out[a.len()..a.len() + b.len()].copy_from_slice(b);
        a.len() + b.len()
    }

    /// Drops `n` bytes from the head.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        if self.buf.is_empty() {
            return;
        }
        self.head = self.index(n);
        self.len -= n;
    }

    /// Grows the capacity, keeping everything between the head and the
    /// old capacity (readable bytes and bytes written beyond them) at the
    /// same offsets.
    pub fn grow(&mut self, cap: usize) {
        let old = self.buf.len();
        if cap <= old {
            return;
        }
        let mut v = vec![0u8; cap];
        if old > 0 {
            let first = old - self.head;
            v[..first].copy_from_slice(&self.buf[self.head..]);
            v[first..old].copy_from_slice(&self.buf[..self.head]);
        }
        self.buf = v;
        self.head = 0;
    }

    /// Frees the memory (a connection in TIME_WAIT keeps no buffers).
    pub fn release(&mut self) {
        self.buf = Vec::new();
        self.head = 0;
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wraps_and_grows() {
        let mut r = Ring::with_capacity(8);
        assert_eq!(r.append(b"abcdef"), 6);
        r.consume(4);
        assert_eq!(r.append(b"ghijklmn"), 6);
        assert_eq!(r.len(), 8);
        let mut out = [0u8; 8];
        assert_eq!(r.read_at(0, &mut out), 8);
        assert_eq!(&out, b"efghijkl");
        let (a, b) = r.slices(1, 5);
        assert_eq!([a, b].concat(), b"fghij");
        r.grow(16);
        assert_eq!(r.read_at(0, &mut out), 8);
        assert_eq!(&out, b"efghijkl");
        // Writes beyond the data survive a grow.
        r.consume(8);
        assert_eq!(r.write_at(3, b"xyz"), 3);
        r.grow(32);
        r.commit(6);
        let mut o = [0u8; 6];
        r.read_at(0, &mut o);
        assert_eq!(&o[3..], b"xyz");
    }

    proptest! {
        #[test]
        fn behaves_like_a_deque(ops in proptest::collection::vec((0u8..3, 0usize..40), 0..100)) {
            let mut r = Ring::with_capacity(32);
            let mut model = std::collections::VecDeque::new();
            let mut next = 0u8;
            for (op, n) in ops {
                match op {
                    0 => {
                        let data: Vec<u8> = (0..n).map(|_| { next = next.wrapping_add(1); next }).collect();
                        let w = r.append(&data);
                        prop_assert_eq!(w, n.min(32 - model.len()));
                        model.extend(&data[..w]);
                    }
                    1 => {
                        r.consume(n);
                        for _ in 0..n.min(model.len()) { model.pop_front(); }
                    }
                    _ => {
                        let off = n % (model.len() + 1);
                        let mut out = vec![0u8; 40];
                        let c = r.read_at(off, &mut out);
                        let want: Vec<u8> = model.iter().skip(off).copied().collect();
                        prop_assert_eq!(&out[..c], &want[..]);
                    }
                }
                prop_assert_eq!(r.len(), model.len());
            }
        }
    }
}
