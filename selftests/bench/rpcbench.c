// SPDX-License-Identifier: GPL-2.0
/*
 * rpcbench: the RPC server and the load generator of `make bench`.
 *
 *   rpcbench serve PORT [options]
 *       answers every RPC call with a short accepted reply (same xid), one
 *       thread per connection; with --tls, RFC 9289 first (probe, STARTTLS,
 *       TLS 1.3 with ALPN sunrpc)
 *   rpcbench load HOST PORT [options] [--size BYTES] [--depth D] [--seconds S]
 *       --conns connections, each keeping D calls of BYTES in flight for S
 *       seconds; prints "calls=N bytes=N secs=S cpu=S" (cpu: busy CPU time of
 *       the whole machine over the run, from /proc/stat)
 *   rpcbench connect HOST PORT [options] [--count N | --seconds S]
 *       --conns threads, each connecting, (probing, shaking hands), making
 *       one NULL call and closing, again and again; prints
 *       "n=N secs=S rate=N/s p50=MS p99=MS" of connect() to the reply;
 *       --once: each thread one connection, all at once (a storm)
 *   rpcbench idle HOST PORT [options] --conns N --seconds S
 *       opens N connections, one call on each, prints "open N", then keeps
 *       them idle for S seconds
 *
 * Options:
 *   --tls MODE        none (default) | openssl (userspace TLS) | ktls
 *                     (OpenSSL's handshake, then kernel TLS both ways)
 *   --no-probe        TLS straight after connect, without RFC 9289's probe
 *   --cert F --key F  server certificate; --ca F: client verifies the server
 *   --ciphersuites S  TLS 1.3 suites (default TLS_AES_128_GCM_SHA256)
 *   --conns N         (1)
 *   --ready FILE      serve: write our pid there once listening
 *
 * Clients wait in poll() before each read, as libtirpc does.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <linux/tls.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "rpctls/parse.h"
#include "ktls.h"

enum tls_mode { T_NONE, T_OPENSSL, T_KTLS };

static struct {
	const char *host, *port, *cert, *key, *ca, *ready, *suites;
	enum tls_mode tls;
	bool no_probe, once;
	uint32_t conns, size, depth, seconds, count;
} o = { .conns = 1, .size = 40, .depth = 1, .seconds = 5, .suites = "TLS_AES_128_GCM_SHA256" };

static SSL_CTX *ctx;

#define MAX_FRAG (4u << 20)
#define RBUF (256u << 10)

struct io {
	int fd;
	SSL *ssl;
	uint8_t *buf;
	uint32_t off, have;
};

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Busy time of the whole machine so far, in seconds. */
static double cpu_busy_s(void)
{
	unsigned long long v[8] = { 0 };
	FILE *f = fopen("/proc/stat", "r");
	double busy = 0;

	if (!f)
		return 0;
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
		   &v[6], &v[7]) == 8)
		busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)sysconf(_SC_CLK_TCK);
	fclose(f);
	return busy;
}

static ssize_t io_read(struct io *io, void *b, size_t n)
{
	struct pollfd p = { .fd = io->fd, .events = POLLIN };
	ssize_t r;

	if (io->ssl) {
		int x = SSL_read(io->ssl, b, n > INT32_MAX ? INT32_MAX : (int)n);

		return x > 0 ? x : -1;
	}
	do {
		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			return -1;
		r = read(io->fd, b, n);
	} while (r < 0 && (errno == EINTR || errno == EAGAIN));
	return r > 0 ? r : -1;
}

