// SPDX-License-Identifier: GPL-2.0
/* rpctls status / conns: what is attached where, counters, connections. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "rpctls.h"

static int map_count(int fd)
{
	__u8 key[64], next[64];
	void *prev = NULL;
	int n = 0;

	while (bpf_map_get_next_key(fd, prev, next) == 0) {
		n++;
		memcpy(key, next, sizeof(key));
		prev = key;
		if (n > 10000000)
			break;
	}
	return n;
}

static void show_prog(struct jw *w, const char *name, int fd)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &len))
		return;
	if (w) {
		jw_obj(w);
		jw_kstr(w, "name", name);
		jw_ku64(w, "id", info.id);
		jw_ku64(w, "run_cnt", info.run_cnt);
		jw_ku64(w, "run_time_ns", info.run_time_ns);
		jw_obj_end(w);
	} else {
		printf("  %-14s id %-6u runs %-10llu run time %llu ns\n", name, info.id,
		       (unsigned long long)info.run_cnt, (unsigned long long)info.run_time_ns);
	}
}

static void show_map(struct jw *w, const char *name, int fd, bool count)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	int n = count ? map_count(fd) : -1;

	if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &len))
		return;
	if (w) {
		jw_obj(w);
		jw_kstr(w, "name", name);
		jw_ku64(w, "id", info.id);
		jw_ku64(w, "max_entries", info.max_entries);
		if (n >= 0)
			jw_ku64(w, "entries", (uint64_t)n);
		jw_obj_end(w);
	} else if (n >= 0) {
		printf("  %-14s id %-6u %d of %u entries\n", name, info.id, n, info.max_entries);
	} else {
		printf("  %-14s id %-6u\n", name, info.id);
	}
}

static int link_of_cgroup(uint64_t cgid, uint32_t *link_id, uint32_t *prog_id)
{
	struct bpf_link_info info = {};
	__u32 len = sizeof(info);
	char path[256];
	int fd;

	snprintf(path, sizeof(path), RPCTLS_PIN_LINKS "/cgroup-%llu", (unsigned long long)cgid);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -1;
	if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
		close(fd);
		return -1;
	}
	close(fd);
	*link_id = info.id;
	*prog_id = info.prog_id;
	return 0;
}

static void show_cgroups(struct jw *w, int attached_fd)
{
	__u64 key, next;
	void *prev = NULL;
	struct cg_attach ca;

	while (bpf_map_get_next_key(attached_fd, prev, &next) == 0) {
		uint32_t link_id = 0, prog_id = 0;
		bool linked;

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(attached_fd, &key, &ca))
			continue;
		linked = link_of_cgroup(key, &link_id, &prog_id) == 0;
		if (w) {
			jw_obj(w);
			jw_kstr(w, "path", ca.path);
			jw_ku64(w, "cgroup_id", key);
			jw_kstr(w, "role", ca.role < 4 ? role_names[ca.role] : "?");
			jw_kbool(w, "linked", linked);
			jw_ku64(w, "link_id", link_id);
			jw_ku64(w, "prog_id", prog_id);
			jw_obj_end(w);
		} else {
			printf("  %s (cgroup id %llu): role %s, link %u, program %u%s\n", ca.path,
			       (unsigned long long)key, ca.role < 4 ? role_names[ca.role] : "?", link_id,
			       prog_id, linked ? "" : " [link missing]");
		}
	}
}

/* Controller state from "ctl": pid and whether it is alive. */
bool controller_state(int ctl_fd, struct ctl_state *cs)
{
	__u32 zero = 0;

	memset(cs, 0, sizeof(*cs));
	if (bpf_map_lookup_elem(ctl_fd, &zero, cs) || !cs->ctl_tgid)
		return false;
	return kill((pid_t)cs->ctl_tgid, 0) == 0 && now_mono_ns() - cs->heartbeat_ns < RPCTLS_HEARTBEAT_NS;
}

