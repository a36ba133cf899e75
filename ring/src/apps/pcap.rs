//! Pcap (placeholder until written).
