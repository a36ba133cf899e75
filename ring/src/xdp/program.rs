//! shunt's XDP programs, as reviewed eBPF instruction sequences with a
//! comment per instruction, and a tiny assembler that resolves their jump
//! labels and map references at load time.
//!
//! Two programs, one per steering mode. Both end the same way: a frame
//! that is shunt's goes to `bpf_redirect_map(xsks, rx_queue_index,
//! XDP_PASS)`, which hands it to the AF_XDP socket bound to the queue it
//! arrived on (or, if no socket is there, passes it to the kernel: the
//! low bits of the flags are the verdict on a failed lookup). Everything
//! else gets XDP_PASS. Neither program ever drops a frame.
//!
//! - [`DEDICATED`]: shunt has addresses of its own. An IPv4 frame whose
//!   destination, an ARP frame whose target protocol address, an IPv6
//!   frame whose destination is in the address maps, and a multicast
//!   Neighbor Solicitation whose *target* is (so a solicitation for the
//!   kernel's address on the same solicited-node group stays with the
//!   kernel) go to shunt.
//! - [`SHARED`]: shunt uses the kernel's address. An unfragmented IPv4
//!   or IPv6 (no extension headers) TCP or UDP frame whose (protocol,
//!   destination port) is in the port map goes to shunt, and so does an
//!   ICMP or ICMPv6 error (unreachable, packet too big, time exceeded,
//!   parameter problem) that quotes a TCP or UDP packet whose (protocol,
//!   *source* port) is: shunt's connections learn their path MTU and
//!   their unreachable peers.
//!
//! Addresses and ports live in hash maps rather than in immediate
//! constants: the stack gains addresses after start (SLAAC, DHCP) and
//! ports on every bind/listen/connect, and a map update takes effect at
//! once without reloading or re-attaching the program. The lookups key on
//! the address *in the packet* (a packet pointer is a valid map key once
//! its bounds are checked), so no bytes are copied.
//!
//! Frames with a VLAN tag are passed to the kernel (shunt on a VLAN uses
//! the VLAN interface).

use super::bpf::Insn;

/// A register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reg(u8);
pub const R0: Reg = Reg(0);
pub const R1: Reg = Reg(1);
pub const R2: Reg = Reg(2);
pub const R3: Reg = Reg(3);
pub const R4: Reg = Reg(4);
pub const R5: Reg = Reg(5);
pub const R6: Reg = Reg(6);
pub const R7: Reg = Reg(7);
pub const R8: Reg = Reg(8);
pub const R9: Reg = Reg(9);
/// The frame pointer (read only): the stack is below it.
pub const R10: Reg = Reg(10);

/// The maps a program refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapRef {
    /// XSKMAP: RX queue index -> AF_XDP socket.
    Xsks,
    /// Hash: IPv4 address (4 bytes, network order) -> u8.
    Addrs4,
    /// Hash: IPv6 address (16 bytes) -> u8.
    Addrs6,
    /// Hash: [port (network order, 2 bytes), IP protocol, 0] -> u8.
    Ports,
}

/// One line of a program: an instruction, a jump to a label, a map
/// reference (a two-slot `ld_imm64`), or a label.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    I(Insn),
    Jump {
        code: u8,
        dst: Reg,
        src: Reg,
        imm: i32,
        to: &'static str,
    },
    LoadMap(Reg, MapRef),
    Label(&'static str),
}

