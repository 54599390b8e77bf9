// SPDX-License-Identifier: GPL-2.0
/* rpctls attach / detach: put the programs on a cgroup, take them off. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "rpctls.h"

static void link_pin_path(char *buf, size_t len, uint64_t cgid)
{
	snprintf(buf, len, RPCTLS_PIN_LINKS "/cgroup-%llu", (unsigned long long)cgid);
}

static void guard_pin_path(char *buf, size_t len, uint64_t cgid)
{
	snprintf(buf, len, RPCTLS_PIN_LINKS "/cgroup-%llu-guard", (unsigned long long)cgid);
}

/* The read guard (BPF LSM) of the cgroup, where the kernel has it. */
static int attach_guard(const struct rpctls_fds *fds, int cgfd, uint64_t cgid, const char *cgpath)
{
	char pin[256];
	int fd;

	if (fds->prog_guard < 0)
		return 0;
	guard_pin_path(pin, sizeof(pin), cgid);
	if (access(pin, F_OK) == 0)
		return 0;
	fd = bpf_link_create(fds->prog_guard, cgfd, BPF_LSM_CGROUP, NULL);
	if (fd < 0) {
		warning("%s: cannot attach the read guard (%s): server handshakes go on without it", cgpath,
			strerror(errno));
		return 0;
	}
	if (bpf_obj_pin(fd, pin)) {
		close(fd);
		return error("cannot pin %s: %s", pin, strerror(errno));
	}
	close(fd);
	return 0;
}

static int prog_id_of(int fd)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return -1;
	return (int)info.id;
}

static int link_prog_id(int link_fd)
{
	struct bpf_link_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(link_fd, &info, &len))
		return -1;
	return (int)info.prog_id;
}

/* Role of the pinned sockops program with this id, or 0. */
static int role_of_prog(const struct rpctls_fds *fds, int prog_id)
{
	for (int r = RPCTLS_ROLE_SERVER; r <= RPCTLS_ROLE_BOTH; r++)
		if (prog_id_of(fds->prog_sockops[r]) == prog_id)
			return r;
	return 0;
}

static void attach_usage(void)
{
	fprintf(stderr,
		"Usage: rpctls attach CGROUP [--role server|client|both] [-c FILE]\n"
		"\n"
		"Load the rpctls BPF programs (once) and attach them to the cgroup v2 directory\n"
		"CGROUP: RPC connections of the processes inside then go through rpctls.\n"
		"Programs, maps and the cgroup link are pinned under " RPCTLS_PIN_DIR ", so the\n"
		"attachment outlives this command. Attaching again is harmless; with another\n"
		"--role it changes the role. With -c (default " CONF_DEFAULT_PATH " when it exists)\n"
		"the served ports and protected destinations are loaded into the BPF maps;\n"
		"`rpctls run` loads them too.\n"
		"\n"
		"  -r, --role ROLE   server (RPC servers inside: answer probes), client (RPC\n"
		"                    clients inside: send probes), both; default server\n"
		"  -c, --config FILE configuration to load the policy from\n");
}

