#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora into corpus/<target>/ (run from anywhere; needs gcc and binutils).

Seeds are real, small inputs: seeds/tiny.c built a few ways (DWARF 4 and 5, -O0/-O2, compressed debug sections,
.debug_frame only, a shared object, stripped), the CFI sections of those builds with a stack image, hand-written
DWARF expressions, a small valid core plus the hand-made corrupt cores, and the fiber table image that
tests/unit/hardening's write_fiber_table_images tool writes (pass its path as the first argument to refresh it).
"""
import os
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
SMALL = ["-nostdlib", "-Wl,--build-id", "-Wl,-z,max-page-size=16", "-Wl,-z,noseparate-code", "-Wl,--eh-frame-hdr"]
VARIANTS = {
    "O2": ["-O2", "-g", "-static", "-fno-pie", "-no-pie"],
    "O0": ["-O0", "-g", "-fno-omit-frame-pointer", "-static", "-fno-pie", "-no-pie"],
    "O2-dwarf4": ["-O2", "-gdwarf-4", "-static", "-fno-pie", "-no-pie"],
    "O2-gz": ["-O2", "-g", "-gz", "-static", "-fno-pie", "-no-pie"],
    "O2-debug-frame": ["-O2", "-g", "-fno-asynchronous-unwind-tables", "-fno-unwind-tables", "-static", "-fno-pie",
                       "-no-pie"],
    "O2-shared": ["-O2", "-g", "-shared", "-fPIC"],
}


def sections(path):
    """name -> (address, file offset, size) from the ELF64 section headers."""
    data = open(path, "rb").read()
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3a)
    headers = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    strtab = headers[shstrndx]
    result = {}
    for h in headers:
        start = strtab[4] + h[0]
        name = data[start:data.index(b"\0", start)].decode()
        result[name] = (h[3], h[4], h[5], data[h[4]:h[4] + h[5]] if h[1] != 8 else b"")
    return result


def write(target, name, data):
    os.makedirs(os.path.join(CORPUS, target), exist_ok=True)
    with open(os.path.join(CORPUS, target, name), "wb") as f:
        f.write(data)


def cfi_input(debug_frame, section_address, hdr_address, section, hdr, pc_offset, stack):
    header = struct.pack("<BQQHHHH", 1 if debug_frame else 0, section_address, hdr_address, len(section), len(hdr),
                         pc_offset, 0x10)
    return header + section + hdr + stack


def stack_image():
    # A plausible stack: return addresses into tiny's text and saved frame pointers pointing up the same stack.
    words = []
    for i in range(32):
        words.append(0x7ffe0000 + 0x10 * (i + 1) if i % 2 == 0 else 0x401000 + 0x20 * i)
    return struct.pack("<%dQ" % len(words), *words)


def small_core(tid, stack_address, stack):
    """An x86-64 ELF core: one NT_PRSTATUS thread whose rsp points into the one PT_LOAD segment (the stack)."""
    prstatus = bytearray(336)
    struct.pack_into("<i", prstatus, 32, tid)                        # pr_pid
    struct.pack_into("<Q", prstatus, 112 + 16 * 8, 0x401000)         # pr_reg.rip
    struct.pack_into("<Q", prstatus, 112 + 19 * 8, stack_address + 0x10)  # pr_reg.rsp
    notes = struct.pack("<III", 5, len(prstatus), 1) + b"CORE\0\0\0\0" + bytes(prstatus)
    phnum = 2
    notes_offset = 64 + 56 * phnum
    load_offset = notes_offset + len(notes)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    header = ident + struct.pack("<HHIQQQIHHHHHH", 4, 62, 1, 0, 64, 0, 0, 64, 56, phnum, 64, 0, 0)
    note_phdr = struct.pack("<IIQQQQQQ", 4, 4, notes_offset, 0, 0, len(notes), 0, 4)
    load_phdr = struct.pack("<IIQQQQQQ", 1, 6, load_offset, stack_address, 0, len(stack), len(stack), 0x1000)
    return header + note_phdr + load_phdr + notes + stack


def go_pclntab_input():
    """The tiny Go 1.18 pclntab of tests/unit/binary/go_pclntab_builder.h (two functions, one inlined call), in
    fuzz_go_pclntab's layout: u32 table size, u16 pc offset, u16 sp offset, the table, then funcdata and stack."""
    funcnames = b"main.outer\0main.inner\0"
    cutab = struct.pack("<II", 0, 5)
    filetab = b"a.go\0b.go\0"
    tables = [bytes([2, 4, 0x30, 0x3c, 0]), bytes([2, 0x10, 2, 0x10, 1, 0x20, 0]), bytes([22, 0x20, 4, 0x20, 0]),
              bytes([0, 0x10, 2, 0x10, 1, 0x20, 0]), bytes([18, 0x20, 0]), bytes([4, 0x20, 0]), bytes([42, 0x20, 0])]
    pctab, offsets = b"\0", []
    for table in tables:
        offsets.append(len(pctab))
        pctab += table

    def record(entry, name, pcsp, pcfile, pcln, pcdata, funcdata):
        out = struct.pack("<IiiIIIIII", entry, name, 0, 0, pcsp, pcfile, pcln, len(pcdata), 0)
        out += bytes([0, 0, 0, len(funcdata)])
        return out + b"".join(struct.pack("<I", v) for v in pcdata + funcdata)

    outer = record(0, 0, offsets[0], offsets[1], offsets[2], [0, 0, offsets[3]], [0xffffffff] * 3 + [0])
    inner = record(0x40, 11, offsets[4], offsets[5], offsets[6], [], [])
    functab = struct.pack("<IIIIII", 0, 24, 0x40, 24 + len(outer), 0x60, 0) + outer + inner
    header_size = 8 + 8 * 8
    offsets = [header_size]
    for part in (funcnames, cutab, filetab, pctab):
        offsets.append(offsets[-1] + len(part))
    header = bytes([0xf0, 0xff, 0xff, 0xff, 0, 0, 1, 8]) + struct.pack("<8Q", 2, 2, 0x401000, *offsets)
    table = header + funcnames + cutab + filetab + pctab + functab
    inline_tree = struct.pack("<hBBiiii", -1, 0, 0, 1, 10, 11, 0x08)
    return struct.pack("<IHH", len(table), 0x14, 0) + table + inline_tree + stack_image()


