/* SPDX-License-Identifier: GPL-2.0 */
/* rpctls controller and CLI: what the ctl/ files share. */
#ifndef RPCTLS_CTL_H
#define RPCTLS_CTL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "rpctls/shared.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- global options (main.c) ---- */
extern bool json_output;
extern bool pretty_output;
extern int verbose;

/* ---- errors and logs (util.c) ----
 * CLI errors: one line "rpctls: error: ..." on stderr. The daemon logs with
 * log_msg(), one line per event, to stderr (journald adds the timestamps) or
 * to syslog. */
int error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

enum log_level { LOG_LVL_ERR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };
extern int log_level;
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_err(...)	log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...)	log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)	log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)	log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

uint64_t now_mono_ns(void);	/* the clock of bpf_ktime_get_ns() */
uint64_t now_real_ns(void);
bool is_prefix(const char *pfx, const char *s);
int parse_u32(const char *s, uint32_t *out);
void fmt_addr(char *buf, size_t len, const uint32_t a[4], uint16_t port);
void fmt_duration(char *buf, size_t len, uint64_t ns);
const char *tls_cipher_name(uint16_t id);	/* IANA name of a TLS 1.3 suite */

/* ---- command tables, bpftool style (main.c) ---- */
struct cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
};
/* Run the command of @cmds that argv[0] names or uniquely abbreviates. */
int cmd_select(const struct cmd *cmds, int argc, char **argv, const char *what,
	       void (*help)(void));
bool wants_help(int argc, char **argv);

/* ---- JSON output (json.c) ---- */
struct jw;
struct jw *jw_new(FILE *f, bool pretty);
void jw_free(struct jw *w);		/* also ends the line */
void jw_obj(struct jw *w);
void jw_obj_end(struct jw *w);
void jw_arr(struct jw *w);
void jw_arr_end(struct jw *w);
void jw_key(struct jw *w, const char *k);
void jw_str(struct jw *w, const char *v);
void jw_u64(struct jw *w, uint64_t v);
void jw_i64(struct jw *w, int64_t v);
void jw_bool(struct jw *w, bool v);
void jw_null(struct jw *w);
/* key + value in one call */
void jw_kstr(struct jw *w, const char *k, const char *v);
void jw_ku64(struct jw *w, const char *k, uint64_t v);
void jw_ki64(struct jw *w, const char *k, int64_t v);
void jw_kbool(struct jw *w, const char *k, bool v);

/* ---- the pinned BPF objects (bpfobj.c) ---- */
struct rpctls_fds {
	int sockets, conns, sk_cookie, srv_ports, cli_dests, ctl, attached, stats, events;
	int sinks, free_slots;
	int prog_sockops[4];	/* indexed by enum rpctls_role */
	int prog_skb, prog_msg, prog_iter, prog_rx_notify;
	int prog_guard;		/* -1 where the kernel refuses BPF LSM programs */
};

extern const char *const role_names[4];
extern const char *const phase_names[PH__MAX];
extern const char *const reason_names[RS__MAX];
extern const char *const stat_names[ST__MAX];
int role_from_name(const char *s);

/* Make sure bpffs is mounted at /sys/fs/bpf; errors are reported. */
int bpffs_ensure(void);
/* Open what is pinned under RPCTLS_PIN_DIR. Returns -ENOENT, quietly, when
 * nothing is loaded; other errors are reported. */
int bpf_open_pinned(struct rpctls_fds *fds);
/* Load bpf/rpctls.bpf.o, attach the sk_skb and sk_msg programs to the
 * sockhash and pin programs and maps. Nothing is left pinned on failure. */
int bpf_load_and_pin(void);
/* Remove every pin and the pin directories. */
void bpf_unpin_all(void);
void bpf_close_fds(struct rpctls_fds *fds);
int bpf_lock(void);		/* serialise attach/detach; returns an fd */

/* Run the iter/task_file program: every (process, fd) that holds a socket
 * of "conns". *out is malloc'ed; returns 0 or -1 (reported). */
int sockfd_scan(int prog_iter_fd, struct sockfd_rec **out, size_t *n);
/* Is a controller running (pid alive, heartbeat fresh)? Fills @cs. */
bool controller_state(int ctl_fd, struct ctl_state *cs);

/* sockets (sock.c) */
int sock_take(pid_t pid, int fd);		/* pidfd_getfd() */
uint64_t sock_cookie(int fd);
/* Abort a connection (RST to the peer, ECONNABORTED to the application),
 * discard what is queued, put SO_RCVLOWAT back to @lowat (0: leave it). */
void sock_close_clean(int fd, int lowat);
/* Take the socket filter (rx_notify) off: 0 or -1 with errno. */
int sock_filter_detach(int fd);

/* cgroup v2 helpers */
int cgroup_open(const char *path, uint64_t *id);	/* reports errors */

/* Counters: read all of "stats". */
int stats_read(int stats_fd, uint64_t out[ST__MAX]);
/* Add to a counter from userland (atomic, through the mmap of "stats"). */
void stat_bump(int idx, uint64_t n);
int stats_map(int stats_fd);

/* ---- configuration (conf.c) ---- */
#define CONF_DEFAULT_PATH "/etc/rpctls/rpctls.conf"
#define CONF_MAX_PORTS 64
#define CONF_MAX_DESTS 256

enum client_cert_mode { CC_NONE = 0, CC_REQUEST, CC_REQUIRE };

struct conf_dest {
	uint8_t addr[16];	/* IPv6 or mapped IPv4 */
	uint8_t prefixlen;	/* of the 128-bit form */
	uint8_t policy;
	uint8_t nports;
	uint16_t ports[DEST_MAX_PORTS];
	char name[256];		/* expected server name, "" = the address */
	uint32_t prog, vers;	/* of the probe when the application's first call does not say */
	int line;
};

struct conf_path {
	char path[512];
	int line;		/* where it was set, for errors found later */
};

struct conf {
	char path[512];		/* the file read, "" when none */
	int log_level;
	int hs_threads;			/* server handshake workers; -1: one per CPU */
	/* [server] */
	uint16_t srv_ports[CONF_MAX_PORTS];
	int n_srv_ports;
	uint8_t srv_policy;
	struct conf_path srv_cert, srv_key, srv_ca, srv_crl;
	int client_cert;		/* enum client_cert_mode */
	char ciphersuites[256];
	uint32_t hs_timeout_ms;
	uint32_t queue_timeout_ms;	/* waiting for accept() or a handshake slot */
	uint32_t max_handshakes;
	/* [client] */
	struct conf_path cli_ca, cli_cert, cli_key, cli_crl;
	bool require_server_alpn;
	uint8_t cli_policy;		/* default for destinations */
	uint32_t hold_max;		/* bytes an application may send before TLS */
	uint32_t hold_slots;		/* client connections in the BPF phase at once */
	struct conf_dest dests[CONF_MAX_DESTS];
	int n_dests;
};

void conf_defaults(struct conf *c);
/* Parse @path. On error, prints "FILE:LINE: what is wrong" and returns -1.
 * A missing file is an error unless @missing_ok. */
int conf_load(struct conf *c, const char *path, bool missing_ok);
/* Write the policy maps from @c (replaces their content). */
int conf_apply_maps(const struct conf *c, const struct rpctls_fds *fds);

/* ---- commands ---- */
int do_attach(int argc, char **argv);
int do_detach(int argc, char **argv);
int do_status(int argc, char **argv);
int do_conns(int argc, char **argv);
int do_run(int argc, char **argv);
int do_probe(int argc, char **argv);

#endif