int do_attach(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "role", required_argument, NULL, 'r' },
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	const char *cgpath, *conf_path = NULL;
	int role = RPCTLS_ROLE_SERVER;
	struct rpctls_fds fds;
	struct cg_attach ca = {};
	struct conf conf;
	uint64_t cgid;
	char pin[256], rp[PATH_MAX];
	int c, cgfd, lock, link_fd, ret = 1, loaded_now = 0;
	bool again = false;

	if (wants_help(argc, argv)) {
		attach_usage();
		return 0;
	}
	optind = 0;	/* 0: glibc re-initialises (main used "+" ordering) */
	while ((c = getopt_long(argc, argv, "r:c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			role = role_from_name(optarg);
			if (role < 0)
				return error("unknown role '%s': server, client or both", optarg), 1;
			break;
		case 'c':
			conf_path = optarg;
			break;
		case 'h':
			attach_usage();
			return 0;
		default:
			attach_usage();
			return 1;
		}
	}
	if (optind != argc - 1) {
		attach_usage();
		return error("attach takes one cgroup directory"), 1;
	}
	cgpath = argv[optind];

	if (geteuid() != 0)
		return error("attach needs root (CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN)"), 1;
	conf_defaults(&conf);
	if (conf_load(&conf, conf_path ? conf_path : CONF_DEFAULT_PATH, !conf_path))
		return 1;
	cgfd = cgroup_open(cgpath, &cgid);
	if (cgfd < 0)
		return 1;
	if (bpffs_ensure())
		goto out_cg;
	lock = bpf_lock();
	if (lock < 0)
		goto out_cg;

	c = bpf_open_pinned(&fds);
	if (c == -ENOENT) {
		if (bpf_load_and_pin())
			goto out_lock;
		loaded_now = 1;
		if (bpf_open_pinned(&fds))
			goto out_unpin;
	} else if (c) {
		goto out_lock;
	}

	link_pin_path(pin, sizeof(pin), cgid);
	link_fd = bpf_obj_get(pin);
	if (link_fd >= 0) {
		int old = role_of_prog(&fds, link_prog_id(link_fd));

		if (old == role) {
			note("%s: already attached, role %s", cgpath, role_names[role]);
		} else if (bpf_link_update(link_fd, fds.prog_sockops[role], NULL)) {
			error("%s: cannot change the role: %s", cgpath, strerror(errno));
			close(link_fd);
			goto out_fds;
		} else {
			note("%s: role changed from %s to %s", cgpath, role_names[old], role_names[role]);
		}
		close(link_fd);
	} else {
		link_fd = bpf_link_create(fds.prog_sockops[role], cgfd, BPF_CGROUP_SOCK_OPS, NULL);
		if (link_fd < 0) {
			error("%s: cannot attach the sockops program: %s", cgpath, strerror(errno));
			goto out_fds;
		}
		if (bpf_obj_pin(link_fd, pin)) {
			error("cannot pin %s: %s", pin, strerror(errno));
			close(link_fd);
			goto out_fds;
		}
		close(link_fd);
	}
	if (attach_guard(&fds, cgfd, cgid, cgpath))
		goto out_fds;
	ca.role = (uint32_t)role;
	ca.attached_ns = now_real_ns();
	if (!realpath(cgpath, rp) || strlen(rp) >= sizeof(ca.path)) {
		error("%s: path too long to record (over %zu bytes)", cgpath, sizeof(ca.path) - 1);
		goto out_fds;
	}
	memcpy(ca.path, rp, strlen(rp) + 1);
	if (bpf_map_update_elem(fds.attached, &cgid, &ca, BPF_ANY))
		warning("cannot record the attachment: %s", strerror(errno));
	if (conf_apply_maps(&conf, &fds))
		goto out_fds;
	if (again)
		;
	else if (conf.path[0])
		note("%s: attached, role %s, policy from %s", ca.path, role_names[role], conf.path);
	else
		note("%s: attached, role %s; no configuration loaded: nothing is intercepted until "
		     "`rpctls run` (or attach -c FILE) sets served ports or destinations",
		     ca.path, role_names[role]);
	ret = 0;
out_fds:
	bpf_close_fds(&fds);
out_unpin:
	if (ret && loaded_now)
		bpf_unpin_all();
out_lock:
	close(lock);
out_cg:
	close(cgfd);
	return ret;
}

/* Count the cgroups still attached (by the CLI). */
static int attached_count(int attached_fd)
{
	__u64 key, next;
	int n = 0;
	void *prev = NULL;

	while (bpf_map_get_next_key(attached_fd, prev, &next) == 0) {
		n++;
		key = next;
		prev = &key;
	}
	return n;
}

/* Programs of ours attached to the cgroup without a link (bpftool cgroup
 * attach): detach them too. Returns how many. */
static int detach_legacy(const struct rpctls_fds *fds, int cgfd)
{
	__u32 ids[64], cnt = ARRAY_SIZE(ids), flags = 0;
	int n = 0;

	if (bpf_prog_query(cgfd, BPF_CGROUP_SOCK_OPS, 0, &flags, ids, &cnt))
		return 0;
	for (__u32 i = 0; i < cnt; i++) {
		if (!role_of_prog(fds, (int)ids[i]))
			continue;
		for (int r = RPCTLS_ROLE_SERVER; r <= RPCTLS_ROLE_BOTH; r++)
			if (prog_id_of(fds->prog_sockops[r]) == (int)ids[i] &&
			    bpf_prog_detach2(fds->prog_sockops[r], cgfd, BPF_CGROUP_SOCK_OPS) == 0)
				n++;
	}
	return n;
}