def main():
    with tempfile.TemporaryDirectory() as tmp:
        for variant, flags in VARIANTS.items():
            exe = os.path.join(tmp, "tiny-" + variant)
            subprocess.run(["gcc", *flags, *SMALL, "-o", exe, os.path.join(HERE, "seeds", "tiny.c")], check=True)
            data = open(exe, "rb").read()
            write("elf_image", variant + ".elf", data)
            write("dwarf", variant + ".elf", b"\x01" + data)
            secs = sections(exe)
            if ".eh_frame" in secs:
                address, _, _, bytes_ = secs[".eh_frame"]
                hdr_address, _, _, hdr = secs.get(".eh_frame_hdr", (0, 0, 0, b""))
                write("cfi", variant + "-eh_frame.bin", cfi_input(False, address, hdr_address, bytes_, hdr, 4, stack_image()))
            if ".debug_frame" in secs:
                write("cfi", variant + "-debug_frame.bin",
                      cfi_input(True, 0, 0, secs[".debug_frame"][3], b"", 4, stack_image()))
            if variant == "O2":
                stripped = exe + "-stripped"
                subprocess.run(["strip", "-o", stripped, exe], check=True)
                write("elf_image", "O2-stripped.elf", open(stripped, "rb").read())

    # DWARF expressions (DWARF 5 section 2.5), one idea each; the leading 0x00 selects the evaluator.
    expressions = {
        "fbreg": bytes([0x91, 0x70]),                                   # DW_OP_fbreg -16
        "breg-deref": bytes([0x77, 0x08, 0x06]),                        # DW_OP_breg7 8; DW_OP_deref
        "reg": bytes([0x53]),                                           # DW_OP_reg3
        "addr-stack-value": bytes([0x03]) + struct.pack("<Q", 0x401000) + bytes([0x9f]),
        "pieces": bytes([0x53, 0x93, 0x04, 0x54, 0x93, 0x04]),          # reg3 piece 4, reg4 piece 4
        "entry-value": bytes([0xa3, 0x01, 0x55, 0x9f]),                 # DW_OP_entry_value(reg5); stack_value
        "cfa": bytes([0x9c, 0x23, 0x08]),                               # call_frame_cfa; plus_uconst 8
        "arith": bytes([0x31, 0x32, 0x22, 0x12, 0x1e, 0x9f]),           # lit1 lit2 plus dup mul stack_value
        "implicit": bytes([0x9e, 0x04, 1, 2, 3, 4]),                    # DW_OP_implicit_value 4 bytes
        "branch": bytes([0x30, 0x28, 0x02, 0x00, 0x31, 0x9f]),          # lit0 bra +2 lit1 stack_value
        "deref-size": bytes([0x76, 0x00, 0x94, 0x04, 0x9f]),            # breg6 0; deref_size 4; stack_value
    }
    for name, expression in expressions.items():
        write("dwarf", "expr-" + name + ".bin", b"\x00" + expression)

    write("go_pclntab", "tiny.bin", go_pclntab_input())

    # Cores: a small valid one (one thread, one mapping of the stack) and the hand-made corrupt ones.
    write("core_file", "one-thread.core", small_core(4242, 0x7ffe0000, stack_image()))
    cores = os.path.join(HERE, "..", "corrupt", "cores")
    for name in sorted(os.listdir(cores)):
        if name.endswith(".core") and os.path.getsize(os.path.join(cores, name)) > 0:
            shutil.copy(os.path.join(cores, name), os.path.join(CORPUS, "core_file", name))

    if len(sys.argv) > 1:
        shutil.copy(sys.argv[1], os.path.join(CORPUS, "fiber_table", "valid.bin"))


if __name__ == "__main__":
    main()