// Opcode parts (include/uapi/linux/bpf_common.h, bpf.h).
const LDX: u8 = 0x01;
const ST: u8 = 0x02;
const STX: u8 = 0x03;
const JMP: u8 = 0x05;
const ALU64: u8 = 0x07;
const MEM: u8 = 0x60;
const K: u8 = 0x00;
const X: u8 = 0x08;
const ADD: u8 = 0x00;
const AND: u8 = 0x50;
const LSH: u8 = 0x60;
const MOV: u8 = 0xb0;
const JA: u8 = 0x00;
const JEQ: u8 = 0x10;
const JGT: u8 = 0x20;
const JNE: u8 = 0x50;
const JLT: u8 = 0xa0;
const CALL: u8 = 0x80;
const EXIT: u8 = 0x90;
/// `BPF_LD | BPF_DW | BPF_IMM`: a 64-bit immediate over two slots.
const LD_IMM64: u8 = 0x18;
/// `src_reg` of an `ld_imm64` whose immediate is a map fd.
const PSEUDO_MAP_FD: u8 = 1;

/// Access sizes.
#[derive(Clone, Copy, Debug)]
pub enum Size {
    B = 0x10,
    H = 0x08,
    W = 0x00,
}

const fn insn(code: u8, dst: Reg, src: Reg, off: i16, imm: i32) -> Op {
    Op::I(Insn {
        code,
        regs: dst.0 | (src.0 << 4),
        off,
        imm,
    })
}
/// dst = src
const fn mov(dst: Reg, src: Reg) -> Op {
    insn(ALU64 | MOV | X, dst, src, 0, 0)
}
/// dst = imm
const fn mov_imm(dst: Reg, imm: i32) -> Op {
    insn(ALU64 | MOV | K, dst, R0, 0, imm)
}
/// dst += imm
const fn add_imm(dst: Reg, imm: i32) -> Op {
    insn(ALU64 | ADD | K, dst, R0, 0, imm)
}
/// dst += src
const fn add(dst: Reg, src: Reg) -> Op {
    insn(ALU64 | ADD | X, dst, src, 0, 0)
}
/// dst &= imm
const fn and_imm(dst: Reg, imm: i32) -> Op {
    insn(ALU64 | AND | K, dst, R0, 0, imm)
}
/// dst <<= imm
const fn lsh_imm(dst: Reg, imm: i32) -> Op {
    insn(ALU64 | LSH | K, dst, R0, 0, imm)
}
/// dst = *(size *)(src + off)
const fn ldx(size: Size, dst: Reg, src: Reg, off: i16) -> Op {
    insn(LDX | MEM | size as u8, dst, src, off, 0)
}
/// *(size *)(dst + off) = src
const fn stx(size: Size, dst: Reg, off: i16, src: Reg) -> Op {
    insn(STX | MEM | size as u8, dst, src, off, 0)
}
/// *(size *)(dst + off) = imm
const fn st_imm(size: Size, dst: Reg, off: i16, imm: i32) -> Op {
    insn(ST | MEM | size as u8, dst, R0, off, imm)
}
const fn jump(op: u8, src_x: bool, dst: Reg, src: Reg, imm: i32, to: &'static str) -> Op {
    Op::Jump {
        code: JMP | op | if src_x { X } else { K },
        dst,
        src,
        imm,
        to,
    }
}
/// goto to
const fn ja(to: &'static str) -> Op {
    jump(JA, false, R0, R0, 0, to)
}
/// if dst == imm goto to
const fn jeq_imm(dst: Reg, imm: i32, to: &'static str) -> Op {
    jump(JEQ, false, dst, R0, imm, to)
}
/// if dst != imm goto to
const fn jne_imm(dst: Reg, imm: i32, to: &'static str) -> Op {
    jump(JNE, false, dst, R0, imm, to)
}
/// if dst < imm goto to (unsigned)
const fn jlt_imm(dst: Reg, imm: i32, to: &'static str) -> Op {
    jump(JLT, false, dst, R0, imm, to)
}
/// if dst > imm goto to (unsigned)
const fn jgt_imm(dst: Reg, imm: i32, to: &'static str) -> Op {
    jump(JGT, false, dst, R0, imm, to)
}
/// if dst > src goto to (unsigned)
const fn jgt(dst: Reg, src: Reg, to: &'static str) -> Op {
    jump(JGT, true, dst, src, 0, to)
}
/// call helper
const fn call(helper: i32) -> Op {
    insn(JMP | CALL, R0, R0, 0, helper)
}
/// return r0
const fn exit() -> Op {
    insn(JMP | EXIT, R0, R0, 0, 0)
}
/// dst = &map
const fn load_map(dst: Reg, map: MapRef) -> Op {
    Op::LoadMap(dst, map)
}
const fn label(name: &'static str) -> Op {
    Op::Label(name)
}

