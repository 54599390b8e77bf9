// SPDX-License-Identifier: GPL-2.0
/*
 * One test per fact of ../shared/design/kernel-facts.md that rpctls's design
 * relies on, so that a kernel (or OpenSSL) that behaves otherwise is noticed
 * at once. Needs root, the tls module and a cgroup v2 mount.
 *
 * Usage: facts PKI_DIR CGROUP_PARENT
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <linux/tls.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "ktls.h"
#include "../lib/check.h"

#ifndef SOL_TLS
#define SOL_TLS 282
#endif
#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

static const char *pki, *cgparent;

static void tcp_pair(int *a, int *b)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	bind(l, (struct sockaddr *)&sa, sizeof(sa));
	listen(l, 1);
	getsockname(l, (struct sockaddr *)&sa, &len);
	*b = socket(AF_INET, SOCK_STREAM, 0);
	connect(*b, (struct sockaddr *)&sa, sizeof(sa));
	*a = accept(l, NULL, NULL);
	close(l);
	setsockopt(*a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(*b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int sockhash(void)
{
	return bpf_map_create(BPF_MAP_TYPE_SOCKHASH, "facts", sizeof(__u32), sizeof(__u32), 8, NULL);
}

static int sockhash_add(int map, __u32 key, int fd)
{
	__u32 v = (__u32)fd;

	return bpf_map_update_elem(map, &key, &v, BPF_ANY);
}

/* Any TLS 1.3 crypto_info; TLS_TX fails on a psock before looking at it. */
static int dummy_tx(int fd)
{
	struct tls12_crypto_info_aes_gcm_128 ci = { .info = { TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128 } };

	return setsockopt(fd, SOL_TLS, TLS_TX, &ci, sizeof(ci));
}

/* Fact: a socket in a sockhash takes TCP_ULP tls, but TLS_TX is EINVAL. */
static void psock_blocks_tls_tx(void)
{
	int a, b, map = sockhash();

	tcp_pair(&a, &b);
	CHECK(map >= 0, "sockhash: %s", strerror(errno));
	CHECK(sockhash_add(map, 1, a) == 0, "add to sockhash: %s", strerror(errno));
	CHECK(ktls_set_ulp(a) == 0, "TCP_ULP tls on a psock socket: %s", strerror(errno));
	errno = 0;
	CHECK(dummy_tx(a) == -1 && errno == EINVAL, "TLS_TX on a psock socket: %s (expected EINVAL)",
	      errno ? strerror(errno) : "accepted");
	close(a), close(b), close(map);
}

/* Fact: a socket with the tls ULP can never enter a sockmap. */
static void tls_ulp_blocks_sockhash(void)
{
	int a, b, map = sockhash();

	tcp_pair(&a, &b);
	CHECK(ktls_set_ulp(a) == 0, "TCP_ULP tls: %s", strerror(errno));
	CHECK(sockhash_add(map, 1, a) != 0, "a tls socket entered a sockhash");
	close(a), close(b), close(map);
}

/* Fact: deleted from the sockhash (nothing queued), the socket takes kTLS. */
static void delete_then_tls(void)
{
	int a, b, map = sockhash();
	__u32 key = 1;

	tcp_pair(&a, &b);
	sockhash_add(map, key, a);
	CHECK(bpf_map_delete_elem(map, &key) == 0, "delete: %s", strerror(errno));
	CHECK(ktls_set_ulp(a) == 0 && dummy_tx(a) == 0, "TLS_TX after the delete: %s", strerror(errno));
	close(a), close(b), close(map);
}

struct reader {
	int fd;
	ssize_t r;
	int err;
	char buf[16];
};

static void *blocking_read(void *arg)
{
	struct reader *rd = arg;

	rd->r = read(rd->fd, rd->buf, sizeof(rd->buf));
	rd->err = errno;
	return NULL;
}

/* The thread @tid is asleep in a syscall (state S in /proc). */
static bool thread_sleeping(pid_t tid)
{
	char path[64], st[512];
	int fd, n;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;
	n = (int)read(fd, st, sizeof(st) - 1);
	close(fd);
	if (n <= 0)
		return false;
	st[n] = 0;
	return strstr(st, ") S ") != NULL;
}

