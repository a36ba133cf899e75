//! UDP_CORK and MSG_MORE: sends that gather into one datagram, sent when
//! the socket is uncorked or a send comes without MSG_MORE (Linux's
//! `up->pending`, ip_append_data / udp_push_pending_frames).
//!
//! The destination is the first send's: later sends append whatever
//! address they name, as Linux does. A datagram that would outgrow the
//! largest UDP payload is dropped whole and the send fails `EMSGSIZE`
//! (udp_flush_pending_frames).

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::errno::Errno;

/// A datagram being gathered.
#[derive(Debug, Default)]
pub struct Pending {
    /// `None`: the connected peer.
    pub dst: Option<SocketAddr>,
    pub buf: Vec<u8>,
}

/// The pending datagrams of every socket, by a socket key.
#[derive(Debug)]
pub struct Corks<K> {
    pending: HashMap<K, Pending>,
}

impl<K> Default for Corks<K> {
    fn default() -> Self {
        Corks {
            pending: HashMap::new(),
        }
    }
}

impl<K: Eq + core::hash::Hash + Copy> Corks<K> {
    pub fn has(&self, k: K) -> bool {
        self.pending.contains_key(&k)
    }

    /// Adds `data` to `k`'s datagram, starting one to `dst` if there is
    /// none; `max` is the largest payload.
    pub fn append(
        &mut self,
        k: K,
        dst: Option<SocketAddr>,
        data: &[u8],
        max: usize,
    ) -> Result<(), Errno> {
        let p = self.pending.entry(k).or_insert_with(|| Pending {
            dst,
            buf: Vec::new(),
        });
        if p.buf.len() + data.len() > max {
            self.pending.remove(&k);
            return Err(Errno::EMSGSIZE);
        }
        p.buf.extend_from_slice(data);
        Ok(())
    }

    /// The gathered datagram, now to be sent (or dropped on close).
    pub fn take(&mut self, k: K) -> Option<Pending> {
        self.pending.remove(&k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gathers_keeps_first_destination_and_drops_oversize() {
        let mut c: Corks<u32> = Corks::default();
        let a: SocketAddr = "192.0.2.2:7".parse().unwrap();
        let b: SocketAddr = "192.0.2.3:9".parse().unwrap();
        assert!(!c.has(1));
        c.append(1, Some(a), b"ab", 10).unwrap();
        c.append(1, Some(b), b"cd", 10).unwrap();
        assert!(c.has(1));
        let p = c.take(1).unwrap();
        assert_eq!((p.dst, p.buf.as_slice()), (Some(a), &b"abcd"[..]));
        assert!(c.take(1).is_none());
        c.append(2, None, b"12345", 8).unwrap();
        assert_eq!(c.append(2, None, b"6789", 8), Err(Errno::EMSGSIZE));
        assert!(!c.has(2), "an oversize datagram is dropped whole");
        // Exactly the largest payload fits.
        c.append(3, None, &[0; 8], 8).unwrap();
        assert_eq!(c.take(3).unwrap().buf.len(), 8);
    }
}