int do_status(int argc, char **argv)
{
	struct rpctls_fds fds;
	uint64_t st[ST__MAX];
	struct ctl_state cs;
	struct jw *w = NULL;
	bool alive;
	int r;

	if (wants_help(argc, argv)) {
		fprintf(stderr, "Usage: rpctls status [-j]\n\nWhat is attached where, the programs and maps with "
				"their ids and fill, the controller,\nand the counters.\n");
		return 0;
	}
	if (argc > 1)
		return error("status takes no arguments"), 1;
	r = bpf_open_pinned(&fds);
	if (r == -ENOENT) {
		if (json_output) {
			w = jw_new(stdout, pretty_output);
			jw_obj(w);
			jw_kbool(w, "loaded", false);
			jw_obj_end(w);
			jw_free(w);
		} else {
			printf("rpctls is not loaded (nothing pinned under %s)\n", RPCTLS_PIN_DIR);
		}
		return 0;
	}
	if (r)
		return 1;
	if (stats_read(fds.stats, st)) {
		bpf_close_fds(&fds);
		return 1;
	}
	alive = controller_state(fds.ctl, &cs);

	if (json_output) {
		w = jw_new(stdout, pretty_output);
		jw_obj(w);
		jw_kbool(w, "loaded", true);
		jw_kstr(w, "pin_dir", RPCTLS_PIN_DIR);
		jw_key(w, "controller");
		jw_obj(w);
		jw_kbool(w, "running", alive);
		jw_ku64(w, "pid", alive ? cs.ctl_tgid : 0);
		jw_obj_end(w);
		jw_key(w, "cgroups");
		jw_arr(w);
		show_cgroups(w, fds.attached);
		jw_arr_end(w);
		jw_key(w, "programs");
		jw_arr(w);
	} else {
		printf("rpctls loaded, pinned under %s\n", RPCTLS_PIN_DIR);
		if (alive)
			printf("controller: running, pid %u\n", cs.ctl_tgid);
		else
			printf("controller: not running\n");
		printf("cgroups:\n");
		show_cgroups(NULL, fds.attached);
		printf("programs:\n");
	}
	show_prog(w, "sockops_srv", fds.prog_sockops[RPCTLS_ROLE_SERVER]);
	show_prog(w, "sockops_cli", fds.prog_sockops[RPCTLS_ROLE_CLIENT]);
	show_prog(w, "sockops_both", fds.prog_sockops[RPCTLS_ROLE_BOTH]);
	show_prog(w, "skb_verdict", fds.prog_skb);
	show_prog(w, "msg_verdict", fds.prog_msg);
	show_prog(w, "iter_sockfd", fds.prog_iter);
	show_prog(w, "rx_notify", fds.prog_rx_notify);
	show_prog(w, "recv_guard", fds.prog_guard);
	if (w) {
		jw_arr_end(w);
		jw_key(w, "maps");
		jw_arr(w);
	} else {
		printf("maps:\n");
	}
	show_map(w, "sockets", fds.sockets, true);
	show_map(w, "conns", fds.conns, true);
	show_map(w, "srv_ports", fds.srv_ports, true);
	show_map(w, "cli_dests", fds.cli_dests, true);
	show_map(w, "events", fds.events, false);
	if (w) {
		jw_arr_end(w);
		jw_key(w, "counters");
		jw_obj(w);
		for (int i = 0; i < ST__MAX; i++)
			jw_ku64(w, stat_names[i], st[i]);
		jw_obj_end(w);
		jw_obj_end(w);
		jw_free(w);
	} else {
		printf("counters:\n");
		for (int i = 0; i < ST__MAX; i++)
			printf("  %-20s %llu\n", stat_names[i], (unsigned long long)st[i]);
	}
	bpf_close_fds(&fds);
	return 0;
}

/* ---- conns ---- */

static int cmp_rec(const void *a, const void *b)
{
	const struct sockfd_rec *x = a, *y = b;

	return x->cookie < y->cookie ? -1 : x->cookie > y->cookie;
}

/* The application that holds the socket: not the controller, which keeps a
 * duplicate of each kTLS connection (for its close_notify). */
static const struct sockfd_rec *owner_of(const struct sockfd_rec *recs, size_t n, uint64_t cookie,
					 uint32_t ctl_tgid)
{
	struct sockfd_rec key = { .cookie = cookie };
	const struct sockfd_rec *r = n ? bsearch(&key, recs, n, sizeof(*recs), cmp_rec) : NULL, *end = recs + n;

	if (!r)
		return NULL;
	while (r > recs && r[-1].cookie == cookie)
		r--;
	for (const struct sockfd_rec *x = r; x < end && x->cookie == cookie; x++)
		if (x->tgid != ctl_tgid)
			return x;
	return r;
}

static void flags_str(char *buf, size_t len, uint32_t f)
{
	snprintf(buf, len, "%s%s%s%s%s", f & CONN_F_HANDSHAKE ? "H" : "-", f & CONN_F_GOTCERT ? "C" : "-",
		 f & CONN_F_SELFSIGNED ? "S" : "-", f & CONN_F_VERIFIED ? "V" : "-", f & CONN_F_ALPN ? "A" : "-");
}

