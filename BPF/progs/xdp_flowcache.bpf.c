// SPDX-License-Identifier: GPL-2.0
/* xdp_flowcache: the kernel half of the flow cache (the fast path).
 *
 * For every frame: find the Shunt port of the ingress interface, extract the exact-match key
 * (struct shunt_flow_key), look it up in flow_cache and, on a hit, execute the entry's actions
 * and redirect the frame to the output port through the tx_ports DEVMAP. Everything else goes
 * up to the Swift slow path with XDP_PASS (a miss becomes an upcall there). VXLAN tunnel ports
 * (tunnel.h): frames for a tunnel on its underlay are looked up by their inner key and
 * stripped on a hit; an output to a tunnel port is encapsulated and sent on the underlay.
 *
 * This file is the pipeline, xdp_flowcache() at the end: parse() -> lookup() -> execute(),
 * each stage a few calls into BPF/include (docs/design/0016-bpf-layout.md): maps.h (every map),
 * parse.h (the key; it must be byte for byte the slow path's, the rules are there),
 * actions.h, tunnel.h, mirror.h and counters.h (drop() and the other ways a frame ends).
 */
#include "compiler.h"
#include "shunt_abi.h"
#include "maps.h"
#include "parse.h"
#include "counters.h"
#include "actions.h"
#include "tunnel.h"
#include "mirror.h"

/* A stage's verdict that lets the frame go on to the next stage (XDP actions are >= 0). */
#define CONTINUE (-1)

/* What a frame carries from stage to stage, besides its key. */
struct frame {
	struct shunt_fastpath_stats *st;
	struct shunt_cache_entry *e;
	struct shunt_port_counters *in_pc;      /* the counters of the key's in_port */
	const struct shunt_tunnel_port *tunnel; /* the output's tunnel; NULL: an ordinary port */
	__u64 len;             /* what the flow counts: the inner frame's bytes when decapsulated */
	__u64 mirror_sessions; /* the copies to count: the entry's when it has a mirror_group */
	__u32 decap_underlay;  /* the underlay port of a VXLAN frame looked up by its inner key */
	__u32 n_actions;       /* 0: a drop entry */
	__u32 out_port;
	__u32 target;          /* the tx_ports slot it leaves by: out_port, or the tunnel's underlay */
};

/* Parse: the input port and the key of the frame, or for VXLAN to one of our tunnel ports the
 * key of the inner frame. */
static __always_inline int parse(struct xdp_md *ctx, struct frame *f, struct shunt_flow_key *key)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0;

	f->len = data_end - data;
	f->st = bpf_map_lookup_elem(&fastpath_stats, &zero);
	if (!f->st)
		return XDP_PASS; /* cannot happen: a one-element array */
	__u32 *in_port = port_of(ctx->ingress_ifindex);
	if (!in_port || !*in_port)
		return pass_up(&f->st->not_a_port);
	__builtin_memset(key, 0, sizeof(*key));
	key->in_port = *in_port;
	if (parse_frame(data, data_end, key) != PARSE_OK)
		return pass_up(&f->st->malformed);
	if (vxlan_inner_key(data, data_end, key, &f->decap_underlay)) {
		if (parse_frame(data + SHUNT_VXLAN_OVERHEAD, data_end, key) != PARSE_OK)
			return pass_up(&f->st->malformed);
		f->len -= SHUNT_VXLAN_OVERHEAD;
	}
	return CONTINUE;
}

/* Where an executable entry sends the frame. Everything is decided before the frame is touched,
 * so a frame passed up is the one received. */
static __always_inline int choose_output(struct frame *f)
{
	f->out_port = executable_output(f->e, f->n_actions);
	if (!f->out_port) /* the slow path should have marked this entry USERSPACE */
		return pass_up(&f->st->userspace);
	f->target = f->out_port;
	f->tunnel = vxlan_tunnel(f->out_port);
	if (f->tunnel) {
		if (!vxlan_can_send(f->tunnel, f->len))
			return pass_userspace(f->st, f->e);
		f->target = f->tunnel->underlay_port;
	}
	return CONTINUE;
}

/* Lookup: the frame's cache entry, and what it does with the frame. */
static __always_inline int lookup(struct frame *f, const struct shunt_flow_key *key)
{
	struct shunt_cache_entry *e = bpf_map_lookup_elem(&flow_cache, key);

	if (!e)
		return pass_up(&f->st->misses);
	if (e->flags & SHUNT_CACHE_USERSPACE)
		return pass_userspace(f->st, e);
	f->e = e;
	f->in_pc = port_counters(f->st, key->in_port);
	f->n_actions = e->n_actions;
	if (f->n_actions == 0)
		return CONTINUE; /* a drop entry */
	return choose_output(f);
}

