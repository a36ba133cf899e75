//! TCP urgent data (RFC 9293 3.8.5, with Linux's BSD reading): one byte
//! sent with `MSG_OOB` is marked by the urgent pointer; the receiver takes
//! it out of the stream (unless `SO_OOBINLINE`), reports `POLLPRI` while
//! it waits for `recv(MSG_OOB)`, and stops a normal read at the mark
//! (`SIOCATMARK`). What Linux does, from net/ipv4/tcp.c and tcp_input.c
//! (tcp_check_urg, tcp_urg, tcp_recv_urg) and tcp_output.c.
//!
//! Kept apart from the data path: the connection calls [`Urgent::on_segment`]
//! for each accepted segment and asks [`Urgent::pointer_for`] when it
//! builds one; the layer's recv and poll consult it.

use crate::seq::SeqNum;

/// Where the urgent byte is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UrgState {
    /// The pointer came; the byte not yet (`TCP_URG_NOTYET`).
    NotYet,
    /// The byte is there, unread (`TCP_URG_VALID`).
    Valid(u8),
    /// `recv(MSG_OOB)` took it (`TCP_URG_READ`).
    Read,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Urgent {
    /// Send side: the sequence number after the last urgent byte queued
    /// (`snd_up`); urgent mode lasts while it is after SND.UNA.
    pub snd_up: Option<SeqNum>,
    /// Receive side: the urgent byte's sequence number and state.
    pub rcv: Option<(SeqNum, UrgState)>,
    /// Urgent pointers taken (each one is a SIGURG for the socket's owner,
    /// sk_send_sigurg).
    pub signals: u32,
}

impl Urgent {
    /// `send(MSG_OOB)`: the last byte queued (ending at `end`) is urgent.
    pub fn mark_sent(&mut self, end: SeqNum) {
        self.snd_up = Some(end);
    }

    /// The urgent pointer for a segment starting at `seq` (tcp_transmit_skb:
    /// while in urgent mode and the segment starts before the mark).
    pub fn pointer_for(&self, seq: SeqNum, snd_una: SeqNum) -> Option<u16> {
        let up = self.snd_up?;
        if !up.after(snd_una) || !seq.before(up) {
            return None;
        }
        Some(u16::try_from((up - seq).max(0)).unwrap_or(u16::MAX))
    }

    /// An accepted segment: `urg` its urgent pointer if URG was set, `seq`
    /// the sequence number of its first data byte, `copied` the next byte
    /// the program reads, `rcv_nxt` before the segment's data is taken.
    pub fn on_segment(
        &mut self,
        urg: Option<u16>,
        seq: SeqNum,
        payload: &[u8],
        copied: SeqNum,
        rcv_nxt: SeqNum,
    ) {
        if let Some(p) = urg {
            // Linux's default (tcp_stdurg off): the pointer is one past
            // the urgent byte.
            let ptr = seq + u32::from(p.saturating_sub(1));
            let stale = copied.after(ptr)
                || ptr.before(rcv_nxt)
                || self.rcv.is_some_and(|(s, _)| !ptr.after(s));
            if !stale {
                self.rcv = Some((ptr, UrgState::NotYet));
                self.signals = self.signals.wrapping_add(1);
            }
        }
        if let Some((s, UrgState::NotYet)) = self.rcv {
            let off = s - seq;
            if off >= 0 && (off as usize) < payload.len() {
                self.rcv = Some((s, UrgState::Valid(payload[off as usize])));
            }
        }
    }

    /// `POLLPRI`: an urgent byte waits.
    pub fn pri(&self) -> bool {
        matches!(self.rcv, Some((_, UrgState::Valid(_))))
    }

    /// `SIOCATMARK`: the next byte to read is the urgent one.
    pub fn at_mark(&self, copied: SeqNum) -> bool {
        self.rcv.is_some_and(|(s, _)| s == copied)
    }

