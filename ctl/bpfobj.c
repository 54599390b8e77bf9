// SPDX-License-Identifier: GPL-2.0
/* Loading, pinning and finding the BPF objects; cgroup and counter helpers. */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <netinet/in.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "rpctls.h"
#include "rpctls.skel.h"
#include "guard.skel.h"

const char *const role_names[4] = { "none", "server", "client", "both" };

const char *const phase_names[PH__MAX] = {
	[PH_NONE] = "none",
	[PH_AWAIT_PROBE] = "awaiting-probe",
	[PH_PROBE] = "probe",
	[PH_HANDSHAKE] = "handshake",
	[PH_USERSPACE_TLS] = "userspace-tls",
	[PH_KTLS] = "ktls",
	[PH_PLAIN] = "plain",
	[PH_HOLD] = "hold",
	[PH_REFUSED] = "refused",
	[PH_CLOSED] = "closed",
};

const char *const reason_names[RS__MAX] = {
	[RS_NONE] = "none",
	[RS_PLAIN_REQUIRED] = "plain RPC where TLS is required",
	[RS_NOT_RPC] = "first bytes are not an RPC call",
	[RS_SHORT_FIRST] = "first segment too short to classify",
	[RS_SPURIOUS] = "bytes between the probe and its reply",
	[RS_PROBE_MALFORMED] = "malformed AUTH_TLS probe",
	[RS_NO_CONTROLLER] = "no controller running",
	[RS_HANDSHAKE] = "TLS handshake failed",
	[RS_TIMEOUT] = "timeout",
	[RS_HANDOVER] = "no safe hand-over to kTLS",
	[RS_NO_SLOT] = "no hold slot free",
	[RS_STARTTLS_REFUSED] = "server refused STARTTLS",
	[RS_PEER_RESET] = "peer reset",
	[RS_CERT] = "server certificate refused",
	[RS_NO_ALPN] = "server did not answer ALPN sunrpc",
	[RS_HOLD_LIMIT] = "too much held before TLS",
	[RS_PEER_ALERT] = "fatal alert from the peer",
	[RS_KEYUPDATE] = "KeyUpdate the kernel cannot follow",
	[RS_REVOKED] = "peer certificate revoked",
};

const char *const stat_names[ST__MAX] = {
	[ST_CONNS] = "connections",
	[ST_CONNS_SERVER] = "connections_server",
	[ST_CONNS_CLIENT] = "connections_client",
	[ST_PROBES] = "probes_received",
	[ST_PROBES_SENT] = "probes_sent",
	[ST_PLAIN] = "plain",
	[ST_REFUSED] = "refused",
	[ST_HS_DONE] = "handshakes_done",
	[ST_HS_FAILED] = "handshakes_failed",
	[ST_HANDOVERS] = "handovers_ktls",
	[ST_HANDOVER_CLOSED] = "handover_closed",
	[ST_BYTES_DIVERTED] = "bytes_diverted",
	[ST_BYTES_HELD] = "bytes_held",
	[ST_EV_LOST] = "events_lost",
	[ST_CLOSED] = "closed",
};

int role_from_name(const char *s)
{
	for (int r = RPCTLS_ROLE_SERVER; r <= RPCTLS_ROLE_BOTH; r++)
		if (is_prefix(s, role_names[r]))
			return r;
	return -1;
}

/* ---- libbpf messages: kept, and shown when something fails ---- */

static char libbpf_log[16384];
static size_t libbpf_log_len;

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	int n;

	if (level == LIBBPF_DEBUG && verbose < 2)
		return 0;
	if (verbose >= 2)
		return vfprintf(stderr, fmt, ap);
	if (libbpf_log_len >= sizeof(libbpf_log) - 1)
		return 0;
	n = vsnprintf(libbpf_log + libbpf_log_len, sizeof(libbpf_log) - libbpf_log_len, fmt, ap);
	if (n > 0)
		libbpf_log_len += (size_t)n;
	if (libbpf_log_len >= sizeof(libbpf_log))
		libbpf_log_len = sizeof(libbpf_log) - 1;
	return n;
}

/* The last lines of what libbpf and the verifier said, indented. */
static void show_libbpf_log(void)
{
	const char *p = libbpf_log, *start = libbpf_log;
	int lines = 0;

	for (p = libbpf_log + libbpf_log_len; p > libbpf_log; p--)
		if (*p == '\n' && ++lines > 12) {
			start = p + 1;
			break;
		}
	for (p = start; *p;) {
		const char *nl = strchr(p, '\n');
		int n = nl ? (int)(nl - p) : (int)strlen(p);

		if (n)
			fprintf(stderr, "    %.*s\n", n, p);
		p += n + (nl ? 1 : 0);
	}
}