/// A 16-bit field as `ldx(H)` reads it from the packet (network byte
/// order bytes, loaded in host order).
const fn be16(v: u16) -> i32 {
    u16::from_ne_bytes(v.to_be_bytes()) as i32
}

// Helpers (enum bpf_func_id).
const MAP_LOOKUP_ELEM: i32 = 1;
const REDIRECT_MAP: i32 = 51;
// Verdicts.
pub const XDP_ABORTED: u32 = 0;
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;
pub const XDP_REDIRECT: u32 = 4;
// struct xdp_md.
const MD_DATA: i16 = 0;
const MD_DATA_END: i16 = 4;
const MD_RX_QUEUE_INDEX: i16 = 16;

/// Dedicated-address mode. Registers: r6 = ctx, r7 = data (start of the
/// Ethernet header), r8 = data_end; r2 = the lookup key (a pointer into
/// the packet) on the way to `lookup4` / `lookup6`.
pub const DEDICATED: &[Op] = &[
    mov(R6, R1),                             // r6 = ctx, kept across calls
    ldx(Size::W, R7, R1, MD_DATA),           // r7 = ctx->data
    ldx(Size::W, R8, R1, MD_DATA_END),       // r8 = ctx->data_end
    mov(R4, R7),                             // r4 = data
    add_imm(R4, 14),                         // r4 = end of the Ethernet header
    jgt(R4, R8, "pass"),                     // shorter than 14 bytes: kernel
    ldx(Size::H, R5, R7, 12),                // r5 = EtherType
    jeq_imm(R5, be16(0x0800), "ipv4"),       // IPv4
    jeq_imm(R5, be16(0x0806), "arp"),        // ARP
    jeq_imm(R5, be16(0x86dd), "ipv6"),       // IPv6
    ja("pass"),                              // anything else: kernel
    label("ipv4"),                           //
    mov(R4, R7),                             // r4 = data
    add_imm(R4, 34),                         // r4 = end of a 20-byte IPv4 header
    jgt(R4, R8, "pass"),                     // truncated: kernel
    mov(R2, R7),                             // r2 = data
    add_imm(R2, 30),                         // key = &ip->daddr
    ja("lookup4"),                           //
    label("arp"),                            //
    mov(R4, R7),                             // r4 = data
    add_imm(R4, 42),                         // r4 = end of an Ethernet/IPv4 ARP body
    jgt(R4, R8, "pass"),                     // truncated: kernel
    mov(R2, R7),                             // r2 = data
    add_imm(R2, 38),                         // key = &arp->target_ip
    label("lookup4"),                        //
    load_map(R1, MapRef::Addrs4),            // r1 = &addrs4 (two slots)
    call(MAP_LOOKUP_ELEM),                   // r0 = addrs4[key]
    jeq_imm(R0, 0, "pass"),                  // not shunt's: kernel
    ja("redirect"),                          //
    label("ipv6"),                           //
    mov(R4, R7),                             // r4 = data
    add_imm(R4, 54),                         // r4 = end of the IPv6 header
    jgt(R4, R8, "pass"),                     // truncated: kernel
    ldx(Size::B, R5, R7, 38),                // r5 = first byte of the destination
    jeq_imm(R5, 0xff, "ipv6_mcast"),         // multicast: look closer
    mov(R2, R7),                             // r2 = data
    add_imm(R2, 38),                         // key = &ip6->daddr
    ja("lookup6"),                           //
    label("ipv6_mcast"),                     //
    ldx(Size::B, R5, R7, 20),                // r5 = next header
    jne_imm(R5, 58, "pass"),                 // not ICMPv6 right away: kernel
    mov(R4, R7),                             // r4 = data
    add_imm(R4, 78),                         // r4 = end of an NS (ICMPv6 header, reserved, target)
    jgt(R4, R8, "pass"),                     // too short for an NS: kernel
    ldx(Size::B, R5, R7, 54),                // r5 = ICMPv6 type
    jne_imm(R5, 135, "pass"),                // not a Neighbor Solicitation: kernel
    mov(R2, R7),                             // r2 = data
    add_imm(R2, 62),                         // key = &ns->target
    label("lookup6"),                        //
    load_map(R1, MapRef::Addrs6),            // r1 = &addrs6 (two slots)
    call(MAP_LOOKUP_ELEM),                   // r0 = addrs6[key]
    jeq_imm(R0, 0, "pass"),                  // not shunt's: kernel
    label("redirect"),                       //
    ldx(Size::W, R2, R6, MD_RX_QUEUE_INDEX), // r2 = ctx->rx_queue_index
    load_map(R1, MapRef::Xsks),              // r1 = &xsks (two slots)
    mov_imm(R3, XDP_PASS as i32),            // r3 = verdict if no socket on the queue
    call(REDIRECT_MAP),                      // r0 = redirect to xsks[queue] or XDP_PASS
    exit(),                                  // return r0
    label("pass"),                           //
    mov_imm(R0, XDP_PASS as i32),            // r0 = XDP_PASS
    exit(),                                  // return r0
];