    /// A normal read starting at `copied` with `queued` bytes in order:
    /// how many bytes to skip first (the urgent byte, out of line) and the
    /// most to read after them (up to the mark). Forgets a mark it passes.
    pub fn plan_read(&mut self, copied: SeqNum, queued: usize, inline: bool) -> (usize, usize) {
        let Some((s, st)) = self.rcv else {
            return (0, queued);
        };
        let off = s - copied;
        if off < 0 {
            self.rcv = None;
            return (0, queued);
        }
        let off = off as usize;
        if off >= queued {
            return (0, queued);
        }
        if off > 0 {
            return (0, off);
        }
        // At the mark: out of line, the byte (arrived, as it is queued) is
        // skipped; inline, it is read like any other. The next mark reads
        // stop at is a later one.
        let _ = st;
        if inline { (0, queued) } else { (1, queued - 1) }
    }

    /// After a read that consumed up to `copied`: the mark is behind.
    pub fn consumed(&mut self, copied: SeqNum) {
        if self.rcv.is_some_and(|(s, _)| copied.after(s)) {
            self.rcv = None;
        }
    }

    /// `recv(MSG_OOB)`: the byte, `EINVAL` when there is none or it was
    /// read (or it is inline), `EAGAIN` when only the pointer came.
    pub fn recv_oob(&mut self, peek: bool, inline: bool) -> Result<u8, UrgError> {
        match self.rcv {
            _ if inline => Err(UrgError::Invalid),
            Some((s, UrgState::Valid(b))) => {
                if !peek {
                    self.rcv = Some((s, UrgState::Read));
                }
                Ok(b)
            }
            Some((_, UrgState::NotYet)) => Err(UrgError::NotYet),
            Some((_, UrgState::Read)) | None => Err(UrgError::Invalid),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UrgError {
    Invalid,
    NotYet,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u32) -> SeqNum {
        SeqNum::new(n)
    }

    #[test]
    fn pointer_while_in_urgent_mode() {
        let mut u = Urgent::default();
        assert_eq!(u.pointer_for(s(100), s(100)), None);
        u.mark_sent(s(104));
        assert_eq!(u.pointer_for(s(100), s(100)), Some(4));
        assert_eq!(u.pointer_for(s(103), s(100)), Some(1));
        // A segment starting at or after the mark, or the mark acked.
        assert_eq!(u.pointer_for(s(104), s(100)), None);
        assert_eq!(u.pointer_for(s(100), s(104)), None);
    }

    #[test]
    fn byte_taken_out_of_line_and_read_with_msg_oob() {
        let mut u = Urgent::default();
        // "ab!" with the pointer one past '!'.
        u.on_segment(Some(3), s(10), b"ab!", s(10), s(10));
        assert_eq!(u.rcv, Some((s(12), UrgState::Valid(b'!'))));
        assert!(u.pri());
        assert_eq!(u.signals, 1);
        // A read stops at the mark, the next skips the byte.
        assert_eq!(u.plan_read(s(10), 3, false), (0, 2));
        assert!(u.at_mark(s(12)));
        assert_eq!(u.plan_read(s(12), 1, false), (1, 0));
        assert_eq!(u.plan_read(s(12), 1, true), (0, 1));
        assert_eq!(u.recv_oob(true, false), Ok(b'!'));
        assert_eq!(u.recv_oob(false, false), Ok(b'!'));
        assert!(!u.pri());
        assert_eq!(u.recv_oob(false, false), Err(UrgError::Invalid));
        u.consumed(s(13));
        assert_eq!(u.rcv, None);
        assert_eq!(u.recv_oob(false, true), Err(UrgError::Invalid));
    }

    #[test]
    fn pointer_before_byte_and_stale_pointers() {
        let mut u = Urgent::default();
        // The pointer points past this segment: the byte is still to come.
        u.on_segment(Some(10), s(0), b"abc", s(0), s(0));
        assert_eq!(u.rcv, Some((s(9), UrgState::NotYet)));
        assert_eq!(u.recv_oob(false, false), Err(UrgError::NotYet));
        u.on_segment(None, s(3), b"defghij", s(0), s(3));
        assert_eq!(u.rcv, Some((s(9), UrgState::Valid(b'j'))));
        // A retransmission with the old pointer changes nothing.
        u.on_segment(Some(10), s(0), b"abc", s(0), s(10));
        assert_eq!(u.rcv, Some((s(9), UrgState::Valid(b'j'))));
        assert_eq!(u.signals, 1);
    }
}
