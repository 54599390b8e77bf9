// SPDX-License-Identifier: GPL-2.0
/*
 * A connection after its hand-over to kernel TLS. The kernel moves the data;
 * the controller keeps a duplicate of the socket (where the kernel lets it
 * watch, see guard.bpf.c) for three things kTLS does not do by itself:
 *
 *  - close_notify before the FIN when the application closes: the duplicate
 *    keeps the socket open past the application's close(); close_watch tells
 *    us, the socket iterator confirms that no descriptor of the application's
 *    is left, we send the alert and close ours, and the FIN follows.
 *  - records that are not data (an alert, a KeyUpdate, a stray ticket): the
 *    application's read() gets EIO from kTLS and rx_watch tells us; we take
 *    the records out. A close_notify gets ours back and a shutdown, so the
 *    application's next read() is the end of file; a fatal alert or a
 *    KeyUpdate (6.1's kTLS cannot take new receive keys) aborts the
 *    connection, with a logged reason.
 *  - a restarted controller adopts the kTLS connections it finds, and closes
 *    those a stopped one left in the middle of a handshake.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "daemon.h"
#include "ktls.h"

bool held_supported(void)
{
	return access(RPCTLS_PIN_LINKS "/close_watch", F_OK) == 0;
}

static void set_flag(struct daemon *d, struct cx *c, uint32_t flag, bool on)
{
	struct conn info;

	if (bpf_map_lookup_elem(d->fds.conns, &c->cookie, &info))
		return;
	info.flags = on ? info.flags | flag : info.flags & ~flag;
	bpf_map_update_elem(d->fds.conns, &c->cookie, &info, BPF_EXIST);
}

void ktls_hold(struct daemon *d, struct cx *c)
{
	if (c->ssl && !c->peer_cert)
		c->peer_cert = SSL_get1_peer_certificate(c->ssl);
	if (!held_supported() || c->fd < 0) {
		if (c->fd >= 0)
			close(c->fd);
		c->fd = -1;
		return;
	}
	c->held = true;
	d->n_held++;
	set_flag(d, c, CONN_F_HELD, true);
}

/* The application is done with the socket: close_notify, then our close,
 * which is the last reference: the FIN goes out behind the alert. */
static void finish_held(struct daemon *d, struct cx *c, const char *why)
{
	if (c->notified) {
		log_info("%s: %s: connection closed", c->name, why);
	} else if (ktls_send_alert(c->fd, 1, 0)) {
		log_info("%s: %s: connection closed (close_notify not sent: %s)", c->name, why, strerror(errno));
	} else {
		log_info("%s: %s: close_notify sent, connection closed", c->name, why);
	}
	cx_free(d, c);
}

static bool app_holds(const struct sockfd_rec *recs, size_t n, uint64_t cookie)
{
	for (size_t i = 0; i < n; i++)
		if (recs[i].cookie == cookie && recs[i].tgid != (uint32_t)getpid())
			return true;
	return false;
}

/* Which held sockets has the application let go of? */
void held_scan(struct daemon *d)
{
	struct sockfd_rec *recs;
	size_t n;

	d->held_check = false;
	d->last_held_scan = now_mono_ns();
	if (!d->n_held || sockfd_scan(d->fds.prog_iter, &recs, &n))
		return;
	for (int i = 0; i < 4096; i++) {
		struct cx *c = d->tab[i], *nx;

		for (; c; c = nx) {
			nx = c->next;
			if (c->held && !app_holds(recs, n, c->cookie))
				finish_held(d, c, "the application closed it");
		}
	}
	free(recs);
}

void on_app_close(struct daemon *d, struct cx *c)
{
	if (c && c->held)
		d->held_check = true;	/* scanned once per loop, for every close */
}

/* The application met a record that is not data. */
void on_rx_record(struct daemon *d, struct cx *c)
{
	uint8_t rec[16640], type;
	int n;

	if (!c || !c->held)
		return;
	for (int i = 0; i < 64; i++) {
		n = ktls_next_record(c->fd, &type, rec, sizeof(rec), true);
		if (n < 0 || type == 23)
			return;	/* data (the application's) or nothing */
		n = ktls_next_record(c->fd, &type, rec, sizeof(rec), false);
		if (n < 0)
			return;
		if (type == 21 && n >= 2 && rec[1] == 0) {
			/* close_notify: answer it, and make the rest an end of file. */
			ktls_send_alert(c->fd, 1, 0);
			c->notified = true;
			shutdown(c->fd, SHUT_RDWR);
			log_info("%s: the peer sent close_notify: answered, the application reads end of file", c->name);
			d->held_check = true;
			return;
		}
		if (type == 21) {
			log_warn("%s: refused (%s): the peer sent alert %u (level %u); connection aborted", c->name,
				 reason_names[RS_PEER_ALERT], n >= 2 ? rec[1] : 0, n >= 1 ? rec[0] : 0);
			cx_close(d, c);
			return;
		}
		if (type == 22 && n >= 1 && rec[0] == 24) {
			log_warn("%s: refused (%s): the peer sent a KeyUpdate; kernel TLS here cannot take new receive "
				 "keys, connection aborted", c->name, reason_names[RS_KEYUPDATE]);
			cx_close(d, c);
			return;
		}
		if (type == 22 && n >= 1 && rec[0] == 4) {
			log_debug("%s: a session ticket after the hand-over, dropped", c->name);
			continue;
		}
		log_warn("%s: refused (%s): record type %u after the hand-over; connection aborted", c->name,
			 reason_names[RS_HANDOVER], type);
		cx_close(d, c);
		return;
	}
}