static pid_t reader_tid;
static void *blocking_read_tid(void *arg)
{
	reader_tid = (pid_t)syscall(SYS_gettid);
	return blocking_read(arg);
}

static void wait_asleep(void)
{
	for (int i = 0; i < 200 && (!reader_tid || !thread_sleeping(reader_tid)); i++)
		usleep(5000);
	usleep(20000);
}

/* Fact: a reader blocked in read() keeps the psock alive: TLS_TX stays
 * EINVAL after the delete, until the read returns. */
static void blocked_reader_keeps_psock(void)
{
	int a, b, map = sockhash();
	struct reader rd = { 0 };
	pthread_t t;
	__u32 key = 1;

	tcp_pair(&a, &b);
	sockhash_add(map, key, a);
	rd.fd = a;
	reader_tid = 0;
	pthread_create(&t, NULL, blocking_read_tid, &rd);
	wait_asleep();
	CHECK(bpf_map_delete_elem(map, &key) == 0, "delete: %s", strerror(errno));
	ktls_set_ulp(a);
	errno = 0;
	CHECK(dummy_tx(a) == -1 && errno == EINVAL, "TLS_TX with a blocked reader: %s (expected EINVAL)",
	      errno ? strerror(errno) : "accepted");
	write(b, "x", 1);
	pthread_join(t, NULL);
	CHECK(rd.r == 1, "the blocked read got %zd", rd.r);
	CHECK(dummy_tx(a) == 0, "TLS_TX once the reader left: %s", strerror(errno));
	close(a), close(b), close(map);
}

/* Fact: pidfd_getfd gives the very socket of another process, and socket
 * options set through it act on that process's socket. */
static void pidfd_getfd_same_socket(void)
{
	int sv[2], a, b, dup_fd, pidfd, st;
	__u64 c1 = 0, c2 = 0;
	socklen_t len = sizeof(c1);
	struct stat s1, s2;
	char ulp[16] = "";
	pid_t child;

	tcp_pair(&a, &b);
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	child = fork();
	if (child == 0) {
		char buf[4];

		close(sv[0]);
		write(sv[1], &a, sizeof(a));	/* tell the parent the fd number */
		read(sv[1], buf, 1);		/* wait until it is done */
		len = sizeof(ulp);
		getsockopt(a, IPPROTO_TCP, TCP_ULP, ulp, &len);
		_exit(strcmp(ulp, "tls") == 0 ? 0 : 1);
	}
	close(sv[1]);
	read(sv[0], &st, sizeof(st));
	pidfd = (int)syscall(SYS_pidfd_open, child, 0);
	dup_fd = (int)syscall(SYS_pidfd_getfd, pidfd, st, 0);
	CHECK(dup_fd >= 0, "pidfd_getfd: %s", strerror(errno));
	fstat(a, &s1);
	fstat(dup_fd, &s2);
	CHECK(s1.st_ino == s2.st_ino, "different inodes");
	getsockopt(a, SOL_SOCKET, SO_COOKIE, &c1, &len);
	len = sizeof(c2);
	getsockopt(dup_fd, SOL_SOCKET, SO_COOKIE, &c2, &len);
	CHECK(c1 && c1 == c2, "cookies %llu and %llu", (unsigned long long)c1, (unsigned long long)c2);
	CHECK(ktls_set_ulp(dup_fd) == 0, "TCP_ULP through the duplicate: %s", strerror(errno));
	close(dup_fd);
	write(sv[0], "g", 1);
	waitpid(child, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the owner does not see the tls ULP");
	close(pidfd), close(sv[0]), close(a), close(b);
}

/* ---- with TLS ---- */

static SSL_CTX *ctx_new(bool server, int tickets)
{
	char p[600];
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());

	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256");
	if (server) {
		snprintf(p, sizeof(p), "%s/server.pem", pki);
		SSL_CTX_use_certificate_chain_file(ctx, p);
		snprintf(p, sizeof(p), "%s/server.key", pki);
		SSL_CTX_use_PrivateKey_file(ctx, p, SSL_FILETYPE_PEM);
		SSL_CTX_set_num_tickets(ctx, (size_t)tickets);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	}
	ktls_ctx_prepare(ctx);
	return ctx;
}