static int io_write(struct io *io, const void *b, size_t n)
{
	const uint8_t *p = b;

	if (io->ssl)
		return SSL_write(io->ssl, b, (int)n) == (int)n ? 0 : -1;
	while (n) {
		ssize_t w = send(io->fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int io_fill(struct io *io)
{
	ssize_t r;

	if (io->off == io->have)
		io->off = io->have = 0;
	r = io_read(io, io->buf + io->have, RBUF - io->have);
	if (r <= 0)
		return -1;
	io->have += (uint32_t)r;
	return 0;
}

/* Take @n bytes (to @dst, or thrown away when @dst is NULL). */
static int io_take(struct io *io, uint8_t *dst, uint32_t n)
{
	while (n) {
		uint32_t k;

		if (io->off == io->have && io_fill(io))
			return -1;
		k = io->have - io->off < n ? io->have - io->off : n;
		if (dst) {
			memcpy(dst, io->buf + io->off, k);
			dst += k;
		}
		io->off += k;
		n -= k;
	}
	return 0;
}

/* One whole RPC record: its first @keep bytes to @head, the rest skipped. */
static int read_record(struct io *io, uint8_t *head, uint32_t keep, uint32_t *total)
{
	uint32_t got = 0, len;
	uint8_t m[4];
	bool last = false;

	while (!last) {
		if (io_take(io, m, 4))
			return -1;
		len = get_be32(m) & RPC_MARK_LEN_MASK;
		last = get_be32(m) & RPC_MARK_LAST;
		if (len > MAX_FRAG)
			return -1;
		if (got < keep) {
			uint32_t k = keep - got < len ? keep - got : len;

			if (io_take(io, head + got, k))
				return -1;
			got += k;
			len -= k;
		}
		if (io_take(io, NULL, len))
			return -1;
		*total = got + len;
	}
	return (int)got;
}

static SSL_CTX *make_ctx(bool server)
{
	SSL_CTX *c = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());

	SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION);
	if (SSL_CTX_set_ciphersuites(c, o.suites) != 1)
		return NULL;
	/* As the controller: no tickets, no cache, no read-ahead past Finished. */
	SSL_CTX_set_num_tickets(c, 0);
	SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
	ktls_ctx_prepare(c);
	if (server) {
		if (SSL_CTX_use_certificate_chain_file(c, o.cert) != 1 ||
		    SSL_CTX_use_PrivateKey_file(c, o.key, SSL_FILETYPE_PEM) != 1)
			return NULL;
	} else {
		SSL_CTX_set_alpn_protos(c, (const unsigned char *)"\x06sunrpc", 7);
		if (o.ca) {
			if (SSL_CTX_load_verify_locations(c, o.ca, NULL) != 1)
				return NULL;
			SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
		}
	}
	return c;
}

static int alpn_select(SSL *s, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
		       unsigned int inlen, void *arg)
{
	return SSL_select_next_proto((unsigned char **)out, outlen, (const unsigned char *)"\x06sunrpc", 7, in,
				     inlen) == OPENSSL_NPN_NEGOTIATED ? SSL_TLSEXT_ERR_OK : SSL_TLSEXT_ERR_NOACK;
}

/* After the handshake: keys to the kernel (ktls), or OpenSSL stays. */
static int tls_start(struct io *io, bool server)
{
	const char *why;

	io->ssl = SSL_new(ctx);
	if (!io->ssl || ktls_ssl_prepare(io->ssl))
		return -1;
	SSL_set_fd(io->ssl, io->fd);
	if ((server ? SSL_accept(io->ssl) : SSL_connect(io->ssl)) != 1)
		return -1;
	if (o.tls == T_KTLS) {
		if (SSL_pending(io->ssl) || ktls_install(io->ssl, io->fd, server, 0, 0, &why)) {
			fprintf(stderr, "rpcbench: kTLS: %s\n", why ? why : "data behind the handshake");
			return -1;
		}
		SSL_free(io->ssl);
		io->ssl = NULL;
	}
	return 0;
}

/* ---- serve ---- */

static void *serve_conn(void *arg)
{
	struct io io = { .fd = (int)(intptr_t)arg, .buf = malloc(RBUF) };
	uint8_t head[RPC_CALL_HDR_LEN + 4], out[64];
	uint32_t total, n;
	int got;

	if (o.tls != T_NONE && !o.no_probe) {
		struct rpc_call_hdr h;

		got = read_record(&io, head, sizeof(head), &total);
		if (got < 4 || rpc_probe_judge(head, (uint32_t)got, &h) != RPC_PARSE_OK) {
			fprintf(stderr, "rpcbench: no valid AUTH_TLS probe first\n");
			goto out;
		}
		n = rpc_build_probe_reply(out, get_be32(head), RPC_ANSWER_STARTTLS);
		if (io_write(&io, out, n))
			goto out;
	}
	if (o.tls != T_NONE && tls_start(&io, true)) {
		ERR_print_errors_fp(stderr);
		goto out;
	}
	n = rpc_build_probe_reply(out, 0, RPC_ANSWER_NO_TLS);
	while ((got = read_record(&io, head, 4, &total)) >= 4) {
		memcpy(out + RPC_MARK_LEN, head, 4);	/* the xid */
		if (io_write(&io, out, n))
			break;
	}
out:
	if (io.ssl) {
		SSL_shutdown(io.ssl);
		SSL_free(io.ssl);
	}
	close(io.fd);
	free(io.buf);
	return NULL;
}

static int serve(void)
{
	struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT };
	int one = 1, zero = 0, lfd = socket(AF_INET6, SOCK_STREAM, 0);

	sa.sin6_port = htons((uint16_t)atoi(o.port));
	/* One socket for IPv6 and IPv4. */
	if (lfd < 0 || setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) ||
	    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, 4096))
		return fprintf(stderr, "rpcbench: cannot listen on %s: %s\n", o.port, strerror(errno)), 1;
	if (o.ready) {
		FILE *f = fopen(o.ready, "w");

		if (f) {
			fprintf(f, "%d\n", getpid());
			fclose(f);
		}
	}
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		pthread_t t;
		pthread_attr_t at;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE)
				continue;
			return fprintf(stderr, "rpcbench: accept: %s\n", strerror(errno)), 1;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&at, 256 << 10);
		if (pthread_create(&t, &at, serve_conn, (void *)(intptr_t)fd))
			close(fd);
		pthread_attr_destroy(&at);
	}
}

