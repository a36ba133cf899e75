//! Test bed and shim tests.
