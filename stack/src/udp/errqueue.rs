//! `IP_RECVERR`: ICMP errors about datagrams a socket sent, queued for
//! `recvmsg(MSG_ERRQUEUE)` with what `sock_extended_err` reports
//! (net/ipv4/ip_sockglue.c ip_icmp_error, ip_recv_error).

use std::collections::VecDeque;

use crate::errno::Errno;

/// Where an ICMP error came from and what it said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpOrigin<A> {
    /// The ICMP message's source (`SO_EE_OFFENDER`).
    pub offender: A,
    pub icmp_type: u8,
    pub code: u8,
    /// `ee_info`: the next-hop MTU of a "fragmentation needed" (a Packet
    /// Too Big's MTU, a Parameter Problem's pointer), else 0.
    pub info: u32,
    /// An ICMPv6 message (`SO_EE_ORIGIN_ICMP6`), else ICMP; on an IPv6
    /// socket an ICMP error's offender is v4-mapped.
    pub icmp6: bool,
}

/// One queued error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtErr<A> {
    pub errno: Errno,
    pub origin: IcmpOrigin<A>,
    /// The offending datagram's destination (`msg_name`).
    pub dst: (A, u16),
    /// The quoted payload of the offending datagram.
    pub payload: Vec<u8>,
}

/// What one error-queue read returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrRecv<A> {
    /// Bytes copied.
    pub ret: usize,
    /// `MSG_TRUNC`: the payload was longer than the buffer.
    pub truncated: bool,
    pub errno: Errno,
    pub origin: IcmpOrigin<A>,
    pub dst: (A, u16),
}

/// What an entry costs against `SO_RCVBUF` beyond its payload (an
/// `sk_buff` clone of the ICMP packet).
const ENTRY_OVERHEAD: usize = 768;

#[derive(Debug)]
pub struct ErrQueue<A> {
    q: VecDeque<ExtErr<A>>,
    mem: usize,
}

impl<A> Default for ErrQueue<A> {
    fn default() -> Self {
        ErrQueue {
            q: VecDeque::new(),
            mem: 0,
        }
    }
}

impl<A: Copy> ErrQueue<A> {
    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    /// Queues `e` unless the queue holds `rcvbuf` bytes already
    /// (sock_queue_err_skb drops it then). Returns whether it was queued.
    pub fn push(&mut self, e: ExtErr<A>, rcvbuf: usize) -> bool {
        if self.mem >= rcvbuf {
            return false;
        }
        self.mem += e.payload.len() + ENTRY_OVERHEAD;
        self.q.push_back(e);
        true
    }

    /// The oldest error, its payload copied into `buf`; and the error the
    /// socket reports next (sock_dequeue_err_skb: the next queued one's).
    pub fn pop(&mut self, buf: &mut [u8]) -> Option<(ErrRecv<A>, Option<Errno>)> {
        let e = self.q.pop_front()?;
        self.mem -= e.payload.len() + ENTRY_OVERHEAD;
        let n = e.payload.len().min(buf.len());
        buf[..n].copy_from_slice(&e.payload[..n]);
        let r = ErrRecv {
            ret: n,
            truncated: n < e.payload.len(),
            errno: e.errno,
            origin: e.origin,
            dst: e.dst,
        };
        Some((r, self.q.front().map(|x| x.errno)))
    }

    pub fn clear(&mut self) {
        self.q.clear();
        self.mem = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(errno: Errno, payload: &[u8]) -> ExtErr<u32> {
        ExtErr {
            errno,
            origin: IcmpOrigin {
                offender: 2,
                icmp_type: 3,
                code: 3,
                info: 0,
                icmp6: false,
            },
            dst: (2, 7999),
            payload: payload.to_vec(),
        }
    }

    #[test]
    fn fifo_truncation_next_error_and_limit() {
        let mut q = ErrQueue::default();
        assert!(q.push(err(Errno::ECONNREFUSED, b"lost"), 10_000));
        assert!(q.push(err(Errno::EHOSTUNREACH, b"x"), 10_000));
        let mut b = [0u8; 2];
        let (r, next) = q.pop(&mut b).unwrap();
        assert_eq!(
            (r.ret, r.truncated, r.errno),
            (2, true, Errno::ECONNREFUSED)
        );
        assert_eq!(&b, b"lo");
        assert_eq!(next, Some(Errno::EHOSTUNREACH));
        let (r, next) = q.pop(&mut b).unwrap();
        assert_eq!((r.ret, r.truncated), (1, false));
        assert_eq!(next, None);
        assert!(q.pop(&mut b).is_none());
        // Full: the first entry always fits, the second does not.
        assert!(q.push(err(Errno::ECONNREFUSED, b"a"), 100));
        assert!(!q.push(err(Errno::ECONNREFUSED, b"b"), 100));
        q.clear();
        assert!(q.is_empty());
    }
}
