// SPDX-License-Identifier: GPL-2.0
/*
 * rpctls run: the controller daemon. One thread, one epoll loop over the
 * ring buffer of the BPF programs, a signalfd and the timers of the
 * connections it is working on. It answers probes, runs handshakes, hands
 * sockets over to kernel TLS, and keeps the heartbeat that tells the BPF
 * programs a controller is there.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <openssl/ssl.h>

#include "daemon.h"

/* ---- connection table ---- */

static unsigned slot_of(uint64_t cookie)
{
	return (unsigned)((cookie * 0x9e3779b97f4a7c15ull) >> 52) & 4095;
}

struct cx *cx_find(struct daemon *d, uint64_t cookie)
{
	for (struct cx *c = d->tab[slot_of(cookie)]; c; c = c->next)
		if (c->cookie == cookie)
			return c;
	return NULL;
}

struct cx *cx_add(struct daemon *d, uint64_t cookie)
{
	struct cx *c = cx_find(d, cookie);
	struct conn info;
	char la[64], ra[64];

	if (c)
		return c;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->cookie = cookie;
	c->fd = c->app_fd = -1;
	c->t_new = now_mono_ns();
	if (bpf_map_lookup_elem(d->fds.conns, &cookie, &info) == 0) {
		c->role = info.role;
		c->policy = info.policy;
		fmt_addr(la, sizeof(la), info.laddr, info.lport);
		fmt_addr(ra, sizeof(ra), info.raddr, info.rport);
		snprintf(c->name, sizeof(c->name), c->role == RPCTLS_ROLE_SERVER ? "%s -> %s" : "%s <- %s",
			 ra, la);
	} else {
		snprintf(c->name, sizeof(c->name), "cookie %llu", (unsigned long long)cookie);
	}
	c->next = d->tab[slot_of(cookie)];
	d->tab[slot_of(cookie)] = c;
	d->n_cx++;
	return c;
}

void cx_free(struct daemon *d, struct cx *c)
{
	struct cx **pp = &d->tab[slot_of(c->cookie)];

	while (*pp && *pp != c)
		pp = &(*pp)->next;
	if (*pp)
		*pp = c->next;
	if (c->cli)
		cli_release(d, c);
	if (c->held)
		d->n_held--;
	if (c->in_slot) {
		d->n_handshakes--;
		d->dequeue = true;	/* not from here: callers walk the table */
	}
	d->n_cx--;
	if (c->busy) {		/* a worker is in SSL_accept(): when it is back */
		c->doomed = true;
		return;
	}
	cx_release(c);
}