int do_conns(int argc, char **argv)
{
	struct rpctls_fds fds;
	struct sockfd_rec *recs = NULL;
	size_t nrecs = 0;
	struct jw *w = NULL;
	__u64 key, next;
	void *prev = NULL;
	struct conn c;
	struct ctl_state cs;
	uint64_t now = now_mono_ns();
	int r;

	if (wants_help(argc, argv)) {
		fprintf(stderr,
			"Usage: rpctls conns [-j]\n\n"
			"Connections rpctls knows: addresses, owning process, role, phase, TLS version,\n"
			"cipher, ALPN, peer certificate, flags, bytes and age. Flags, as FreeBSD's:\n"
			"H handshake done, C got a certificate, S self-signed, V verified, A ALPN sunrpc.\n");
		return 0;
	}
	if (argc > 1)
		return error("conns takes no arguments"), 1;
	r = bpf_open_pinned(&fds);
	if (r == -ENOENT)
		return error("rpctls is not loaded"), 1;
	if (r)
		return 1;
	controller_state(fds.ctl, &cs);
	if (sockfd_scan(fds.prog_iter, &recs, &nrecs) == 0)
		qsort(recs, nrecs, sizeof(*recs), cmp_rec);

	if (json_output) {
		w = jw_new(stdout, pretty_output);
		jw_arr(w);
	} else {
		printf("%-22s %-22s %-6s %-14s %-7s %-8s %-24s %-5s %s\n", "LOCAL", "PEER", "ROLE", "PHASE",
		       "PID", "COMM", "CIPHER", "FLAGS", "AGE");
	}
	while (bpf_map_get_next_key(fds.conns, prev, &next) == 0) {
		const struct sockfd_rec *o;
		char la[64], ra[64], age[32], fl[8];

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(fds.conns, &key, &c))
			continue;
		o = owner_of(recs, nrecs, key, cs.ctl_tgid);
		fmt_addr(la, sizeof(la), c.laddr, c.lport);
		fmt_addr(ra, sizeof(ra), c.raddr, c.rport);
		fmt_duration(age, sizeof(age), now > c.est_ns ? now - c.est_ns : 0);
		flags_str(fl, sizeof(fl), c.flags);
		if (w) {
			jw_obj(w);
			jw_ku64(w, "cookie", key);
			jw_ku64(w, "established_ns", c.est_ns);
			jw_kstr(w, "local", la);
			jw_kstr(w, "peer", ra);
			jw_kstr(w, "role", c.role < 4 ? role_names[c.role] : "?");
			jw_kstr(w, "policy", c.policy == RPCTLS_POLICY_REQUIRED ? "required" : "optional");
			jw_kstr(w, "phase", c.phase < PH__MAX ? phase_names[c.phase] : "?");
			if (c.reason)
				jw_kstr(w, "reason", c.reason < RS__MAX ? reason_names[c.reason] : "?");
			jw_ku64(w, "pid", o ? o->tgid : 0);
			jw_kstr(w, "comm", o ? o->comm : "");
			jw_ku64(w, "cgroup_id", c.cgroup_id);
			jw_kstr(w, "tls_version", c.tls_version == 0x0304 ? "TLSv1.3" : "");
			jw_ku64(w, "cipher", c.cipher);
			jw_kbool(w, "alpn_sunrpc", c.flags & CONN_F_ALPN);
			jw_kstr(w, "peer_certificate", c.peer);
			jw_key(w, "flags");
			jw_obj(w);
			jw_kbool(w, "handshake", c.flags & CONN_F_HANDSHAKE);
			jw_kbool(w, "gotcert", c.flags & CONN_F_GOTCERT);
			jw_kbool(w, "selfsigned", c.flags & CONN_F_SELFSIGNED);
			jw_kbool(w, "verified", c.flags & CONN_F_VERIFIED);
			jw_obj_end(w);
			jw_ku64(w, "bytes_diverted", c.bytes_in);
			jw_ku64(w, "bytes_held", c.bytes_held);
			jw_ku64(w, "handshake_ns", c.hs_ns);
			jw_ku64(w, "age_ns", now > c.est_ns ? now - c.est_ns : 0);
			jw_obj_end(w);
		} else {
			printf("%-22s %-22s %-6s %-14s %-7u %-8s %-24s %-5s %s\n", la, ra,
			       c.role < 4 ? role_names[c.role] : "?", c.phase < PH__MAX ? phase_names[c.phase] : "?",
			       o ? o->tgid : 0, o ? o->comm : "-", c.cipher ? tls_cipher_name(c.cipher) : "-", fl,
			       age);
		}
	}
	if (w) {
		jw_arr_end(w);
		jw_free(w);
	}
	free(recs);
	bpf_close_fds(&fds);
	return 0;
}