/* ---- bpffs ---- */

int bpffs_ensure(void)
{
	struct statfs st;

	if (statfs("/sys/fs/bpf", &st) == 0 && st.f_type == BPF_FS_MAGIC)
		return 0;
	if (mkdir("/sys/fs/bpf", 0755) && errno != EEXIST)
		return error("cannot create /sys/fs/bpf: %s", strerror(errno));
	if (mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700"))
		return error("cannot mount the BPF filesystem on /sys/fs/bpf: %s%s", strerror(errno),
			     errno == EPERM ? " (run as root)" : "");
	return 0;
}

int bpf_lock(void)
{
	int fd;

	mkdir("/run", 0755);
	fd = open("/run/rpctls.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return error("cannot open /run/rpctls.lock: %s%s", strerror(errno),
			     errno == EACCES ? " (run as root)" : "");
	if (flock(fd, LOCK_EX)) {
		close(fd);
		return error("cannot lock /run/rpctls.lock: %s", strerror(errno));
	}
	return fd;
}

/* ---- pins ---- */

struct pin {
	const char *name;
	size_t off;	/* in struct rpctls_fds */
};

#define MAPPIN(n) { #n, offsetof(struct rpctls_fds, n) }
static const struct pin map_pins[] = {
	MAPPIN(sockets), MAPPIN(conns), MAPPIN(sk_cookie), MAPPIN(srv_ports), MAPPIN(cli_dests),
	MAPPIN(ctl), MAPPIN(attached), MAPPIN(stats), MAPPIN(events), MAPPIN(sinks), MAPPIN(free_slots),
};
/* Maps of the object that only BPF uses (not opened by the controller). */
static const char *const private_maps[] = { "scratch", "sk_readers" };
/* guard.bpf.o's tracing links, pinned under links/ (optional). */
static const char *const guard_links[] = { "close_watch", "rx_watch", "rd_enter_parser", "rd_enter" };

static void unpin_guard_links(void)
{
	char path[256];

	for (size_t i = 0; i < ARRAY_SIZE(guard_links); i++) {
		snprintf(path, sizeof(path), RPCTLS_PIN_LINKS "/%s", guard_links[i]);
		unlink(path);
	}
}

static const struct pin prog_pins[] = {
	{ "sockops_srv", offsetof(struct rpctls_fds, prog_sockops[RPCTLS_ROLE_SERVER]) },
	{ "sockops_cli", offsetof(struct rpctls_fds, prog_sockops[RPCTLS_ROLE_CLIENT]) },
	{ "sockops_both", offsetof(struct rpctls_fds, prog_sockops[RPCTLS_ROLE_BOTH]) },
	{ "skb_verdict", offsetof(struct rpctls_fds, prog_skb) },
	{ "msg_verdict", offsetof(struct rpctls_fds, prog_msg) },
	{ "iter_sockfd", offsetof(struct rpctls_fds, prog_iter) },
	{ "rx_notify", offsetof(struct rpctls_fds, prog_rx_notify) },
	{ "recv_guard", offsetof(struct rpctls_fds, prog_guard) },	/* optional: guard.bpf.o */
};

#define FD_AT(fds, off) (*(int *)((char *)(fds) + (off)))

static void fds_init(struct rpctls_fds *fds)
{
	memset(fds, 0, sizeof(*fds));
	for (size_t i = 0; i < ARRAY_SIZE(map_pins); i++)
		FD_AT(fds, map_pins[i].off) = -1;
	for (size_t i = 0; i < ARRAY_SIZE(prog_pins); i++)
		FD_AT(fds, prog_pins[i].off) = -1;
	fds->prog_sockops[0] = -1;
}

void bpf_close_fds(struct rpctls_fds *fds)
{
	for (size_t i = 0; i < ARRAY_SIZE(map_pins); i++)
		if (FD_AT(fds, map_pins[i].off) >= 0)
			close(FD_AT(fds, map_pins[i].off));
	for (size_t i = 0; i < ARRAY_SIZE(prog_pins); i++)
		if (FD_AT(fds, prog_pins[i].off) >= 0)
			close(FD_AT(fds, prog_pins[i].off));
	fds_init(fds);
}

int bpf_open_pinned(struct rpctls_fds *fds)
{
	char path[256];
	struct ctl_state cs;
	__u32 zero = 0;

	fds_init(fds);
	if (access(RPCTLS_PIN_MAPS "/conns", F_OK) && errno == ENOENT)
		return -ENOENT;
	for (size_t i = 0; i < ARRAY_SIZE(map_pins); i++) {
		snprintf(path, sizeof(path), RPCTLS_PIN_MAPS "/%s", map_pins[i].name);
		FD_AT(fds, map_pins[i].off) = bpf_obj_get(path);
		if (FD_AT(fds, map_pins[i].off) < 0) {
			int e = errno;

			bpf_close_fds(fds);
			return error("cannot open %s: %s", path, strerror(e));
		}
	}
	for (size_t i = 0; i < ARRAY_SIZE(prog_pins); i++) {
		snprintf(path, sizeof(path), RPCTLS_PIN_PROGS "/%s", prog_pins[i].name);
		FD_AT(fds, prog_pins[i].off) = bpf_obj_get(path);
		if (FD_AT(fds, prog_pins[i].off) < 0 && errno == ENOENT &&
		    &FD_AT(fds, prog_pins[i].off) == &fds->prog_guard)
			continue;
		if (FD_AT(fds, prog_pins[i].off) < 0) {
			int e = errno;

			bpf_close_fds(fds);
			return error("cannot open %s: %s", path, strerror(e));
		}
	}
	if (bpf_map_lookup_elem(fds->ctl, &zero, &cs) == 0 && cs.abi && cs.abi != RPCTLS_ABI) {
		bpf_close_fds(fds);
		return error("the BPF objects pinned under %s are of ABI %u, this rpctls speaks %u: "
			     "detach every cgroup with the rpctls that attached them",
			     RPCTLS_PIN_DIR, cs.abi, RPCTLS_ABI);
	}
	return 0;
}

static void unpin_dir(const char *dir, const struct pin *pins, size_t n)
{
	char path[256];

	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, pins[i].name);
		unlink(path);
	}
}