void cx_release(struct cx *c)
{
	X509_free(c->peer_cert);
	if (c->ssl)
		SSL_free(c->ssl);
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

void cx_set_phase(struct daemon *d, struct cx *c, int phase)
{
	struct conn info;

	if (bpf_map_lookup_elem(d->fds.conns, &c->cookie, &info))
		return;
	info.phase = (uint8_t)phase;
	if (c->pid)
		info.pid = (uint32_t)c->pid;
	bpf_map_update_elem(d->fds.conns, &c->cookie, &info, BPF_EXIST);
}

void cx_record_tls(struct daemon *d, struct cx *c, int phase, uint32_t flags, const char *subject, uint64_t took)
{
	const SSL_CIPHER *ciph = SSL_get_current_cipher(c->ssl);
	struct conn info;

	if (bpf_map_lookup_elem(d->fds.conns, &c->cookie, &info))
		return;
	if (phase >= 0)
		info.phase = (uint8_t)phase;
	info.flags |= flags;
	info.pid = (uint32_t)c->pid;
	info.cipher = ciph ? (uint16_t)SSL_CIPHER_get_protocol_id(ciph) : 0;
	info.tls_version = (uint16_t)SSL_version(c->ssl);
	info.hs_ns = took;
	snprintf(info.peer, sizeof(info.peer), "%s", subject);
	bpf_map_update_elem(d->fds.conns, &c->cookie, &info, BPF_EXIST);
}

void cx_refuse(struct daemon *d, struct cx *c, int reason, const char *fmt, ...)
{
	char why[512];
	struct conn info;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	log_warn("%s: refused (%s): %s", c->name, reason_names[reason], why);
	stat_bump(ST_REFUSED, 1);
	if (bpf_map_lookup_elem(d->fds.conns, &c->cookie, &info) == 0) {
		info.phase = PH_REFUSED;
		info.reason = (uint8_t)reason;
		bpf_map_update_elem(d->fds.conns, &c->cookie, &info, BPF_EXIST);
	}
	cx_close(d, c);
}

/* Close the connection if we hold it, else once its descriptor is found. */
void cx_close(struct daemon *d, struct cx *c)
{
	if (c->fd < 0) {
		c->closing = true;
		c->state = CX_LOOKUP;
		c->deadline = now_mono_ns() + 2000000000ull;
		d->lookup_pending = true;
		return;
	}
	if (c->filter_on)
		sock_filter_detach(c->fd);
	sock_close_clean(c->fd, c->lowat_raised ? c->saved_lowat : 0);
	cx_free(d, c);
}

/* ---- finding the application's descriptor ---- */

static int rec_cmp(const void *a, const void *b)
{
	const struct sockfd_rec *x = a, *y = b;

	return x->cookie < y->cookie ? -1 : x->cookie > y->cookie;
}

void cx_lookup_all(struct daemon *d)
{
	struct sockfd_rec *recs, key;
	size_t n;
	uint64_t took;
	int failed;

	d->lookup_pending = false;
	d->last_scan = now_mono_ns();
	failed = sockfd_scan(d->fds.prog_iter, &recs, &n);
	/* The next scan no sooner than twice this one took (between 1 and
	 * 5 ms): an accept() is found at once, a storm does not spend the
	 * loop on scans. */
	took = now_mono_ns() - d->last_scan;
	d->scan_gap = took * 2 < 1000000ull ? 1000000ull : took * 2 > 5000000ull ? 5000000ull : took * 2;
	if (failed)
		return;
	qsort(recs, n, sizeof(*recs), rec_cmp);
	for (int i = 0; i < 4096; i++) {
		struct cx *c = d->tab[i], *next;

		for (; c; c = next) {
			struct sockfd_rec *r;

			next = c->next;
			if (c->state != CX_LOOKUP)
				continue;
			key.cookie = c->cookie;
			r = n ? bsearch(&key, recs, n, sizeof(*recs), rec_cmp) : NULL;
			if (!r) {
				d->lookup_pending = true;	/* not accepted yet */
				continue;
			}
			/* The first holder; the blocked-reader check looks at all. */
			while (r > recs && r[-1].cookie == c->cookie)
				r--;
			c->pid = (pid_t)r->tgid;
			c->app_fd = (int)r->fd;
			memcpy(c->comm, r->comm, sizeof(c->comm));
			c->fd = sock_take(c->pid, c->app_fd);
			if (c->fd < 0 || sock_cookie(c->fd) != c->cookie) {
				if (c->fd >= 0)
					close(c->fd);
				c->fd = -1;
				d->lookup_pending = true;	/* it moved: look again */
				continue;
			}
			if (c->closing)
				cx_close(d, c);
			else if (c->adopt)
				on_adopt(d, c);
			else if (c->cli)
				cli_on_fd(d, c);
			else if (c->kick)
				srv_kick(d, c);
			else
				srv_on_fd(d, c);
		}
	}
	free(recs);
}

/* ---- events ---- */

static int on_event(void *ctx, void *data, size_t size)
{
	struct daemon *d = ctx;
	const struct rpctls_event *e = data;
	struct cx *c;

	if (size < sizeof(*e))
		return 0;
	switch (e->type) {
	case EV_NEW:
		c = cx_add(d, e->cookie);
		if (c && c->role == RPCTLS_ROLE_SERVER)
			srv_on_new(d, c);
		else if (c && c->role == RPCTLS_ROLE_CLIENT)
			cli_on_new(d, c);
		break;
	case EV_DATA:
		if (size < sizeof(*e) + e->len)
			break;
		c = cx_add(d, e->cookie);
		if (c && c->role == RPCTLS_ROLE_SERVER)
			srv_on_data(d, c, (const uint8_t *)(e + 1), e->len);
		else if (c && c->role == RPCTLS_ROLE_CLIENT)
			cli_on_data(d, c, (const uint8_t *)(e + 1), e->len, e->seq);
		break;
	case EV_REFUSE:
		c = cx_find(d, e->cookie);
		if (!c) {
			struct conn info;

			/* Gone already (closed at the kick), or never seen. */
			if (bpf_map_lookup_elem(d->fds.conns, &e->cookie, &info) || info.phase != PH_REFUSED)
				break;
			c = cx_add(d, e->cookie);
		}
		if (!c)
			break;
		log_warn("%s: refused (%s): the application never saw its data", c->name,
			 e->arg < RS__MAX ? reason_names[e->arg] : "?");
		cx_close(d, c);
		break;
	case EV_STATE:
		c = cx_find(d, e->cookie);
		if (c && e->arg == BPF_TCP_CLOSE_WAIT && c->state == CX_HANDSHAKE) {
			/* The peer closed its side before the hand-over. */
			cx_refuse(d, c, RS_PEER_RESET, "the peer closed the connection during the %s",
				  c->cli && c->cli->step == CS_PROBE_SENT ? "probe" : "handshake");
		} else if (c && e->arg == BPF_TCP_CLOSE) {
			if (c->state == CX_HANDSHAKE) {
				stat_bump(ST_HS_FAILED, 1);
				log_warn("%s: refused (%s): the connection was reset or closed during the handshake",
					 c->name, reason_names[RS_PEER_RESET]);
			} else if (c->state == CX_QUEUED || c->state == CX_LOOKUP) {
				log_info("%s: closed by the peer or the application while waiting", c->name);
			} else {
				log_debug("%s: closed", c->name);
			}
			cx_free(d, c);
		}
		break;
	case EV_WAKE:
		c = cx_find(d, e->cookie);
		if (c && c->state == CX_HANDSHAKE) {
			/* Fresh bytes: if they are not queued yet, the next
			 * look is a millisecond away, not a backed-off one. */
			c->retry_ms = 0;
			srv_on_wake(d, c);
		}
		break;
	case EV_APP_CLOSE:
		on_app_close(d, cx_find(d, e->cookie));
		break;
	case EV_RX_RECORD:
		on_rx_record(d, cx_find(d, e->cookie));
		break;
	}
	return 0;
}

static void heartbeat(struct daemon *d, bool alive)
{
	struct ctl_state cs;
	__u32 zero = 0;

	if (bpf_map_lookup_elem(d->fds.ctl, &zero, &cs))
		memset(&cs, 0, sizeof(cs));
	cs.abi = RPCTLS_ABI;
	cs.ctl_tgid = alive ? (uint32_t)getpid() : 0;
	cs.heartbeat_ns = now_mono_ns();
	if (!cs.start_ns)
		cs.start_ns = cs.heartbeat_ns;
	bpf_map_update_elem(d->fds.ctl, &zero, &cs, BPF_ANY);
}

/*
 * The heartbeat tells BPF that a controller will answer probes. It beats
 * from a thread of its own: a burst of handshakes can keep the event loop
 * busy for seconds, and a probe that waits is better than one that BPF
 * answers "no TLS" for want of a heartbeat.
 */
static void *heartbeat_thread(void *arg)
{
	struct daemon *d = arg;

	while (!__atomic_load_n(&d->stopping, __ATOMIC_RELAXED)) {
		heartbeat(d, true);
		usleep(500000);
	}
	return NULL;
}

/* Deadlines and retries; returns the epoll timeout in ms. */
static int timers(struct daemon *d)
{
	uint64_t now = now_mono_ns(), next = now + 1000000000ull;

	if (d->lookup_pending && now - d->last_scan >= d->scan_gap)
		cx_lookup_all(d);
	for (int i = 0; i < 4096; i++) {
		struct cx *c = d->tab[i], *nx;

		for (; c; c = nx) {
			nx = c->next;
			if (c->busy)	/* looked at again when the worker is done */
				continue;
			if (c->deadline && now >= c->deadline) {
				if (c->closing || c->adopt)	/* the application is gone */
					cx_free(d, c);
				else if (c->cli)
					cli_on_timeout(d, c);
				else
					srv_on_timeout(d, c);
				continue;
			}
			if (c->state == CX_HANDSHAKE && c->retry_at && now >= c->retry_at)
				srv_on_wake(d, c);
		}
	}
	now = now_mono_ns();
	for (int i = 0; i < 4096; i++)
		for (struct cx *c = d->tab[i]; c; c = c->next) {
			if (c->deadline && c->deadline < next)
				next = c->deadline;
			if (c->state == CX_HANDSHAKE && c->retry_at && c->retry_at < next)
				next = c->retry_at;
		}
	if (d->lookup_pending && d->last_scan + d->scan_gap < next)
		next = d->last_scan + d->scan_gap;
	/* The backstop for a close that close_watch could not see. */
	if (d->n_held && d->last_held_scan + 2000000000ull < next)
		next = d->last_held_scan + 2000000000ull;
	return next <= now ? 0 : (int)((next - now + 999999) / 1000000);
}

static void run_usage(void)
{
	fprintf(stderr,
		"Usage: rpctls run [-c FILE] [--check] [-v]\n"
		"\n"
		"The controller daemon, in the foreground: answers AUTH_TLS probes, runs the TLS\n"
		"1.3 handshakes and hands the sockets to kernel TLS. Logs one line per connection\n"
		"outcome on stderr. SIGTERM or SIGINT stop it; established kTLS connections go on.\n"
		"\n"
		"  -c, --config FILE   configuration (default " CONF_DEFAULT_PATH "), see rpctls.conf(5)\n"
		"      --check         check the configuration, certificates and keys, then exit\n"
		"  -v, --verbose       log every step (log_level debug)\n");
}

int do_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 'C' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	const char *conf_path = CONF_DEFAULT_PATH;
	static struct daemon dd;
	struct daemon *d = &dd;
	struct epoll_event ev;
	struct rlimit rl = { 65536, 65536 };
	sigset_t mask;
	pthread_t hb;
	bool check_only = false;
	int c, r, lock;

	if (wants_help(argc, argv)) {
		run_usage();
		return 0;
	}
	optind = 0;
	while ((c = getopt_long(argc, argv, "c:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			conf_path = optarg;
			break;
		case 'C':
			check_only = true;
			break;
		case 'v':
			verbose++;
			break;
		default:
			run_usage();
			return c == 'h' ? 0 : 1;
		}
	}
	if (optind != argc) {
		run_usage();
		return error("run takes no arguments besides its options"), 1;
	}
	conf_defaults(&d->conf);
	if (conf_load(&d->conf, conf_path, false))
		return 1;
	log_level = verbose ? LOG_LVL_DEBUG : d->conf.log_level;
	if (d->conf.srv_cert.path[0]) {
		d->srv_ctx = tls_server_ctx(&d->conf);
		if (!d->srv_ctx)
			return 1;
	}
	if (d->conf.cli_ca.path[0]) {
		d->cli_ctx = tls_client_ctx(&d->conf);
		if (!d->cli_ctx)
			return 1;
	}
	if (check_only) {
		printf("%s: configuration OK\n", conf_path);
		return 0;
	}
	if (geteuid() != 0)
		return error("run needs root"), 1;
	if (bpffs_ensure())
		return 1;
	lock = bpf_lock();
	if (lock < 0)
		return 1;
	r = bpf_open_pinned(&d->fds);
	if (r == -ENOENT) {
		if (bpf_load_and_pin() || bpf_open_pinned(&d->fds)) {
			close(lock);
			return 1;
		}
	} else if (r) {
		close(lock);
		return 1;
	}
	{
		struct ctl_state cs;
		__u32 zero = 0;

		if (bpf_map_lookup_elem(d->fds.ctl, &zero, &cs) == 0 && cs.ctl_tgid && cs.ctl_tgid != (uint32_t)getpid() &&
		    kill((pid_t)cs.ctl_tgid, 0) == 0) {
			close(lock);
			return error("another controller is running, pid %u", cs.ctl_tgid), 1;
		}
	}
	if (conf_apply_maps(&d->conf, &d->fds) || stats_map(d->fds.stats)) {
		close(lock);
		return 1;
	}
	d->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (d->epfd < 0 || cli_init(d)) {
		close(lock);
		return error("cannot set up the client sinks"), 1;
	}
	/* Signals go to the signalfd only: block them before any thread. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* Alive only now: BPF hands out sink slots from here on. */
	heartbeat(d, true);
	close(lock);
	if (pthread_create(&hb, NULL, heartbeat_thread, d))
		return error("cannot start the heartbeat: %s", strerror(errno)), 1;

	setrlimit(RLIMIT_NOFILE, &rl);
	d->sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	d->rb = ring_buffer__new(d->fds.events, on_event, d, NULL);
	if (d->sigfd < 0 || !d->rb)
		return error("cannot set up the event loop: %s", strerror(errno)), 1;
	ev = (struct epoll_event){ .events = EPOLLIN, .data.u32 = 1 };
	epoll_ctl(d->epfd, EPOLL_CTL_ADD, ring_buffer__epoll_fd(d->rb), &ev);
	ev = (struct epoll_event){ .events = EPOLLIN, .data.u32 = 2 };
	epoll_ctl(d->epfd, EPOLL_CTL_ADD, d->sigfd, &ev);

	if (d->fds.prog_guard < 0)
		log_warn("no read guard on this kernel (BPF LSM refused): an application that reads without "
			 "waiting for readiness can take handshake bytes; see LIMITATIONS in rpctls(8)");
	d->readers_fd = bpf_obj_get(RPCTLS_PIN_MAPS "/sk_readers");
	if (d->srv_ctx && hs_pool_start(d, d->conf.hs_threads))
		return 1;
	adopt_existing(d);
	log_info("controller started, pid %d, configuration %s: %d served port(s), policy %s, %s; %d destination(s)",
		 getpid(), d->conf.path, d->conf.n_srv_ports,
		 d->conf.srv_policy == RPCTLS_POLICY_REQUIRED ? "required" : "optional",
		 d->srv_ctx ? "TLS ready" : "no server certificate: probes get the no-TLS answer", d->conf.n_dests);

	while (!d->stopping) {
		struct epoll_event evs[8];
		int n = epoll_wait(d->epfd, evs, 8, timers(d));

		if (n < 0 && errno != EINTR) {
			log_err("epoll_wait: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++) {
			if (evs[i].data.u32 == 1) {
				ring_buffer__consume(d->rb);
			} else if (evs[i].data.u32 == EPOLL_POOL) {
				hs_pool_collect(d);
			} else if (evs[i].data.u32 >= EPOLL_SINK_BASE) {
				cli_on_sink(d, evs[i].data.u32 - EPOLL_SINK_BASE);
			} else if (evs[i].data.u32 == 2) {
				struct signalfd_siginfo si;

				while (read(d->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
					if (si.ssi_signo == SIGHUP)
						reload(d);
					else
						__atomic_store_n(&d->stopping, true, __ATOMIC_RELAXED);
				}
			}
		}
		if (d->lookup_pending && now_mono_ns() - d->last_scan >= d->scan_gap)
			cx_lookup_all(d);
		if (d->dequeue) {
			d->dequeue = false;
			srv_slot_freed(d);
		}
		if (d->held_check || (d->n_held && now_mono_ns() - d->last_held_scan >= 2000000000ull))
			held_scan(d);
	}
	log_info("controller stopping");
	hs_pool_stop(d);
	held_scan(d);	/* what the applications closed gets its close_notify */
	__atomic_store_n(&d->stopping, true, __ATOMIC_RELAXED);
	pthread_join(hb, NULL);
	heartbeat(d, false);
	/* Handshakes cannot go on without us: end them cleanly. */
	for (int i = 0; i < 4096; i++)
		while (d->tab[i]) {
			struct cx *x = d->tab[i];

			if ((x->fd >= 0 && x->state == CX_HANDSHAKE) || (x->cli && x->state != CX_DONE))
				cx_refuse(d, x, RS_NO_CONTROLLER, "the controller is stopping");
			else
				cx_free(d, x);
		}
	cli_fini(d);
	ring_buffer__free(d->rb);
	SSL_CTX_free(d->srv_ctx);
	SSL_CTX_free(d->cli_ctx);
	if (d->readers_fd >= 0)
		close(d->readers_fd);
	bpf_close_fds(&d->fds);
	return 0;
}