/*
 * At start: what a controller before us left. kTLS connections are adopted;
 * connections a stopped controller was in the middle of are closed cleanly
 * (their state went with it); server connections still blind, never seen by
 * it, are served.
 */
void adopt_existing(struct daemon *d)
{
	__u64 key, next;
	void *prev = NULL;
	struct conn info;
	int adopted = 0, closed = 0, kicked = 0;

	while (bpf_map_get_next_key(d->fds.conns, prev, &next) == 0) {
		struct cx *c;

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(d->fds.conns, &key, &info))
			continue;
		switch (info.phase) {
		case PH_KTLS:
			if (!held_supported())
				continue;
			c = cx_add(d, key);
			if (!c)
				continue;
			c->adopt = true;
			c->state = CX_LOOKUP;
			c->deadline = now_mono_ns() + 5000000000ull;
			adopted++;
			break;
		case PH_AWAIT_PROBE:
			if (!(info.flags & CONN_F_BLIND))
				continue;
			c = cx_add(d, key);
			if (c) {
				srv_on_new(d, c);
				kicked++;
			}
			break;
		case PH_PROBE:
		case PH_HANDSHAKE:
		case PH_USERSPACE_TLS:
		case PH_HOLD:
		case PH_REFUSED:
			c = cx_add(d, key);
			if (!c)
				continue;
			log_warn("%s: refused (%s): left in the %s phase by a controller that stopped", c->name,
				 reason_names[RS_NO_CONTROLLER], phase_names[info.phase]);
			cx_close(d, c);
			closed++;
			break;
		default:
			break;
		}
	}
	d->lookup_pending |= adopted || closed || kicked;
	if (adopted || closed || kicked)
		log_info("found %d kTLS connection(s) to adopt, %d to close, %d waiting to be served",
			 adopted, closed, kicked);
}

void on_adopt(struct daemon *d, struct cx *c)
{
	c->adopt = false;
	c->state = CX_DONE;
	c->deadline = 0;
	ktls_hold(d, c);
	if (c->held)
		log_debug("%s: adopted, on kernel TLS, pid %d (%s)", c->name, c->pid, c->comm);
	else
		cx_free(d, c);
}

/* ---- SIGHUP ---- */

/* Is @cert in the CRL file @path? */
static bool revoked_in(const char *path, X509 *cert)
{
	X509_CRL *crl;
	X509_REVOKED *rev;
	bool hit = false;
	BIO *b;

	if (!path[0] || !cert)
		return false;
	b = BIO_new_file(path, "r");
	if (!b)
		return false;
	while ((crl = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL))) {
		if (!X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_issuer_name(cert)) &&
		    X509_CRL_get0_by_cert(crl, &rev, cert) == 1)
			hit = true;
		X509_CRL_free(crl);
	}
	ERR_clear_error();
	BIO_free(b);
	return hit;
}

/*
 * Read the configuration again: certificates, keys, CAs, CRLs, ports and
 * destinations. Handshakes in progress finish with what they started with;
 * connections on kTLS go on, but for those whose peer certificate a new CRL
 * revokes: they are closed. A bad configuration is reported and the running
 * one kept.
 */
void reload(struct daemon *d)
{
	struct conf nc;
	SSL_CTX *srv = NULL, *cli = NULL;
	int closed = 0;

	conf_defaults(&nc);
	if (conf_load(&nc, d->conf.path, false) ||
	    (nc.srv_cert.path[0] && !(srv = tls_server_ctx(&nc))) ||
	    (nc.cli_ca.path[0] && !(cli = tls_client_ctx(&nc)))) {
		SSL_CTX_free(srv);
		log_err("SIGHUP: %s has an error (above); the running configuration stays", d->conf.path);
		return;
	}
	if (conf_apply_maps(&nc, &d->fds)) {
		SSL_CTX_free(srv);
		SSL_CTX_free(cli);
		log_err("SIGHUP: cannot update the BPF maps; the running configuration stays");
		return;
	}
	SSL_CTX_free(d->srv_ctx);
	SSL_CTX_free(d->cli_ctx);
	d->srv_ctx = srv;
	d->cli_ctx = cli;
	d->conf = nc;
	log_level = verbose ? LOG_LVL_DEBUG : d->conf.log_level;
	for (int i = 0; i < 4096; i++) {
		struct cx *c = d->tab[i], *nx;

		for (; c; c = nx) {
			nx = c->next;
			if (!c->peer_cert ||
			    !revoked_in(c->role == RPCTLS_ROLE_SERVER ? d->conf.srv_crl.path : d->conf.cli_crl.path,
					c->peer_cert))
				continue;
			cx_refuse(d, c, RS_REVOKED, "the new CRL revokes the peer's certificate");
			closed++;
		}
	}
	log_info("SIGHUP: %s reloaded: certificates, CAs and CRLs; %d connection(s) closed for a revoked "
		 "certificate", d->conf.path, closed);
}