/// Shared-address mode. Registers: r6 = ctx, r7 = data, r8 = data_end,
/// r9 = IP protocol; r2 = data + IP header length, so that the L4 header
/// starts at r2 + 14.
pub const SHARED: &[Op] = &[
    mov(R6, R1),                             // r6 = ctx, kept across calls
    ldx(Size::W, R7, R1, MD_DATA),           // r7 = ctx->data
    ldx(Size::W, R8, R1, MD_DATA_END),       // r8 = ctx->data_end
    mov(R4, R7),                             // r4 = data
    add_imm(R4, 14),                         // r4 = end of the Ethernet header
    jgt(R4, R8, "pass"),                     // shorter than 14 bytes: kernel
    ldx(Size::H, R5, R7, 12),                // r5 = EtherType
    jeq_imm(R5, be16(0x0800), "ipv4"),       // IPv4
    jeq_imm(R5, be16(0x86dd), "ipv6"),       // IPv6
    ja("pass"),                              // anything else (ARP too): kernel
    label("ipv4"),                           //
    mov(R4, R7),                             // r4 = data
    add_imm(R4, 34),                         // r4 = end of a 20-byte IPv4 header
    jgt(R4, R8, "pass"),                     // truncated: kernel
    ldx(Size::H, R5, R7, 20),                // r5 = flags and fragment offset
    and_imm(R5, be16(0x3fff)),               // r5 = MF bit and offset
    jne_imm(R5, 0, "pass"),                  // a fragment: kernel (it reassembles)
    ldx(Size::B, R9, R7, 23),                // r9 = protocol
    ldx(Size::B, R5, R7, 14),                // r5 = version and IHL
    and_imm(R5, 0x0f),                       // r5 = IHL
    lsh_imm(R5, 2),                          // r5 = header length in bytes (0..60)
    jlt_imm(R5, 20, "pass"),                 // malformed: kernel
    mov(R2, R7),                             // r2 = data
    add(R2, R5),                             // r2 = data + header length
    ja("ports"),                             //
    label("ipv6"),                           //
    mov(R4, R7),                             // r4 = data
    add_imm(R4, 54),                         // r4 = end of the IPv6 header
    jgt(R4, R8, "pass"),                     // truncated: kernel
    ldx(Size::B, R9, R7, 20),                // r9 = next header (extension headers: kernel)
    mov(R2, R7),                             // r2 = data
    add_imm(R2, 40),                         // r2 = data + header length
    label("ports"),                          // (the L4 header is at r2 + 14)
    jeq_imm(R9, 6, "l4"),                    // TCP
    jeq_imm(R9, 17, "l4"),                   // UDP
    jeq_imm(R9, 1, "icmp4"),                 // ICMP: errors about shunt's ports
    jeq_imm(R9, 58, "icmp6"),                // ICMPv6: the same
    ja("pass"),                              // other protocols: kernel
    label("icmp4"),                          //
    mov(R4, R2),                             // r4 = data + header length
    add_imm(R4, 42),                         // r4 = end of ICMP (8) + quoted IPv4 (20)
    jgt(R4, R8, "pass"),                     // truncated: kernel
    ldx(Size::B, R5, R2, 14),                // r5 = ICMP type
    jeq_imm(R5, 3, "icmp4_err"),             // destination unreachable (PMTU too)
    jeq_imm(R5, 11, "icmp4_err"),            // time exceeded
    jeq_imm(R5, 12, "icmp4_err"),            // parameter problem
    ja("pass"),                              // echo and the rest: kernel
    label("icmp4_err"),                      //
    ldx(Size::B, R9, R2, 31),                // r9 = quoted protocol
    ldx(Size::B, R5, R2, 22),                // r5 = quoted version and IHL
    and_imm(R5, 0x0f),                       // r5 = quoted IHL
    lsh_imm(R5, 2),                          // r5 = quoted header length (0..60)
    jlt_imm(R5, 20, "pass"),                 // malformed: kernel
    add(R2, R5),                             // quoted L4 header at r2 + 22
    mov(R4, R2),                             // r4 = r2
    add_imm(R4, 24),                         // r4 = end of the quoted source port
    jgt(R4, R8, "pass"),                     // truncated: kernel
    ldx(Size::H, R5, R2, 22),                // r5 = quoted source port (shunt's)
    ja("quoted"),                            //
    label("icmp6"),                          //
    mov(R4, R2),                             // r4 = data + 40
    add_imm(R4, 64),                         // r4 = end of ICMPv6 (8), IPv6 (40), a port
    jgt(R4, R8, "pass"),                     // truncated: kernel
    ldx(Size::B, R5, R2, 14),                // r5 = ICMPv6 type
    jgt_imm(R5, 4, "pass"),                  // not an error (echo, NDP, MLD): kernel
    jeq_imm(R5, 0, "pass"),                  // type 0 is reserved: kernel
    ldx(Size::B, R9, R2, 28),                // r9 = quoted next header
    ldx(Size::H, R5, R2, 62),                // r5 = quoted source port (shunt's)
    label("quoted"),                         //
    jeq_imm(R9, 6, "key"),                   // quoted TCP
    jeq_imm(R9, 17, "key"),                  // quoted UDP
    ja("pass"),                              // anything else: kernel
    label("l4"),                             //
    mov(R4, R2),                             // r4 = data + header length
    add_imm(R4, 18),                         // r4 = end of the two ports
    jgt(R4, R8, "pass"),                     // truncated: kernel
    ldx(Size::H, R5, R2, 16),                // r5 = destination port
    label("key"),                            // r5 = port, r9 = protocol
    stx(Size::H, R10, -4, R5),               // key[0..2] = port
    stx(Size::B, R10, -2, R9),               // key[2] = protocol
    st_imm(Size::B, R10, -1, 0),             // key[3] = 0
    mov(R2, R10),                            // r2 = fp
    add_imm(R2, -4),                         // key = fp - 4
    load_map(R1, MapRef::Ports),             // r1 = &ports (two slots)
    call(MAP_LOOKUP_ELEM),                   // r0 = ports[key]
    jeq_imm(R0, 0, "pass"),                  // not shunt's: kernel
    ldx(Size::W, R2, R6, MD_RX_QUEUE_INDEX), // r2 = ctx->rx_queue_index
    load_map(R1, MapRef::Xsks),              // r1 = &xsks (two slots)
    mov_imm(R3, XDP_PASS as i32),            // r3 = verdict if no socket on the queue
    call(REDIRECT_MAP),                      // r0 = redirect to xsks[queue] or XDP_PASS
    exit(),                                  // return r0
    label("pass"),                           //
    mov_imm(R0, XDP_PASS as i32),            // r0 = XDP_PASS
    exit(),                                  // return r0
];