/* ---- clients ---- */

static int dial(void)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	int fd, one = 1;

	if (getaddrinfo(o.host, o.port, &hints, &ai))
		return -1;
	fd = socket(ai->ai_family, SOCK_STREAM, 0);
	if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen)) {
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* Connect, and with --tls the probe and the handshake: ready for calls. */
static int client_open(struct io *io)
{
	uint8_t p[RPC_PROBE_LEN], r[64];
	uint32_t total;
	int got;
	struct rpc_reply_hdr h;

	io->fd = dial();
	io->off = io->have = 0;
	io->ssl = NULL;
	if (io->fd < 0)
		return -1;
	if (o.tls == T_NONE)
		return 0;
	if (!o.no_probe) {
		rpc_build_probe(p, 0x7e570001u, 100003, 3);
		if (io_write(io, p, sizeof(p)))
			return -1;
		got = read_record(io, r, sizeof(r), &total);
		if (got < 0 || total > sizeof(r) || rpc_parse_reply(r, (uint32_t)got, &h) != RPC_PARSE_OK ||
		    !rpc_reply_is_starttls(r, (uint32_t)got, &h))
			return -1;
	}
	return tls_start(io, false);
}

static void client_close(struct io *io)
{
	if (io->ssl) {
		SSL_shutdown(io->ssl);
		SSL_free(io->ssl);
		io->ssl = NULL;
	}
	if (io->fd >= 0)
		close(io->fd);
	io->fd = -1;
}

/* An RPC call of @size bytes in all (marker included): NFSv3 WRITE-like
 * when large, NULL when small. Opaque zeros stand for the arguments. */
static uint8_t *build_call(uint32_t size, uint32_t *len)
{
	uint32_t n = size < RPC_MARK_LEN + RPC_CALL_HDR_LEN ? RPC_MARK_LEN + RPC_CALL_HDR_LEN : size;
	uint8_t *b = calloc(1, n);

	rpc_build_probe(b, 0, 100003, 3);	/* a NULL call header ... */
	put_be32(b, RPC_MARK_LAST | (n - RPC_MARK_LEN));
	put_be32(b + 24, size > 1024 ? 7 : 0);	/* ... procedure WRITE or NULL */
	put_be32(b + 28, AUTH_NONE);		/* ... and no AUTH_TLS */
	*len = n;
	return b;
}

static int call_once(struct io *io, const uint8_t *call, uint32_t len, uint32_t xid)
{
	uint8_t r[RPC_MARK_LEN + 28];
	uint32_t total;

	put_be32((uint8_t *)call + RPC_MARK_LEN, xid);
	if (io_write(io, call, len))
		return -1;
	if (read_record(io, r, 4, &total) != 4 || get_be32(r) != xid)
		return -1;
	return 0;
}

static pthread_barrier_t start;
static volatile bool stop;
static double t_start;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t total_calls, failures;
static double *lat;
static uint64_t nlat, cap_lat;

static void *load_conn(void *arg)
{
	struct io io = { .buf = malloc(RBUF) };
	uint32_t len, small_len, xid = 0x20000000u + (uint32_t)(uintptr_t)arg * 0x100000u, next = xid;
	uint8_t *call = build_call(o.size, &len), *null_call = build_call(0, &small_len);
	uint64_t done = 0;
	bool ok = client_open(&io) == 0 && call_once(&io, null_call, small_len, xid++) == 0;

	next = xid;
	pthread_barrier_wait(&start);
	if (!ok)
		goto out;
	for (uint32_t i = 0; i < o.depth; i++) {
		put_be32(call + RPC_MARK_LEN, next++);
		if (io_write(&io, call, len))
			goto bad;
	}
	while (!stop) {
		uint8_t r[4];
		uint32_t total;

		if (read_record(&io, r, 4, &total) != 4 || get_be32(r) != xid++)
			goto bad;
		done++;
		put_be32(call + RPC_MARK_LEN, next++);
		if (io_write(&io, call, len))
			goto bad;
	}
	goto out;
bad:
	ok = false;
out:
	client_close(&io);
	pthread_mutex_lock(&mu);
	total_calls += done;
	failures += !ok;
	pthread_mutex_unlock(&mu);
	free(call);
	free(null_call);
	free(io.buf);
	return NULL;
}

static void *connect_loop(void *arg)
{
	struct io io = { .buf = malloc(RBUF) };
	uint32_t len;
	uint8_t *call = build_call(0, &len);
	uint32_t xid = 0x30000000u + (uint32_t)(uintptr_t)arg * 0x100000u;

	pthread_barrier_wait(&start);
	while (!stop) {
		double t0 = now_s(), ms;
		bool ok = client_open(&io) == 0 && call_once(&io, call, len, xid++) == 0;

		ms = (now_s() - t0) * 1000;
		client_close(&io);
		pthread_mutex_lock(&mu);
		if (!ok) {
			failures++;
			stop = true;	/* a benchmark with failures measures nothing */
		} else if (!stop && nlat < cap_lat) {
			lat[nlat++] = ms;
			if (o.count && nlat >= o.count)
				stop = true;
		}
		pthread_mutex_unlock(&mu);
		if (o.once)
			break;
	}
	free(call);
	free(io.buf);
	return NULL;
}

static int idle(void)
{
	struct io *io = calloc(o.conns, sizeof(*io));
	uint32_t len;
	uint8_t *call = build_call(0, &len);

	for (uint32_t i = 0; i < o.conns; i++) {
		io[i].buf = malloc(RBUF);
		if (client_open(&io[i]) || call_once(&io[i], call, len, 0x40000000u + i))
			return fprintf(stderr, "rpcbench: connection %u failed\n", i), 1;
		/* Idle connections do not keep a read buffer. */
		free(io[i].buf);
		io[i].buf = NULL;
	}
	printf("open %u\n", o.conns);
	fflush(stdout);
	sleep(o.seconds);
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int run_clients(bool load)
{
	pthread_t *th = calloc(o.conns, sizeof(*th));
	double cpu0, secs;

	cap_lat = 1u << 20;
	lat = calloc(cap_lat, sizeof(*lat));
	pthread_barrier_init(&start, NULL, o.conns + 1);
	for (uint32_t i = 0; i < o.conns; i++)
		if (pthread_create(&th[i], NULL, load ? load_conn : connect_loop, (void *)(uintptr_t)i))
			return fprintf(stderr, "rpcbench: cannot start %u threads\n", o.conns), 1;
	pthread_barrier_wait(&start);
	t_start = now_s();
	cpu0 = cpu_busy_s();
	if (o.once) {
		for (uint32_t i = 0; i < o.conns; i++)
			pthread_join(th[i], NULL);
	} else if (o.count && !load) {
		while (!stop && now_s() - t_start < 3600)
			usleep(10000);
	} else {
		usleep(o.seconds * 1000000u);
	}
	stop = true;
	secs = now_s() - t_start;
	cpu0 = cpu_busy_s() - cpu0;
	for (uint32_t i = 0; i < o.conns && !o.once; i++)
		pthread_join(th[i], NULL);
	/* A failure is reported and counted (failed=); a load with failures
	 * measured less than it claims, so it fails. */
	if (failures)
		fprintf(stderr, "rpcbench: %llu connection(s) failed\n", (unsigned long long)failures);
	if (failures && load)
		return 1;
	if (load) {
		printf("calls=%llu bytes=%llu secs=%.3f cpu=%.3f\n", (unsigned long long)total_calls,
		       (unsigned long long)total_calls * o.size, secs, cpu0);
	} else {
		qsort(lat, nlat, sizeof(*lat), cmp_double);
		if (!nlat)
			return fprintf(stderr, "rpcbench: no connection completed\n"), 1;
		printf("n=%llu secs=%.3f rate=%.2f p50=%.2f p99=%.2f cpu=%.3f failed=%llu\n", (unsigned long long)nlat,
		       secs, (double)nlat / secs, lat[nlat / 2],
		       lat[(nlat * 99) / 100 < nlat ? (nlat * 99) / 100 : nlat - 1], cpu0, (unsigned long long)failures);
	}
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: rpcbench serve PORT | load HOST PORT | connect HOST PORT | idle HOST PORT [options];\n"
			"       see the head of selftests/bench/rpcbench.c\n");
	return 2;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "tls", required_argument, NULL, 't' },     { "no-probe", no_argument, NULL, 'P' },
		{ "cert", required_argument, NULL, 'c' },    { "key", required_argument, NULL, 'k' },
		{ "ca", required_argument, NULL, 'a' },      { "ciphersuites", required_argument, NULL, 'S' },
		{ "conns", required_argument, NULL, 'n' },   { "size", required_argument, NULL, 's' },
		{ "depth", required_argument, NULL, 'd' },   { "seconds", required_argument, NULL, 'T' },
		{ "count", required_argument, NULL, 'N' },   { "ready", required_argument, NULL, 'r' },
		{ "once", no_argument, NULL, 'O' },
		{}
	};
	const char *cmd;
	struct rlimit rl;
	int c;

	if (argc < 2)
		return usage();
	cmd = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			o.tls = !strcmp(optarg, "none") ? T_NONE : !strcmp(optarg, "openssl") ? T_OPENSSL :
				!strcmp(optarg, "ktls") ? T_KTLS : (enum tls_mode)-1;
			if ((int)o.tls < 0)
				return fprintf(stderr, "rpcbench: --tls none|openssl|ktls\n"), 2;
			break;
		case 'P': o.no_probe = true; break;
		case 'c': o.cert = optarg; break;
		case 'k': o.key = optarg; break;
		case 'a': o.ca = optarg; break;
		case 'S': o.suites = optarg; break;
		case 'n': o.conns = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 's': o.size = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'd': o.depth = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'T': o.seconds = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'N': o.count = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'r': o.ready = optarg; break;
		case 'O': o.once = true; break;
		default: return usage();
		}
	}
	if (!o.conns || !o.depth || o.size > MAX_FRAG)
		return usage();
	signal(SIGPIPE, SIG_IGN);
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (!strcmp(cmd, "serve") && optind == argc - 1) {
		o.port = argv[optind];
		if (o.tls != T_NONE) {
			if (!o.cert || !o.key)
				return fprintf(stderr, "rpcbench: serve --tls needs --cert and --key\n"), 2;
			ctx = make_ctx(true);
			if (!ctx)
				return ERR_print_errors_fp(stderr), 1;
			SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
		}
		return serve();
	}
	if ((!strcmp(cmd, "load") || !strcmp(cmd, "connect") || !strcmp(cmd, "idle")) && optind == argc - 2) {
		o.host = argv[optind];
		o.port = argv[optind + 1];
		if (o.tls != T_NONE && !(ctx = make_ctx(false)))
			return ERR_print_errors_fp(stderr), 1;
		if (!strcmp(cmd, "idle"))
			return idle();
		return run_clients(!strcmp(cmd, "load"));
	}
	return usage();
}