void bpf_unpin_all(void)
{
	char path[256];

	unpin_guard_links();
	unpin_dir(RPCTLS_PIN_MAPS, map_pins, ARRAY_SIZE(map_pins));
	for (size_t i = 0; i < ARRAY_SIZE(private_maps); i++) {
		snprintf(path, sizeof(path), RPCTLS_PIN_MAPS "/%s", private_maps[i]);
		unlink(path);
	}
	unpin_dir(RPCTLS_PIN_PROGS, prog_pins, ARRAY_SIZE(prog_pins));
	rmdir(RPCTLS_PIN_MAPS);
	rmdir(RPCTLS_PIN_PROGS);
	rmdir(RPCTLS_PIN_LINKS);
	rmdir(RPCTLS_PIN_DIR);
}

/* Make sure the tls module is there: rx_watch attaches to one of its
 * functions. Asking for the ULP loads it, even on a socket that refuses it. */
static void tls_module_load(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd >= 0) {
		setsockopt(fd, IPPROTO_TCP, 31 /* TCP_ULP */, "tls", 3);
		close(fd);
	}
}

/*
 * guard.bpf.o (BPF LSM and tracing programs) on the maps of @core. Some
 * kernels refuse those: first everything, then the read guard alone, then
 * nothing; rpctls works without them, and says what it lacks.
 */
