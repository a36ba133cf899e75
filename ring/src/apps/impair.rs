//! Impairment (placeholder until written).
