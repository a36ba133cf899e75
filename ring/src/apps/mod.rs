//! Apps that move packets between links.

pub mod basic;
pub mod impair;
pub mod pcap;