/// Resolve labels and map references: `map_fd` gives the descriptor of
/// each map the program uses. Errors name an unknown or duplicate label
/// or a jump out of range (programming errors in the tables above; the
/// unit tests assemble both).
pub fn assemble(ops: &[Op], map_fd: impl Fn(MapRef) -> i32) -> Result<Vec<Insn>, String> {
    // First pass: the slot of every label.
    let mut labels: Vec<(&'static str, usize)> = Vec::new();
    let mut pc = 0usize;
    for op in ops {
        match op {
            Op::Label(name) => {
                if labels.iter().any(|(n, _)| n == name) {
                    return Err(format!("duplicate label {name}"));
                }
                labels.push((name, pc));
            }
            Op::LoadMap(..) => pc += 2,
            _ => pc += 1,
        }
    }
    let mut out = Vec::with_capacity(pc);
    for op in ops {
        match *op {
            Op::I(i) => out.push(i),
            Op::Label(_) => {}
            Op::LoadMap(dst, map) => {
                out.push(Insn {
                    code: LD_IMM64,
                    regs: dst.0 | (PSEUDO_MAP_FD << 4),
                    off: 0,
                    imm: map_fd(map),
                });
                out.push(Insn {
                    code: 0,
                    regs: 0,
                    off: 0,
                    imm: 0,
                });
            }
            Op::Jump {
                code,
                dst,
                src,
                imm,
                to,
            } => {
                let target = labels
                    .iter()
                    .find(|(n, _)| *n == to)
                    .map(|&(_, t)| t)
                    .ok_or_else(|| format!("unknown label {to}"))?;
                // Offsets count from the next instruction.
                let off = target as i64 - (out.len() as i64 + 1);
                let off = i16::try_from(off).map_err(|_| format!("jump to {to} out of range"))?;
                out.push(Insn {
                    code,
                    regs: dst.0 | (src.0 << 4),
                    off,
                    imm,
                });
            }
        }
    }
    Ok(out)
}

/// The maps a program refers to.
pub fn maps_used(ops: &[Op]) -> impl Iterator<Item = MapRef> + '_ {
    ops.iter().filter_map(|op| match op {
        Op::LoadMap(_, m) => Some(*m),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_assemble() {
        let d = assemble(DEDICATED, |_| 3).unwrap();
        let s = assemble(SHARED, |_| 3).unwrap();
        // Every jump lands inside the program and not on the second slot
        // of an ld_imm64.
        for prog in [&d, &s] {
            let second: Vec<usize> = prog
                .iter()
                .enumerate()
                .filter(|(_, i)| i.code == LD_IMM64)
                .map(|(n, _)| n + 1)
                .collect();
            for (n, i) in prog.iter().enumerate() {
                if i.code & 0x07 == JMP && i.code & 0xf0 != CALL && i.code & 0xf0 != EXIT {
                    let t = n as i64 + 1 + i.off as i64;
                    assert!(t >= 0 && (t as usize) < prog.len(), "jump at {n}");
                    assert!(!second.contains(&(t as usize)), "jump at {n}");
                }
            }
            assert_eq!(prog.last().unwrap().code, JMP | EXIT);
        }
        assert_eq!(d.len(), 56);
        assert_eq!(s.len(), 86);
        assert!(assemble(&[ja("nowhere")], |_| 0).is_err());
        assert!(assemble(&[label("a"), label("a")], |_| 0).is_err());
    }
}