static void load_guard(struct bpf_object *core)
{
	static const char *const shared[] = { "conns", "sk_cookie", "ctl", "events" };
	const char *lacking = NULL;

	tls_module_load();
	/* The read mark watches functions a kernel may not have: optional. */
	bool readers = libbpf_find_vmlinux_btf_id("tcp_bpf_recvmsg_parser", BPF_TRACE_FENTRY) > 0 &&
		       libbpf_find_vmlinux_btf_id("tcp_bpf_recvmsg", BPF_TRACE_FENTRY) > 0;

	for (int pass = 0; pass < 2; pass++) {
		struct guard_bpf *g = guard_bpf__open();
		struct bpf_link *l[4] = {};
		int err = g ? 0 : -errno;

		for (size_t i = 0; !err && i < ARRAY_SIZE(shared); i++)
			err = bpf_map__reuse_fd(bpf_object__find_map_by_name(g->obj, shared[i]),
						bpf_map__fd(bpf_object__find_map_by_name(core, shared[i])));
		if (!err) {
			struct bpf_program *tracing[4] = { g->progs.close_watch, g->progs.rx_watch,
							   g->progs.rd_enter_parser, g->progs.rd_enter };
			int n = pass == 1 ? 0 : readers ? 4 : 2;

			for (int i = n; i < 4; i++)
				bpf_program__set_autoload(tracing[i], false);
			err = guard_bpf__load(g);
			for (int i = 0; !err && i < n; i++) {
				char path[256];

				snprintf(path, sizeof(path), RPCTLS_PIN_LINKS "/%s", guard_links[i]);
				l[i] = bpf_program__attach(tracing[i]);
				if (!l[i] || bpf_link__pin(l[i], path))
					err = -errno ? -errno : -EINVAL;
			}
			if (!err && n == 4 && bpf_map__pin(g->maps.sk_readers, RPCTLS_PIN_MAPS "/sk_readers"))
				err = -errno ? -errno : -EINVAL;
		}
		if (!err)
			err = bpf_program__pin(g->progs.recv_guard, RPCTLS_PIN_PROGS "/recv_guard");
		for (int i = 0; i < 4; i++)
			bpf_link__destroy(l[i]);
		guard_bpf__destroy(g);
		if (!err) {
			if (pass == 1)
				lacking = "close_notify when an application closes, and the handling of alerts and "
					  "KeyUpdates after the hand-over";
			break;
		}
		unpin_guard_links();
		unlink(RPCTLS_PIN_MAPS "/sk_readers");
		lacking = "the read guard, close_notify on close, alerts after the hand-over";
		if (pass == 1)
			warning("the kernel refuses rpctls's BPF LSM and tracing programs (%s)", strerror(-err));
	}
	if (lacking)
		warning("running without %s (see LIMITATIONS in rpctls(8))", lacking);
}

/*
 * The object is the one built into rpctls (a libbpf skeleton), or the file
 * RPCTLS_BPF_OBJECT names: for packagers who ship rpctls.bpf.o apart, and
 * for the tests, which make the kernel reject a broken object.
 */
int bpf_load_and_pin(void)
{
	const char *file = getenv("RPCTLS_BPF_OBJECT");
	struct rpctls_bpf *skel = NULL;
	struct bpf_object *obj;
	struct bpf_program *prog, *skb, *msg;
	struct bpf_map *map, *sockets, *ctl;
	struct ctl_state cs = { .abi = RPCTLS_ABI };
	char path[256];
	__u32 zero = 0;
	int err;

	libbpf_set_print(libbpf_print);
	libbpf_log_len = 0;
	libbpf_log[0] = 0;

	if (file) {
		obj = bpf_object__open_file(file, NULL);
		if (!obj) {
			error("cannot open the BPF object %s: %s", file, strerror(errno));
			show_libbpf_log();
			return -1;
		}
	} else {
		skel = rpctls_bpf__open();
		if (!skel) {
			error("cannot open the BPF object: %s", strerror(errno));
			show_libbpf_log();
			return -1;
		}
		obj = skel->obj;
	}
	err = bpf_object__load(obj);
	if (err) {
		error("the kernel rejected the BPF programs (%s)%s", strerror(-err),
		      -err == EPERM ? ": run as root, with BPF allowed" : "; what it said:");
		show_libbpf_log();
		goto out;
	}
	skb = bpf_object__find_program_by_name(obj, "skb_verdict");
	msg = bpf_object__find_program_by_name(obj, "msg_verdict");
	sockets = bpf_object__find_map_by_name(obj, "sockets");
	ctl = bpf_object__find_map_by_name(obj, "ctl");
	if (!skb || !msg || !sockets || !ctl) {
		err = error("the BPF object lacks skb_verdict, msg_verdict, sockets or ctl");
		goto out;
	}
	err = -1;
	if (bpf_prog_attach(bpf_program__fd(skb), bpf_map__fd(sockets), BPF_SK_SKB_VERDICT, 0)) {
		error("cannot attach the sk_skb verdict to the sockhash: %s", strerror(errno));
		goto out;
	}
	if (bpf_prog_attach(bpf_program__fd(msg), bpf_map__fd(sockets), BPF_SK_MSG_VERDICT, 0)) {
		error("cannot attach the sk_msg program to the sockhash: %s", strerror(errno));
		goto out;
	}
	if (bpf_map_update_elem(bpf_map__fd(ctl), &zero, &cs, BPF_ANY)) {
		error("cannot initialise the ctl map: %s", strerror(errno));
		goto out;
	}
	if ((mkdir(RPCTLS_PIN_DIR, 0700) && errno != EEXIST) ||
	    (mkdir(RPCTLS_PIN_MAPS, 0700) && errno != EEXIST) ||
	    (mkdir(RPCTLS_PIN_PROGS, 0700) && errno != EEXIST) ||
	    (mkdir(RPCTLS_PIN_LINKS, 0700) && errno != EEXIST)) {
		error("cannot create the pin directories under %s: %s", RPCTLS_PIN_DIR, strerror(errno));
		goto fail;
	}
	bpf_object__for_each_map(map, obj) {
		snprintf(path, sizeof(path), RPCTLS_PIN_MAPS "/%s", bpf_map__name(map));
		if (bpf_map__pin(map, path)) {
			error("cannot pin %s: %s", path, strerror(errno));
			goto fail;
		}
	}
	bpf_object__for_each_program(prog, obj) {
		snprintf(path, sizeof(path), RPCTLS_PIN_PROGS "/%s", bpf_program__name(prog));
		if (bpf_program__pin(prog, path)) {
			error("cannot pin %s: %s", path, strerror(errno));
			goto fail;
		}
	}
	if (!file)
		load_guard(obj);
	err = 0;
	goto out;
fail:
	bpf_unpin_all();
out:
	if (skel)
		rpctls_bpf__destroy(skel);
	else
		bpf_object__close(obj);
	return err ? -1 : 0;
}