struct hs {
	SSL *ssl;
	int fd;
	bool server;
	int ok;
	int after;	/* client: records to SSL_write right after SSL_connect */
	bool retry;	/* nonblocking socket: retry every millisecond */
};

static void *do_hs(void *arg)
{
	struct hs *h = arg;
	int r;

	for (int i = 0; i < 10000; i++) {
		r = h->server ? SSL_accept(h->ssl) : SSL_connect(h->ssl);
		if (r == 1 || !h->retry || SSL_get_error(h->ssl, r) != SSL_ERROR_WANT_READ)
			break;
		usleep(1000);
	}
	h->ok = r == 1;
	for (int i = 0; h->ok && i < h->after; i++) {
		char rec[16];

		snprintf(rec, sizeof(rec), "rec%d;", i);
		SSL_write(h->ssl, rec, (int)strlen(rec));
	}
	return NULL;
}

static SSL *ssl_on(SSL_CTX *ctx, int fd)
{
	SSL *s = SSL_new(ctx);

	ktls_ssl_prepare(s);
	SSL_set_fd(s, fd);
	return s;
}

/* Fact: OpenSSL 3.0 turns kTLS on for sending only with TLS 1.3. */
static void openssl_ktls_tx_only(void)
{
	SSL_CTX *sc = ctx_new(true, 0), *cc = ctx_new(false, 0);
	struct hs s = { .server = true }, c = { 0 };
	pthread_t t;
	int a, b;

	tcp_pair(&a, &b);
	SSL_CTX_set_options(sc, SSL_OP_ENABLE_KTLS);
	s.ssl = ssl_on(sc, a);
	c.ssl = ssl_on(cc, b);
	pthread_create(&t, NULL, do_hs, &s);
	do_hs(&c);
	pthread_join(t, NULL);
	CHECK(s.ok && c.ok, "handshake");
	CHECK(BIO_get_ktls_send(SSL_get_wbio(s.ssl)) == 1, "OpenSSL did not turn on kTLS for sending");
	CHECK(BIO_get_ktls_recv(SSL_get_rbio(s.ssl)) == 0,
	      "OpenSSL turned on kTLS receive for TLS 1.3: rpctls installs RX itself, check it does not clash");
	SSL_free(s.ssl), SSL_free(c.ssl), SSL_CTX_free(sc), SSL_CTX_free(cc);
	close(a), close(b);
}

/* Fact: a non-data record at the head of a kTLS receive queue makes read()
 * fail with EIO and stays there until recvmsg() with a cmsg buffer takes it. */
static void nondata_record_eio(void)
{
	SSL_CTX *sc = ctx_new(true, 2), *cc = ctx_new(false, 0);
	struct hs s = { .server = true }, c = { 0 };
	static char buf[16384];
	char cbuf[CMSG_SPACE(sizeof(unsigned char))];
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;
	const char *why;
	pthread_t t;
	int a, b, first_type = -1;
	ssize_t r;

	tcp_pair(&a, &b);
	s.ssl = ssl_on(sc, a);
	c.ssl = ssl_on(cc, b);
	pthread_create(&t, NULL, do_hs, &s);
	do_hs(&c);
	pthread_join(t, NULL);
	CHECK(s.ok && c.ok, "handshake");
	SSL_write(s.ssl, "data", 4);	/* after the two tickets */
	usleep(100000);
	CHECK(ktls_install(c.ssl, b, false, 0, 0, &why) == 0, "install: %s", why);
	errno = 0;
	r = read(b, buf, sizeof(buf));
	CHECK(r == -1 && errno == EIO, "read() over a ticket: %zd, %s (expected EIO)", r, strerror(errno));
	r = read(b, buf, sizeof(buf));
	CHECK(r == -1 && errno == EIO, "the ticket left the queue by itself");
	/* Take records with recvmsg() until the data: tickets first. */
	for (int i = 0; i < 4; i++) {
		int type = -1;

		m.msg_controllen = sizeof(cbuf);
		r = recvmsg(b, &m, 0);
		cm = CMSG_FIRSTHDR(&m);
		if (cm && cm->cmsg_level == SOL_TLS && cm->cmsg_type == TLS_GET_RECORD_TYPE)
			type = *CMSG_DATA(cm);
		if (first_type < 0)
			first_type = type;
		if (type != 22)
			break;
	}
	CHECK(first_type == 22, "recvmsg: first record type %d (expected 22, handshake)", first_type);
	CHECK(r == 4 && !memcmp(buf, "data", 4), "data after the tickets: %zd (%s)", r, strerror(errno));
	SSL_free(s.ssl), SSL_free(c.ssl), SSL_CTX_free(sc), SSL_CTX_free(cc);
	close(a), close(b);
}

