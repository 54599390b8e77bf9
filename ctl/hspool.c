// SPDX-License-Identifier: GPL-2.0
/*
 * Server handshakes on worker threads. A TLS 1.3 server handshake is mostly
 * public-key work; one event loop would do it for every connection in turn,
 * on one CPU. The loop stays the only owner of the controller's state: it
 * hands a connection to the pool (c->busy), a worker runs one SSL_accept()
 * step on it and hands it back through an eventfd, and the loop carries on
 * from the result (srv_accept_result). While a connection is busy the loop
 * does not touch its SSL: a wake-up is remembered, a free is deferred
 * (cx_free unlinks it at once; the pool frees it when it comes back).
 *
 * A worker needs nothing but the SSL and its socket: the BIO reads and
 * writes with MSG_DONTWAIT, the key-log callback keeps the secrets in the
 * SSL's own ex_data, and OpenSSL's error queue is per thread (the worker
 * turns it into text before the hand-back).
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <openssl/err.h>

#include "daemon.h"

#define POOL_MAX 64

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct cx *todo, **todo_tail;	/* FIFO */
	struct cx *done;		/* LIFO: the loop takes them all */
	int n, efd;
	bool stop;
	pthread_t th[POOL_MAX];
} pool = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .efd = -1 };

/* One SSL_accept() step, its outcome in c->hs: on a worker or in the loop.
 * The error queue is this thread's: read it here. */
void hs_step(struct cx *c)
{
	ERR_clear_error();
	errno = 0;
	c->hs.r = SSL_accept(c->ssl);
	c->hs.e = SSL_get_error(c->ssl, c->hs.r);
	c->hs.err_no = errno;
	c->hs.err = ERR_peek_last_error();
	if (c->hs.err)
		ERR_error_string_n(c->hs.err, c->hs.errstr, sizeof(c->hs.errstr));
	else
		snprintf(c->hs.errstr, sizeof(c->hs.errstr), "no OpenSSL error");
	ERR_clear_error();
}

static void *worker(void *arg)
{
	(void)arg;
	for (;;) {
		struct cx *c;
		uint64_t one = 1;

		pthread_mutex_lock(&pool.mu);
		while (!pool.todo && !pool.stop)
			pthread_cond_wait(&pool.cv, &pool.mu);
		if (pool.stop) {
			pthread_mutex_unlock(&pool.mu);
			return NULL;
		}
		c = pool.todo;
		pool.todo = c->pool_next;
		if (!pool.todo)
			pool.todo_tail = &pool.todo;
		pthread_mutex_unlock(&pool.mu);

		hs_step(c);
		pthread_mutex_lock(&pool.mu);
		c->pool_next = pool.done;
		pool.done = c;
		pthread_mutex_unlock(&pool.mu);
		if (write(pool.efd, &one, sizeof(one)) < 0) {
			/* The counter cannot overflow here; nothing to do. */
		}
	}
}

int hs_pool_start(struct daemon *d, int n)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = EPOLL_POOL };

	if (n < 0) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);

		n = cpus > 0 ? (int)cpus : 1;
	}
	if (n > POOL_MAX)
		n = POOL_MAX;
	pool.todo = NULL;
	pool.todo_tail = &pool.todo;
	if (n == 0)
		return 0;
	pool.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (pool.efd < 0 || epoll_ctl(d->epfd, EPOLL_CTL_ADD, pool.efd, &ev))
		return error("cannot set up the handshake threads: %s", strerror(errno)), -1;
	for (pool.n = 0; pool.n < n; pool.n++)
		if (pthread_create(&pool.th[pool.n], NULL, worker, NULL))
			break;
	if (!pool.n)
		return error("cannot start a handshake thread"), -1;
	log_debug("%d handshake thread(s)", pool.n);
	return 0;
}

bool hs_pool_on(void)
{
	return pool.n > 0;
}

void hs_pool_submit(struct cx *c)
{
	c->busy = true;
	c->pool_next = NULL;
	pthread_mutex_lock(&pool.mu);
	*pool.todo_tail = c;
	pool.todo_tail = &c->pool_next;
	pthread_cond_signal(&pool.cv);
	pthread_mutex_unlock(&pool.mu);
}

/* The loop: take back what the workers finished. */
void hs_pool_collect(struct daemon *d)
{
	struct cx *c, *nx;
	uint64_t cnt;

	if (read(pool.efd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&pool.mu);
	c = pool.done;
	pool.done = NULL;
	pthread_mutex_unlock(&pool.mu);
	for (; c; c = nx) {
		nx = c->pool_next;
		c->busy = false;
		if (c->doomed) {	/* freed while a worker had it */
			cx_release(c);
			continue;
		}
		srv_accept_result(d, c);
		if (c->wake_again && !c->busy && c->state == CX_HANDSHAKE && c->ssl) {
			c->wake_again = false;
			c->retry_ms = 0;
			srv_on_wake(d, c);
		}
	}
}

/* At stop: let the workers finish their step, then end them. What they
 * hand back is dealt with by the loop's last collect. */
void hs_pool_stop(struct daemon *d)
{
	if (!pool.n)
		return;
	pthread_mutex_lock(&pool.mu);
	while (pool.todo) {	/* not started: back to the loop, unchanged */
		struct cx *c = pool.todo;

		pool.todo = c->pool_next;
		c->hs.r = -1;
		c->hs.e = SSL_ERROR_WANT_READ;
		c->pool_next = pool.done;
		pool.done = c;
	}
	pool.todo_tail = &pool.todo;
	pool.stop = true;
	pthread_cond_broadcast(&pool.cv);
	pthread_mutex_unlock(&pool.mu);
	for (int i = 0; i < pool.n; i++)
		pthread_join(pool.th[i], NULL);
	pool.n = 0;
	hs_pool_collect(d);
	close(pool.efd);
	pool.efd = -1;
}
