#!/usr/bin/env python3
"""Writes the hand-made corrupt ELF, DWARF and CFI inputs of elf/, dwarf/ and cfi/ (see README.md), one defect each,
from the fuzzers' seed executable tests/fuzz/corpus/elf_image/O2.elf (tests/fuzz/seeds/tiny.c). Run from anywhere.
fiber_tables/ is written by the write_fiber_table_images tool, cores/ by cores/make_cores.py."""
import os
import re
import struct
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = open(os.path.join(HERE, "..", "fuzz", "corpus", "elf_image", "O2.elf"), "rb").read()
SHDR = "<IIQQQQIIQQ"  # sh_name sh_type sh_flags sh_addr sh_offset sh_size sh_link sh_info sh_addralign sh_entsize


def section_headers(data):
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shnum, shstrndx = struct.unpack_from("<HH", data, 0x3c)
    headers = [list(struct.unpack_from(SHDR, data, shoff + 64 * i)) for i in range(shnum)]
    names = headers[shstrndx][4]
    by_name = {}
    for i, h in enumerate(headers):
        start = names + h[0]
        by_name[data[start:data.index(b"\0", start)].decode()] = i
    return shoff, headers, by_name


def with_section_field(name, field, value):
    data = bytearray(SEED)
    shoff, headers, by_name = section_headers(data)
    header = headers[by_name[name]]
    header[field] = value
    struct.pack_into(SHDR, data, shoff + 64 * by_name[name], *header)
    return bytes(data)


def section_bytes(name):
    _, headers, by_name = section_headers(SEED)
    h = headers[by_name[name]]
    return h[4], SEED[h[4]:h[4] + h[5]]


def patch(offset, raw):
    data = bytearray(SEED)
    data[offset:offset + len(raw)] = raw
    return bytes(data)


def write(folder, name, data):
    with open(os.path.join(HERE, folder, name), "wb") as f:
        f.write(data)


SH_OFFSET, SH_SIZE, SH_LINK = 4, 5, 6

# ELF
write("elf", "truncated-header.elf", SEED[:40])
write("elf", "section-table-past-eof.elf", patch(0x28, struct.pack("<Q", len(SEED) - 64)))
write("elf", "bogus-sh-link.elf", with_section_field(".symtab", SH_LINK, 999))
write("elf", "huge-sh-size.elf", with_section_field(".debug_info", SH_SIZE, 0xFFFFFFFFFF00))
write("elf", "section-offset-wraps.elf", with_section_field(".debug_info", SH_OFFSET, 0xFFFFFFFFFFFFFFF0))

# DWARF
info_offset, info = section_bytes(".debug_info")
write("dwarf", "truncated-cu.elf", patch(info_offset, struct.pack("<I", len(info) + 0x1000)))
# The first DIE's abbreviation code (right after the 12-byte DWARF 5 CU header) names no abbreviation.
write("dwarf", "bad-abbrev.elf", patch(info_offset + 12, bytes([0x7F])))
write("dwarf", "abbrev-offset-past-section.elf", patch(info_offset + 8, struct.pack("<I", 0x7FFFFFF0)))
# The first variable with a location list (DW_FORM_sec_offset; readelf says where) names one far past the section.
dump = subprocess.run(["readelf", "--debug-dump=info", os.path.join(HERE, "..", "fuzz", "corpus", "elf_image", "O2.elf")],
                      capture_output=True, text=True, check=True).stdout
attribute = next(re.match(r"\s*<([0-9a-f]+)>", line).group(1) for line in dump.splitlines()
                 if "DW_AT_location" in line and "(location list)" in line)
write("dwarf", "loclist-past-section.elf", patch(info_offset + int(attribute, 16), struct.pack("<I", 0x7FFFFFF0)))

# CFI: raw .eh_frame bytes (the test loads them at address 0x4002a0, where the seed has them).
_, eh = section_bytes(".eh_frame")
cie_length, = struct.unpack_from("<I", eh, 0)
fde = 4 + cie_length
write("cfi", "eh_frame-valid.bin", eh)
write("cfi", "cie-length-past-end.bin", struct.pack("<I", len(eh) + 0x100) + eh[4:])
# The first FDE's CIE pointer (relative to itself) points before the section start.
write("cfi", "fde-without-cie.bin", eh[:fde + 4] + struct.pack("<I", fde + 4 + 0x40) + eh[fde + 8:])
# One FDE whose instructions are 200 DW_CFA_remember_state in a row (the cap on remembered rows is 64).
cie = eh[:fde]
body = struct.pack("<iI", 0, 0x40) + bytes([0]) + bytes([0x0A] * 200)  # pc_begin (pcrel 0), pc_range, aug len 0
body += bytes(-(len(body) + 8) % 8)
remember = cie + struct.pack("<II", len(body) + 4, fde + 4) + body + struct.pack("<I", 0)
write("cfi", "remember-state-unbounded.bin", remember)

# A compressed .debug_info (the -gz seed) whose Elf64_Chdr claims 512 MiB: more than deflate can make of its bytes.
GZ = open(os.path.join(HERE, "..", "fuzz", "corpus", "elf_image", "O2-gz.elf"), "rb").read()
_, gz_headers, gz_names = section_headers(GZ)
gz_info = gz_headers[gz_names[".debug_info"]]
lie = bytearray(GZ)
struct.pack_into("<Q", lie, gz_info[4] + 8, 512 << 20)  # ch_size, after ch_type and ch_reserved
write("elf", "compressed-size-lie.elf", bytes(lie))


def uleb(data, at):
    value, shift = 0, 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def skip_form(data, at, form):
    sizes = {0x1F: 4, 0x0E: 4, 0x0B: 1, 0x05: 2, 0x06: 4, 0x07: 8, 0x1E: 16}
    if form in sizes:
        return at + sizes[form]
    if form == 0x0F:
        return uleb(data, at)[1]
    if form == 0x08:
        return data.index(b"\0", at) + 1
    raise ValueError("form 0x%x" % form)


# The DWARF 5 line table's first file entry names directory 9 of a table of 2 (the header stays well-formed).
line_offset, line = section_bytes(".debug_line")
at = 4 + 2 + 1 + 1 + 4 + 5
opcode_base = line[at]
at += opcode_base  # opcode_base itself, then opcode_base - 1 standard opcode lengths
formats = []
format_count = line[at]
at += 1
for _ in range(format_count):
    content, at = uleb(line, at)
    form, at = uleb(line, at)
    formats.append((content, form))
count, at = uleb(line, at)
for _ in range(count):
    for _, form in formats:
        at = skip_form(line, at, form)
file_formats = []
format_count = line[at]
at += 1
for _ in range(format_count):
    content, at = uleb(line, at)
    form, at = uleb(line, at)
    file_formats.append((content, form))
_, at = uleb(line, at)  # file_names_count
for content, form in file_formats:
    if content == 2:  # DW_LNCT_directory_index
        assert form == 0x0F and line[at] < 0x80
        write("dwarf", "line-file-directory-past-table.elf", patch(line_offset + at, bytes([9])))
        break
    at = skip_form(line, at, form)