/*
 * Fact (the server hand-over of rpctls): with SO_RCVLOWAT raised, SSL_accept
 * run on the socket itself reads exactly up to the client's Finished (read
 * ahead off); records the client sent right behind it stay queued, hidden
 * from poll(); after TLS_TX, TLS_RX and SO_RCVLOWAT back to 1, the kernel
 * decrypts them for read(), all of them, in order. And the reason rpctls
 * needs a wake-up of its own meanwhile: no reader, blocking or polling, is
 * woken below SO_RCVLOWAT, so the handshake reads do not block.
 */
static void rcvlowat_hides_then_ktls_decrypts(void)
{
	SSL_CTX *sc = ctx_new(true, 0), *cc = ctx_new(false, 0);
	struct hs s = { .server = true, .retry = true }, c = { .after = 3 };
	struct pollfd pfd;
	int a, b, lowat = 65536, one = 1;
	const char *why;
	char buf[64] = "";
	pthread_t t;
	ssize_t r;

	tcp_pair(&a, &b);
	setsockopt(a, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat));
	fcntl(a, F_SETFL, O_NONBLOCK);
	s.ssl = ssl_on(sc, a);
	c.ssl = ssl_on(cc, b);
	pthread_create(&t, NULL, do_hs, &c);
	do_hs(&s);
	pthread_join(t, NULL);
	CHECK(s.ok && c.ok, "handshake");
	usleep(100000);	/* the three records are in the queue by now */
	pfd = (struct pollfd){ .fd = a, .events = POLLIN };
	CHECK(poll(&pfd, 1, 0) == 0, "poll() saw the early records under SO_RCVLOWAT");
	CHECK(ktls_install(s.ssl, a, true, 0, 0, &why) == 0, "install: %s", why);
	setsockopt(a, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one));
	CHECK(poll(&pfd, 1, 1000) == 1, "poll() does not see the records after the hand-over");
	r = recv(a, buf, sizeof(buf) - 1, MSG_WAITALL | MSG_DONTWAIT);
	for (int i = 0; r > 0 && r < 15 && i < 20; i++) {
		ssize_t more = recv(a, buf + r, sizeof(buf) - 1 - (size_t)r, MSG_DONTWAIT);

		if (more > 0)
			r += more;
		else
			usleep(10000);
	}
	CHECK(r == 15 && !memcmp(buf, "rec0;rec1;rec2;", 15), "got %zd bytes: '%s'", r, buf);
	SSL_free(s.ssl), SSL_free(c.ssl), SSL_CTX_free(sc), SSL_CTX_free(cc);
	close(a), close(b);
}

/* Fact: SO_RCVLOWAT is capped at tcp_rmem[2]/2. */
static void rcvlowat_cap(void)
{
	int a, b, v = 0x7fffffff, got = 0;
	socklen_t len = sizeof(got);
	long rmem[3] = { 0 };
	FILE *f = fopen("/proc/sys/net/ipv4/tcp_rmem", "r");

	if (f) {
		if (fscanf(f, "%ld %ld %ld", &rmem[0], &rmem[1], &rmem[2]) != 3)
			rmem[2] = 0;
		fclose(f);
	}
	tcp_pair(&a, &b);
	setsockopt(a, SOL_SOCKET, SO_RCVLOWAT, &v, sizeof(v));
	getsockopt(a, SOL_SOCKET, SO_RCVLOWAT, &got, &len);
	CHECK(rmem[2] && got == rmem[2] / 2, "SO_RCVLOWAT INT_MAX became %d, tcp_rmem[2] is %ld", got, rmem[2]);
	close(a), close(b);
}