static int by_cookie(const void *a, const void *b)
{
	const struct sockfd_rec *x = a, *y = b;

	return x->cookie < y->cookie ? -1 : x->cookie > y->cookie;
}

/*
 * Connections of the cgroup caught in the BPF phase cannot go on without it:
 * close them cleanly. Plain and kTLS ones go on, and so does one under
 * "optional" that has not sent its first bytes yet: without rpctls it is a
 * plain connection (made visible again if it was kept blind). Returns how
 * many were closed.
 */
static int close_bpf_phase(const struct rpctls_fds *fds, uint64_t cgid)
{
	struct sockfd_rec *recs;
	size_t n;
	int closed = 0, one = 1;
	struct ctl_state cs;
	bool unseen, ctl_up = controller_state(fds->ctl, &cs);

	if (sockfd_scan(fds->prog_iter, &recs, &n))
		return 0;
	qsort(recs, n, sizeof(*recs), by_cookie);
	for (size_t i = 0; i < n; i++) {
		struct conn c;
		int fd;

		if (bpf_map_lookup_elem(fds->conns, &recs[i].cookie, &c) || c.cgroup_id != cgid ||
		    c.phase == PH_PLAIN || c.phase == PH_KTLS || c.phase == PH_CLOSED)
			continue;
		if (i > 0 && recs[i - 1].cookie == recs[i].cookie)
			continue;	/* one descriptor is enough */
		/* Unseen under "optional": a running controller still serves it
		 * (it stays in the sockhash); without one it is plain. */
		unseen = c.phase == PH_AWAIT_PROBE && c.policy == RPCTLS_POLICY_OPTIONAL;
		if (unseen && (!(c.flags & CONN_F_BLIND) || ctl_up))
			continue;
		fd = sock_take((pid_t)recs[i].tgid, (int)recs[i].fd);
		if (fd < 0 || sock_cookie(fd) != recs[i].cookie) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		if (unseen) {
			setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one));
			close(fd);
			continue;
		}
		sock_close_clean(fd, (c.flags & CONN_F_BLIND) ? 1 : 0);
		close(fd);
		closed++;
	}
	free(recs);
	return closed;
}

static void detach_usage(void)
{
	fprintf(stderr,
		"Usage: rpctls detach CGROUP\n"
		"\n"
		"Take the rpctls programs off the cgroup. When no cgroup is left attached, every\n"
		"pin under " RPCTLS_PIN_DIR " is removed. Connections already on kernel TLS, and those\n"
		"left in clear text, go on; those caught in the BPF phase (probe, handshake, held\n"
		"data) are closed cleanly.\n");
}

int do_detach(int argc, char **argv)
{
	struct rpctls_fds fds;
	uint64_t cgid;
	char pin[256];
	int cgfd, lock, ret = 1, found = 0;

	if (wants_help(argc, argv)) {
		detach_usage();
		return 0;
	}
	if (argc != 2) {
		detach_usage();
		return error("detach takes one cgroup directory"), 1;
	}
	if (geteuid() != 0)
		return error("detach needs root"), 1;
	cgfd = cgroup_open(argv[1], &cgid);
	if (cgfd < 0)
		return 1;
	lock = bpf_lock();
	if (lock < 0)
		goto out_cg;
	ret = bpf_open_pinned(&fds);
	if (ret) {
		if (ret == -ENOENT)
			error("%s is not attached: rpctls is not loaded", argv[1]);
		ret = 1;
		goto out_lock;
	}
	ret = 1;
	link_pin_path(pin, sizeof(pin), cgid);
	if (unlink(pin) == 0)
		found = 1;
	guard_pin_path(pin, sizeof(pin), cgid);
	unlink(pin);
	found += detach_legacy(&fds, cgfd);
	if (bpf_map_delete_elem(fds.attached, &cgid) == 0)
		found = found ? found : 1;
	if (!found) {
		error("%s is not attached", argv[1]);
		goto out_fds;
	}
	found = close_bpf_phase(&fds, cgid);
	if (found)
		note("%s: %d connection(s) in the BPF phase closed", argv[1], found);
	if (attached_count(fds.attached) == 0) {
		bpf_unpin_all();
		note("%s: detached; no cgroup left, pins removed", argv[1]);
	} else {
		note("%s: detached", argv[1]);
	}
	ret = 0;
out_fds:
	bpf_close_fds(&fds);
out_lock:
	close(lock);
out_cg:
	close(cgfd);
	return ret;
}
