#!/bin/sh
# Compiles one BPF program and writes it as a Swift file embedding the object in base64.
# Called by the BPFCompiler build plugin: build-object.sh CLANG SOURCE OUTPUT NAME ROOT
set -eu
clang=$1 source=$2 output=$3 name=$4 root=$5
multiarch=$(gcc -print-multiarch 2>/dev/null || echo "$(uname -m)-linux-gnu")
object="$output.o"
"$clang" -target bpf -O2 -g -Wall -Werror \
    -I"$root/BPF/include" -I"$root/Sources/CShunt/include" -I"/usr/include/$multiarch" \
    -c "$source" -o "$object"
{
    printf '// Generated from BPF/progs/%s.bpf.c by the BPFCompiler plugin. Do not edit.\n' "$name"
    printf 'extension EmbeddedBPF {\n    static let %s = "' "$name"
    base64 -w0 "$object"
    printf '"\n}\n'
} > "$output.tmp"
mv "$output.tmp" "$output"
rm -f "$object"