/* ---- cgroup freezer ---- */

static int cg_write(const char *cg, const char *file, const char *val)
{
	char p[512];
	int fd, r;

	snprintf(p, sizeof(p), "%s/%s", cg, file);
	fd = open(p, O_WRONLY);
	if (fd < 0)
		return -1;
	r = write(fd, val, strlen(val)) == (ssize_t)strlen(val) ? 0 : -1;
	close(fd);
	return r;
}

static bool cg_frozen(const char *cg)
{
	char p[512], buf[256];
	int fd, n;

	snprintf(p, sizeof(p), "%s/cgroup.events", cg);
	fd = open(p, O_RDONLY);
	if (fd < 0)
		return false;
	n = (int)read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	return strstr(buf, "frozen 1") != NULL;
}

/*
 * Fact: freezing a cgroup (2 to 6 ms) around a hand-over is invisible to a
 * read() or poll() blocked in it, which the kernel restarts, but visible to
 * epoll_wait(), which returns EINTR.
 */
static void freeze_restarts_read_not_epoll(void)
{
	char cg[512], pidbuf[32];
	int sv[2], a, b, st = 0;
	pid_t child;
	struct timespec t0, t1;

	snprintf(cg, sizeof(cg), "%.400s/facts-freeze-%d", cgparent, getpid());
	CHECK(mkdir(cg, 0755) == 0, "mkdir %.200s: %s", cg, strerror(errno));
	tcp_pair(&a, &b);
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	child = fork();
	if (child == 0) {
		struct epoll_event ev = { .events = EPOLLIN }, out;
		char buf[8];
		int ep = epoll_create1(0), n, e;
		ssize_t r;

		ep = epoll_create1(0);
		epoll_ctl(ep, EPOLL_CTL_ADD, sv[1], &ev);
		write(sv[1], "r", 1);
		n = epoll_wait(ep, &out, 1, 5000);	/* frozen and thawed in here */
		e = errno;
		r = read(a, buf, sizeof(buf));		/* and in here */
		_exit((n == -1 && e == EINTR ? 1 : 0) | (r == 1 ? 2 : 0));
	}
	snprintf(pidbuf, sizeof(pidbuf), "%d", child);
	cg_write(cg, "cgroup.procs", pidbuf);
	read(sv[0], pidbuf, 1);
	usleep(50000);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK(cg_write(cg, "cgroup.freeze", "1") == 0, "cgroup.freeze: %s", strerror(errno));
	for (int i = 0; i < 1000 && !cg_frozen(cg); i++)
		usleep(500);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK(cg_frozen(cg), "never frozen");
	cg_write(cg, "cgroup.freeze", "0");
	printf("# freeze took %.2f ms\n", (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
	usleep(50000);
	/* Now block it in read() and freeze again. */
	cg_write(cg, "cgroup.freeze", "1");
	for (int i = 0; i < 1000 && !cg_frozen(cg); i++)
		usleep(500);
	cg_write(cg, "cgroup.freeze", "0");
	usleep(50000);
	write(b, "x", 1);
	waitpid(child, &st, 0);
	CHECK(WIFEXITED(st) && (WEXITSTATUS(st) & 1), "epoll_wait did not return EINTR on the freeze");
	CHECK(WIFEXITED(st) && (WEXITSTATUS(st) & 2), "read() did not survive the freeze (status %d)", st);
	rmdir(cg);
	close(a), close(b), close(sv[0]), close(sv[1]);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s PKI_DIR CGROUP_PARENT\n", argv[0]);
		return 2;
	}
	pki = argv[1];
	cgparent = argv[2];
	signal(SIGPIPE, SIG_IGN);
	RUN(psock_blocks_tls_tx);
	RUN(tls_ulp_blocks_sockhash);
	RUN(delete_then_tls);
	RUN(blocked_reader_keeps_psock);
	RUN(pidfd_getfd_same_socket);
	RUN(openssl_ktls_tx_only);
	RUN(nondata_record_eio);
	RUN(rcvlowat_hides_then_ktls_decrypts);
	RUN(rcvlowat_cap);
	RUN(freeze_restarts_read_not_epoll);
	return check_exit();
}
