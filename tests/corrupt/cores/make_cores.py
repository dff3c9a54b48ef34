#!/usr/bin/env python3
"""Writes the hand-made corrupt cores of this folder, one defect each (see README.md). Run from this folder."""
import struct

ET_EXEC, ET_CORE = 2, 4
EM_X86_64, EM_AARCH64 = 62, 183
PT_LOAD, PT_NOTE = 1, 4
NT_PRSTATUS, NT_FILE = 1, 0x46494C45
PN_XNUM = 0xFFFF


def ehdr(e_type=ET_CORE, machine=EM_X86_64, phnum=0, phoff=64, shoff=0, shnum=0):
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    return ident + struct.pack("<HHIQQQIHHHHHH", e_type, machine, 1, 0, phoff if phnum else 0, shoff, 0, 64, 56,
                               phnum, 64, shnum, 0)


def phdr(p_type, offset=0, vaddr=0, filesz=0, memsz=0, flags=4):
    return struct.pack("<IIQQQQQQ", p_type, flags, offset, vaddr, 0, filesz, memsz, 4)


def note(name, n_type, desc, descsz=None):
    name_bytes = name + b"\0"
    pad = lambda b: b + bytes(-len(b) % 4)
    return struct.pack("<III", len(name_bytes), len(desc) if descsz is None else descsz, n_type) + pad(name_bytes) + pad(desc)


def prstatus(tid):
    desc = bytearray(336)
    struct.pack_into("<i", desc, 32, tid)  # pr_pid
    struct.pack_into("<Q", desc, 112 + 16 * 8, 0x401000)  # pr_reg.rip
    return bytes(desc)


def core_with_notes(notes, extra_phdrs=()):
    phdrs = [None] + list(extra_phdrs)
    table_end = 64 + 56 * len(phdrs)
    notes_bytes = b"".join(notes)
    phdrs[0] = phdr(PT_NOTE, offset=table_end, filesz=len(notes_bytes))
    return ehdr(phnum=len(phdrs)) + b"".join(phdrs) + notes_bytes


files = {
    "empty.core": b"",
    "not-elf.core": b"this is not a core file\n",
    "short-header.core": b"\x7fELF" + bytes([2, 1, 1]) + bytes(13),
    "exec-type.core": ehdr(e_type=ET_EXEC),
    "wrong-machine.core": ehdr(machine=EM_AARCH64),
    "phdrs-past-end.core": ehdr(phnum=5000),
    "phnum-xnum-huge.core": ehdr(phnum=PN_XNUM, shoff=64, shnum=1)
    + struct.pack("<IIQQQQIIQQ", 0, 0, 0, 0, 0, 0, 0, 0xFFFFFFFF, 0, 0),
    "note-descsz-huge.core": core_with_notes([note(b"CORE", NT_PRSTATUS, prstatus(7), descsz=0xFFFFFFF0)]),
    "nt-file-huge-count.core": core_with_notes(
        [note(b"CORE", NT_PRSTATUS, prstatus(7)),
         note(b"CORE", NT_FILE, struct.pack("<QQQQQ", 1 << 62, 4096, 0x400000, 0x401000, 0) + b"/bin/x\0")]),
    "nt-file-no-names.core": core_with_notes(
        [note(b"CORE", NT_PRSTATUS, prstatus(7)),
         note(b"CORE", NT_FILE, struct.pack("<QQ", 2, 4096) + struct.pack("<QQQ", 0x400000, 0x401000, 0) * 2)]),
    "load-past-eof.core": core_with_notes(
        [note(b"CORE", NT_PRSTATUS, prstatus(7))],
        [phdr(PT_LOAD, offset=0x7FFFFFFF0000, vaddr=0x400000, filesz=0x1000, memsz=0x1000)]),
    "load-wraps.core": core_with_notes(
        [note(b"CORE", NT_PRSTATUS, prstatus(7))],
        [phdr(PT_LOAD, offset=0, vaddr=0xFFFFFFFFFFFFF000, filesz=0x2000, memsz=0x2000)]),
    "prstatus-short.core": core_with_notes([note(b"CORE", NT_PRSTATUS, bytes(100))]),
}

for name, data in files.items():
    with open(name, "wb") as out:
        out.write(data)
