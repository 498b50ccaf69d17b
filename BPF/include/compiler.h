/* SPDX-License-Identifier: Apache-2.0 */
#ifndef __SHUNT_BPF_COMPILER_H
#define __SHUNT_BPF_COMPILER_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef likely
#define likely(x) __builtin_expect(!!(x), 1)
#endif
#ifndef unlikely
#define unlikely(x) __builtin_expect(!!(x), 0)
#endif

#endif