/* A hit on a drop entry: counted as a hit, dropped for the entry's reason. */
static __always_inline int drop_entry(struct frame *f)
{
	__u32 reason = f->e->drop_reason;

	if (reason >= SHUNT_DROP__MAX)
		reason = SHUNT_DROP_FLOW_DROP;
	if (f->decap_underlay)
		count_decap(f->st, f->decap_underlay, f->len);
	count_hit(f->e, f->st, f->len);
	count_rx(f->in_pc, f->len);
	return drop(f->st, f->in_pc, reason);
}

/* Records the target before the frame is touched: bpf_redirect_map only records it (the frame
 * leaves after the program returns, as modified by then), and returns XDP_PASS when the port
 * has no device, so such a frame goes up unmodified for the slow path to output or count.
 * Mirrored flows (never with a tunnel on either side: the slow path keeps those) leave by a
 * broadcast to the output port and the analysis ports; their sessions are read here, with the
 * group, for transmit() to count the copies. */
static __always_inline long redirect(struct frame *f)
{
	__u32 group = f->e->mirror_group;
	f->mirror_sessions = group ? f->e->mirror_sessions : 0;
	if (group && !f->tunnel && !f->decap_underlay)
		return mirror_redirect(group);
	return bpf_redirect_map(&tx_ports, f->target, XDP_PASS);
}

/* Output to a tunnel port: the outer headers in front of the (already edited) inner frame. */
static __always_inline int encapsulate(struct xdp_md *ctx, const struct frame *f, __u64 tun_id, __u32 hash)
{
	__u64 inner = (__u64)((long)ctx->data_end - (long)ctx->data);
	int rc = vxlan_encap(ctx, f->tunnel, tun_id, hash);

	if (rc != VXLAN_ENCAP_OK)
		return drop(f->st, f->in_pc, rc == VXLAN_ENCAP_MTU ? SHUNT_DROP_TUNNEL_MTU : SHUNT_DROP_TX_ERROR);
	count_encap(f->st, f->out_port, f->tunnel->underlay_port, inner);
	return XDP_REDIRECT;
}

/* Output to an ordinary port, and the mirror copies. Every copy is the frame as it leaves:
 * egress copies after the edits, and ingress copies only of flows without edits (the slow
 * path keeps the others). */
static __always_inline int transmit(struct xdp_md *ctx, const struct frame *f)
{
	__u64 out_len = (__u64)((long)ctx->data_end - (long)ctx->data);

	count_tx(f->st, f->out_port, out_len);
	if (f->mirror_sessions)
		count_mirrors(f->mirror_sessions, out_len);
	return XDP_REDIRECT;
}

/* Execute: the entry's actions on the frame, then its output (or its drop). */
static __always_inline int execute(struct xdp_md *ctx, struct frame *f, const struct shunt_flow_key *key)
{
	if (f->n_actions == 0)
		return drop_entry(f);
	if (redirect(f) != XDP_REDIRECT)
		return pass_up(&f->st->redirect_errors);
	count_hit(f->e, f->st, f->len);
	count_rx(f->in_pc, f->len);
	if (f->decap_underlay) {
		count_decap(f->st, f->decap_underlay, f->len);
		if (vxlan_strip(ctx))
			return drop(f->st, f->in_pc, SHUNT_DROP_TX_ERROR);
	}
	__u64 tun_id = key->tun_id;
	int rc = execute_actions(ctx, f->e, f->n_actions, &tun_id);
	if (rc == ACT_TTL_EXPIRED)
		return drop(f->st, f->in_pc, SHUNT_DROP_TTL_EXPIRED);
	/* bpf_xdp_adjust_head refused (no headroom): the frame may be half-modified, so it cannot
	 * go up; the kernel refused to transmit it as modified. */
	if (rc != ACT_OK)
		return drop(f->st, f->in_pc, SHUNT_DROP_TX_ERROR);
	if (f->tunnel)
		return encapsulate(ctx, f, tun_id, vxlan_flow_hash(key));
	return transmit(ctx, f);
}

SEC("xdp")
int xdp_flowcache(struct xdp_md *ctx)
{
	struct shunt_flow_key key;
	struct frame f = {};
	int verdict;

	verdict = parse(ctx, &f, &key);
	if (verdict == CONTINUE)
		verdict = lookup(&f, &key);
	if (verdict == CONTINUE)
		verdict = execute(ctx, &f, &key);
	return verdict;
}

char LICENSE[] SEC("license") = "GPL";
