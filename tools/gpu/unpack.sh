#!/usr/bin/env bash
# On the GPU machine: checks the pieces tools/gpu/pack.sh made against SHA256SUMS, and
# unpacks them into KIT (default: gpu-kit beside the pieces). Names any piece that is
# missing or damaged (exit 3), so that only those are carried over again.
#
#   tools/gpu/unpack.sh [PIECES=gpu-pack] [KIT=gpu-kit]
#
# Needs only sha256sum, python3 and tar (xz is read by Python's lzma, no xz binary needed).
set -euo pipefail
pieces="${1:-gpu-pack}"
kit="${2:-gpu-kit}"
[ -f "$pieces/SHA256SUMS" ] || { echo "unpack.sh: $pieces/SHA256SUMS is missing: carry it over with the first piece" >&2; exit 3; }
bad=()
while read -r sum name; do
    if [ ! -f "$pieces/$name" ]; then
        bad+=("$name (missing)")
    elif [ "$(sha256sum "$pieces/$name" | cut -d' ' -f1)" != "$sum" ]; then
        bad+=("$name (damaged)")
    fi
done < "$pieces/SHA256SUMS"
if [ ${#bad[@]} -gt 0 ]; then
    printf 'unpack.sh: carry these over again: %s\n' "${bad[@]}" >&2
    exit 3
fi
mkdir -p "$kit"
python3 - "$pieces" "$kit" <<'PY'
import io, lzma, pathlib, sys, tarfile
pieces, kit = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
parts = sorted(pieces.glob("kit.tar.xz.part-*"))

class Joined(io.RawIOBase):
    """The pieces read one after another, as one stream."""
    def __init__(self, paths):
        self.files = [open(p, "rb") for p in paths]
    def readable(self):
        return True
    def readinto(self, b):
        while self.files:
            n = self.files[0].readinto(b)
            if n:
                return n
            self.files.pop(0).close()
        return 0

with lzma.open(io.BufferedReader(Joined(parts), 1 << 20)) as xz, tarfile.open(fileobj=xz, mode="r|") as tar:
    try:
        tar.extractall(kit, filter="data")  # Python >= 3.11.4: no absolute paths or links out
    except TypeError:
        tar.extractall(kit)
print(f"unpacked {len(parts)} pieces into {kit}")
PY
chmod +x "$kit/bin/srgraph"
echo "run: python3 $kit/tools/check.py --kit $kit --out gpu-check.json"