/* ---- which process holds a socket ---- */

int sockfd_scan(int prog_iter_fd, struct sockfd_rec **out, size_t *n)
{
	struct sockfd_rec *recs = NULL;
	size_t cap = 0, len = 0;
	int link, it;
	ssize_t r = 0;

	*out = NULL;
	*n = 0;
	link = bpf_link_create(prog_iter_fd, 0, BPF_TRACE_ITER, NULL);
	if (link < 0)
		return error("cannot create the socket iterator: %s", strerror(errno));
	it = bpf_iter_create(link);
	if (it < 0) {
		close(link);
		return error("cannot run the socket iterator: %s", strerror(errno));
	}
	for (;;) {
		if (len == cap) {
			struct sockfd_rec *p;

			cap = cap ? cap * 2 : 64;
			p = realloc(recs, cap * sizeof(*recs));
			if (!p)
				break;
			recs = p;
		}
		r = read(it, &recs[len], (cap - len) * sizeof(*recs));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r / sizeof(*recs);
	}
	close(it);
	close(link);
	if (r < 0) {
		free(recs);
		return error("reading the socket iterator: %s", strerror(errno));
	}
	*out = recs;
	*n = len;
	return 0;
}

/* ---- cgroups ---- */

int cgroup_open(const char *path, uint64_t *id)
{
	struct {
		struct file_handle fh;
		uint64_t id;
	} h = { .fh.handle_bytes = sizeof(uint64_t) };
	struct statfs st;
	int fd, mnt;

	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return error("%s: %s", path, errno == ENOTDIR ? "not a directory, so not a cgroup" : strerror(errno));
	if (fstatfs(fd, &st) || st.f_type != CGROUP2_SUPER_MAGIC) {
		close(fd);
		return error("%s: not a cgroup v2 directory (cgroup2 is usually mounted on /sys/fs/cgroup "
			     "or /sys/fs/cgroup/unified)", path);
	}
	if (name_to_handle_at(fd, "", &h.fh, &mnt, AT_EMPTY_PATH)) {
		int e = errno;

		close(fd);
		return error("%s: cannot get the cgroup id: %s", path, strerror(e));
	}
	*id = h.id;
	return fd;
}

/* ---- counters ---- */

static uint64_t *stats_mem;

int stats_map(int stats_fd)
{
	size_t len = (ST__MAX * sizeof(uint64_t) + 4095) & ~4095ul;
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, stats_fd, 0);

	if (p == MAP_FAILED)
		return error("cannot map the counters: %s", strerror(errno));
	stats_mem = p;
	return 0;
}

void stat_bump(int idx, uint64_t n)
{
	if (stats_mem && idx >= 0 && idx < ST__MAX)
		__atomic_fetch_add(&stats_mem[idx], n, __ATOMIC_RELAXED);
}

int stats_read(int stats_fd, uint64_t out[ST__MAX])
{
	for (__u32 i = 0; i < ST__MAX; i++)
		if (bpf_map_lookup_elem(stats_fd, &i, &out[i]))
			return error("cannot read counter %u: %s", i, strerror(errno));
	return 0;
}
