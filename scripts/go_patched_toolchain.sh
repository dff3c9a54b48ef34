#!/usr/bin/env bash
# Makes a copy of Debian's Go toolchain whose runtime has one seed fix reverted (../shared/seeds, issue 16), so the
# suite can build victim programs that commit the real bug:
#   7978   cgocallbackg re-enters the syscall with entersyscall() instead of reentersyscall(savedpc, savedsp): after a
#          callback, g.syscallsp points into popped frames, and exitsyscall throws "syscall frame is no longer valid"
#   17785  cgocall without KeepAlive(fn), KeepAlive(arg), KeepAlive(mp): fn and arg are live at the call to
#          entersyscall (the saved syscallpc) but dead at the call to asmcgocall (the real resume point)
# Usage: go_patched_toolchain.sh BUG DEST [GOROOT]
# DEST becomes a GOROOT: src/ and pkg/include/ are real copies (Debian's are symlinks into /usr/share), bin/ and
# pkg/tool/ link to the installed toolchain. Build with `GOROOT=DEST DEST/bin/go build`: the go command compiles the
# patched runtime into the program (its build cache keeps it). DEST/patched names the bug once it is complete.
set -euo pipefail
bug=${1:?usage: go_patched_toolchain.sh BUG DEST [GOROOT]}
dest=${2:?usage: go_patched_toolchain.sh BUG DEST [GOROOT]}
goroot=${3:-$(go env GOROOT)}
cgocall=src/runtime/cgocall.go

rm -rf "$dest"
mkdir -p "$dest/pkg"
cp -rL "$goroot/src" "$dest/src"
cp -rL "$goroot/pkg/include" "$dest/pkg/include"
ln -s "$(readlink -f "$goroot/bin")" "$dest/bin"
ln -s "$(readlink -f "$goroot/pkg/tool")" "$dest/pkg/tool"
cp "$goroot/VERSION" "$dest/VERSION"

# replace FILE OLD NEW: one exact line, which must be there once (a different Go release fails loudly).
replace() {
  local file=$dest/$1 old=$2 new=$3
  local count
  count=$(grep -cxF -- "$old" "$file" || true)
  if [ "$count" != 1 ]; then
    echo "go_patched_toolchain.sh: expected one line '$old' in $1, found $count (Go $(cat "$goroot/VERSION"))" >&2
    exit 1
  fi
  local tmp=$file.tmp
  awk -v old="$old" -v new="$new" '$0 == old { print new; next } { print }' "$file" >"$tmp"
  mv "$tmp" "$file"
}

case "$bug" in
  7978)
    # savedpc/savedsp stay assigned (Go rejects unused variables); only the call that restores them goes.
    replace "$cgocall" $'\treentersyscall(savedpc, uintptr(savedsp))' \
      $'\t_, _ = savedpc, savedsp\n\tentersyscall() // Go 7978 reverted: saves a pc/sp inside this callback'
    ;;
  17785)
    replace "$cgocall" $'\tKeepAlive(fn)' $'\t// Go 17785 reverted: no KeepAlive(fn)'
    replace "$cgocall" $'\tKeepAlive(arg)' $'\t// Go 17785 reverted: no KeepAlive(arg)'
    replace "$cgocall" $'\tKeepAlive(mp)' $'\t// Go 17785 reverted: no KeepAlive(mp)'
    ;;
  *)
    echo "go_patched_toolchain.sh: unknown bug '$bug' (7978 or 17785)" >&2
    exit 2
    ;;
esac
echo "$bug" >"$dest/patched"
