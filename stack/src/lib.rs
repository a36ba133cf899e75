//! shunt's protocol stack: a sans-IO TCP/IP core, driven from outside by
//! frames, a clock and socket calls. It never calls the OS.
#![forbid(unsafe_code)]
