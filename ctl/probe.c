// SPDX-License-Identifier: GPL-2.0
/*
 * rpctls probe: the "openssl s_client" of RPC-with-TLS. Sends the AUTH_TLS
 * probe to any RPC server, says what it answered, runs the TLS 1.3
 * handshake, shows version, cipher, ALPN and certificate, and optionally
 * makes NULL calls or an rpcbind DUMP inside TLS. No BPF, no daemon.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "daemon.h"

struct probe_opts {
	char host[256], port[16];
	uint32_t prog, vers, calls;
	const char *ca, *cert, *key, *name;
	bool dump, verify;
	int timeout_ms;
};

static int dial(const struct probe_opts *o)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	int fd = -1, one = 1, r;

	r = getaddrinfo(o->host, o->port, &hints, &res);
	if (r)
		return error("%s: %s", o->host, gai_strerror(r));
	for (ai = res; ai; ai = ai->ai_next) {
		struct timeval tv = { o->timeout_ms / 1000, (o->timeout_ms % 1000) * 1000 };

		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		r = errno;
		close(fd);
		fd = -1;
		errno = r;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return error("cannot connect to %s port %s: %s", o->host, o->port, strerror(errno));
	return fd;
}

/* Read one whole record (plain or through @ssl); body into @buf. */
static int read_record(int fd, SSL *ssl, uint8_t *buf, uint32_t cap, uint32_t *len)
{
	struct rm_parser rm;
	uint8_t tmp[4096];
	uint32_t have = 0;

	rm_init(&rm, cap);
	*len = 0;
	for (;;) {
		int n = ssl ? SSL_read(ssl, tmp, sizeof(tmp)) : (int)recv(fd, tmp, sizeof(tmp), 0);
		uint32_t off = 0;

		if (n <= 0)
			return -1;
		while (off < (uint32_t)n) {
			uint32_t used, rec;
			int r = rm_feed(&rm, tmp + off, (uint32_t)n - off, &used, &rec);

			/* Keep the bytes, marks and all; the body is rebuilt below. */
			if (have + used > cap + 64)
				return -1;
			memcpy(buf + have, tmp + off, used);
			have += used;
			off += used;
			if (r == RM_RECORD) {
				/* Strip the marks: body of fragments in order. */
				uint32_t in = 0, out = 0;

				while (in < have) {
					uint32_t fl = get_be32(buf + in) & RPC_MARK_LEN_MASK;

					memmove(buf + out, buf + in + 4, fl);
					in += 4 + fl;
					out += fl;
				}
				*len = out;
				if (off != (uint32_t)n)
					return -2;	/* more than one record: not expected here */
				return 0;
			}
			if (r != RM_NEED_MORE)
				return -1;
		}
	}
}

static void print_cert(struct jw *w, X509 *cert)
{
	char buf[512];
	GENERAL_NAMES *sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);

	X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof(buf));
	if (w)
		jw_kstr(w, "subject", buf);
	else
		printf("  subject:   %s\n", buf);
	X509_NAME_oneline(X509_get_issuer_name(cert), buf, sizeof(buf));
	if (w)
		jw_kstr(w, "issuer", buf);
	else
		printf("  issuer:    %s\n", buf);
	if (w) {
		jw_key(w, "san");
		jw_arr(w);
	}
	for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans); i++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
		char v[128] = "";

		if (g->type == GEN_DNS)
			snprintf(v, sizeof(v), "DNS:%s", (const char *)ASN1_STRING_get0_data(g->d.dNSName));
		else if (g->type == GEN_IPADD && g->d.iPAddress->length == 4)
			snprintf(v, sizeof(v), "IP:%s", inet_ntop(AF_INET, g->d.iPAddress->data, buf, sizeof(buf)));
		else if (g->type == GEN_IPADD && g->d.iPAddress->length == 16)
			snprintf(v, sizeof(v), "IP:%s", inet_ntop(AF_INET6, g->d.iPAddress->data, buf, sizeof(buf)));
		if (!v[0])
			continue;
		if (w)
			jw_str(w, v);
		else
			printf("  SAN:       %s\n", v);
	}
	if (w)
		jw_arr_end(w);
	GENERAL_NAMES_free(sans);
}

static int call(SSL *ssl, uint32_t xid, uint32_t prog, uint32_t vers, uint32_t proc, uint8_t *reply,
		uint32_t cap, uint32_t *rlen)
{
	uint8_t c[RPC_PROBE_LEN];
	struct rpc_reply_hdr r;

	/* A NULL-credential call: the probe's shape with AUTH_NONE. */
	rpc_build_probe(c, xid, prog, vers);
	put_be32(c + 24, proc);
	put_be32(c + 28, AUTH_NONE);
	if (SSL_write(ssl, c, sizeof(c)) != (int)sizeof(c) || read_record(-1, ssl, reply, cap, rlen))
		return error("call %u.%u.%u: the connection failed: %s", prog, vers, proc, tls_err_string());
	if (rpc_parse_reply(reply, *rlen, &r) != RPC_PARSE_OK || r.xid != xid)
		return error("call %u.%u.%u: malformed reply or wrong xid", prog, vers, proc);
	if (r.reply_stat != RPC_MSG_ACCEPTED || r.stat != RPC_SUCCESS)
		return error("call %u.%u.%u: %s, status %u", prog, vers, proc,
			     r.reply_stat == RPC_MSG_ACCEPTED ? "accepted" : "denied", r.stat);
	return (int)r.hdr_len;
}

/* PMAPPROC_DUMP (RFC 1833, portmapper version 2 procedure 4). */
static int pmap_dump(struct jw *w, SSL *ssl)
{
	static uint8_t rep[1 << 16];
	uint32_t len, off, n = 0;
	int hdr = call(ssl, 0x44554d50, 100000, 2, 4, rep, sizeof(rep), &len);

	if (hdr < 0)
		return -1;
	if (w) {
		jw_key(w, "rpcbind_dump");
		jw_arr(w);
	} else {
		printf("rpcbind mappings (DUMP inside TLS):\n   program vers proto   port\n");
	}
	for (off = (uint32_t)hdr; off + 4 <= len && get_be32(rep + off) == 1 && off + 20 <= len; off += 20, n++) {
		uint32_t prog = get_be32(rep + off + 4), vers = get_be32(rep + off + 8);
		uint32_t prot = get_be32(rep + off + 12), port = get_be32(rep + off + 16);
		const char *ps = prot == 6 ? "tcp" : prot == 17 ? "udp" : "?";

		if (w) {
			jw_obj(w);
			jw_ku64(w, "program", prog);
			jw_ku64(w, "version", vers);
			jw_kstr(w, "protocol", ps);
			jw_ku64(w, "port", port);
			jw_obj_end(w);
		} else {
			printf("%10u %4u %5s %6u\n", prog, vers, ps, port);
		}
	}
	if (w)
		jw_arr_end(w);
	return n ? 0 : error("rpcbind DUMP: empty or malformed reply");
}

static void probe_usage(void)
{
	fprintf(stderr,
		"Usage: rpctls probe HOST[:PORT] [--prog P] [--vers V] [--ca FILE] [--cert FILE --key FILE]\n"
		"                    [--name NAME] [--calls N] [--dump] [--timeout SECS] [-j]\n"
		"\n"
		"Ask an RPC server whether it speaks RPC-with-TLS (RFC 9289): send the AUTH_TLS\n"
		"probe, show its answer, do the TLS 1.3 handshake (ALPN sunrpc) and show the\n"
		"session and the server's certificate. HOST may be a name, an IPv4 address or\n"
		"[IPv6]; PORT defaults to 111.\n"
		"\n"
		"  --prog P, --vers V   program and version in the probe and the calls (100000, 4)\n"
		"  --ca FILE            check the server certificate against this CA; without it the\n"
		"                       certificate is shown but not verified\n"
		"  --cert F --key F     client certificate (mutual TLS)\n"
		"  --name NAME          expected server name (default: HOST); SNI too when a name\n"
		"  --calls N            make N NULL calls inside TLS\n"
		"  --dump               rpcbind DUMP (program 100000 version 2) inside TLS\n"
		"  --timeout SECS       per step (default 10)\n"
		"\n"
		"Exit status: 0 TLS established (and every call answered), 1 otherwise.\n");
}

static int parse_target(const char *arg, struct probe_opts *o)
{
	const char *colon;

	snprintf(o->port, sizeof(o->port), "111");
	if (arg[0] == '[') {
		const char *end = strchr(arg, ']');

		if (!end || (size_t)(end - arg - 1) >= sizeof(o->host))
			return error("bad address '%s': expected [IPv6]:PORT", arg);
		memcpy(o->host, arg + 1, (size_t)(end - arg - 1));
		o->host[end - arg - 1] = 0;
		if (end[1] == ':')
			snprintf(o->port, sizeof(o->port), "%s", end + 2);
		else if (end[1])
			return error("bad address '%s'", arg);
	} else if ((colon = strrchr(arg, ':')) && strchr(arg, ':') == colon) {
		snprintf(o->host, sizeof(o->host), "%.*s", (int)(colon - arg), arg);
		snprintf(o->port, sizeof(o->port), "%s", colon + 1);
	} else {
		snprintf(o->host, sizeof(o->host), "%s", arg);
	}
	{
		uint32_t p;

		if (parse_u32(o->port, &p) || p < 1 || p > 65535)
			return error("bad port '%s'", o->port);
	}
	return 0;
}

int do_probe(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "prog", required_argument, NULL, 'P' }, { "vers", required_argument, NULL, 'V' },
		{ "ca", required_argument, NULL, 'a' },   { "cert", required_argument, NULL, 'c' },
		{ "key", required_argument, NULL, 'k' },  { "name", required_argument, NULL, 'n' },
		{ "calls", required_argument, NULL, 'N' }, { "dump", no_argument, NULL, 'd' },
		{ "timeout", required_argument, NULL, 't' }, { "help", no_argument, NULL, 'h' },
		{}
	};
	struct probe_opts o = { .prog = 100000, .vers = 4, .timeout_ms = 10000 };
	uint8_t pr[RPC_PROBE_LEN], rep[4096];
	struct rpc_reply_hdr r;
	const char *answer;
	struct jw *w = NULL;
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	uint32_t xid, len, t;
	uint64_t t0;
	int c, fd, ret = 1;
	bool tls;

	if (wants_help(argc, argv)) {
		probe_usage();
		return 0;
	}
	optind = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'P':
			if (parse_u32(optarg, &o.prog))
				return error("--prog '%s': expected a number", optarg), 1;
			break;
		case 'V':
			if (parse_u32(optarg, &o.vers))
				return error("--vers '%s': expected a number", optarg), 1;
			break;
		case 'a': o.ca = optarg; break;
		case 'c': o.cert = optarg; break;
		case 'k': o.key = optarg; break;
		case 'n': o.name = optarg; break;
		case 'N':
			if (parse_u32(optarg, &o.calls) || o.calls > 1000000)
				return error("--calls '%s': expected a number", optarg), 1;
			break;
		case 'd': o.dump = true; break;
		case 't':
			if (parse_u32(optarg, &t) || !t || t > 3600)
				return error("--timeout '%s': expected seconds, 1 to 3600", optarg), 1;
			o.timeout_ms = (int)t * 1000;
			break;
		default:
			probe_usage();
			return 1;
		}
	}
	if (optind != argc - 1) {
		probe_usage();
		return error("probe takes one HOST[:PORT]"), 1;
	}
	if (parse_target(argv[optind], &o))
		return 1;
	if (!!o.cert != !!o.key)
		return error("--cert and --key go together"), 1;
	if (json_output) {
		w = jw_new(stdout, pretty_output);
		jw_obj(w);
		jw_kstr(w, "server", o.host);
		jw_kstr(w, "port", o.port);
	}
	fd = dial(&o);
	if (fd < 0)
		goto out;
	RAND_bytes((unsigned char *)&xid, sizeof(xid));
	rpc_build_probe(pr, xid, o.prog, o.vers);
	t0 = now_mono_ns();
	if (send(fd, pr, sizeof(pr), MSG_NOSIGNAL) != (ssize_t)sizeof(pr) || read_record(fd, NULL, rep, sizeof(rep), &len)) {
		error("no answer to the AUTH_TLS probe: %s", errno ? strerror(errno) : "connection closed");
		goto out_fd;
	}
	if (rpc_parse_reply(rep, len, &r) != RPC_PARSE_OK || r.xid != xid) {
		error("the answer to the probe is not an RPC reply to it");
		goto out_fd;
	}
	tls = rpc_reply_is_starttls(rep, len, &r);
	if (tls)
		answer = "STARTTLS: the server offers RPC-with-TLS";
	else if (r.reply_stat == RPC_MSG_DENIED && r.stat == RPC_AUTH_ERROR)
		answer = r.auth_stat == AUTH_BADCRED ? "AUTH_ERROR, AUTH_BADCRED: no RPC-with-TLS here"
		       : r.auth_stat == AUTH_REJECTEDCRED ? "AUTH_ERROR, AUTH_REJECTEDCRED: no RPC-with-TLS here"
							: "AUTH_ERROR: no RPC-with-TLS here";
	else if (r.reply_stat == RPC_MSG_ACCEPTED && r.verf_len == 0)
		answer = "accepted without the STARTTLS verifier: no RPC-with-TLS here";
	else
		answer = "an answer RFC 9289 does not define";
	if (w) {
		jw_kbool(w, "rpc_with_tls", tls);
		jw_kstr(w, "probe_answer", answer);
	} else {
		printf("probe: %s\n", answer);
	}
	if (!tls)
		goto out_fd;

	ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x06" RPCTLS_ALPN, RPCTLS_ALPN_LEN + 1);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (o.ca && SSL_CTX_load_verify_locations(ctx, o.ca, NULL) != 1) {
		error("--ca %s: %s", o.ca, tls_err_string());
		goto out_fd;
	}
	if (o.cert && (SSL_CTX_use_certificate_chain_file(ctx, o.cert) != 1 ||
		       SSL_CTX_use_PrivateKey_file(ctx, o.key, SSL_FILETYPE_PEM) != 1)) {
		error("--cert/--key: %s", tls_err_string());
		goto out_fd;
	}
	SSL_CTX_set_verify(ctx, o.ca ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	{
		const char *name = o.name ? o.name : o.host;
		unsigned char a[16];
		bool is_ip = inet_pton(AF_INET, name, a) == 1 || inet_pton(AF_INET6, name, a) == 1;

		if (is_ip) {
			X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name);
		} else {
			SSL_set_tlsext_host_name(ssl, name);
			SSL_set1_host(ssl, name);
		}
	}
	if (SSL_connect(ssl) != 1) {
		long v = SSL_get_verify_result(ssl);

		error("TLS handshake failed: %s", v != X509_V_OK ? X509_verify_cert_error_string(v) : tls_err_string());
		goto out_ssl;
	}
	{
		const unsigned char *alpn;
		unsigned int alen = 0;
		X509 *cert = SSL_get1_peer_certificate(ssl);
		char took[32], alpn_s[32];
		long v = SSL_get_verify_result(ssl);

		SSL_get0_alpn_selected(ssl, &alpn, &alen);
		snprintf(alpn_s, sizeof(alpn_s), "%.*s", (int)alen, alen ? (const char *)alpn : "");
		fmt_duration(took, sizeof(took), now_mono_ns() - t0);
		if (w) {
			jw_kstr(w, "tls_version", SSL_get_version(ssl));
			jw_kstr(w, "cipher", SSL_get_cipher_name(ssl));
			jw_kstr(w, "alpn", alpn_s);
			jw_kbool(w, "verified", o.ca && v == X509_V_OK);
			jw_ku64(w, "handshake_ns", now_mono_ns() - t0);
			jw_key(w, "certificate");
			jw_obj(w);
			if (cert)
				print_cert(w, cert);
			jw_obj_end(w);
		} else {
			printf("TLS: %s, %s, ALPN %s, probe and handshake %s\n", SSL_get_version(ssl),
			       SSL_get_cipher_name(ssl), alen ? alpn_s : "none (the server sent no ALPN)", took);
			printf("server certificate: %s\n",
			       !o.ca ? "not verified (no --ca)" : v == X509_V_OK ? "verified" : X509_verify_cert_error_string(v));
			if (cert)
				print_cert(NULL, cert);
		}
		X509_free(cert);
	}
	for (uint32_t i = 0; i < o.calls; i++)
		if (call(ssl, xid + 1 + i, o.prog, o.vers, 0, rep, sizeof(rep), &len) < 0)
			goto out_ssl;
	if (o.calls) {
		if (w)
			jw_ku64(w, "null_calls", o.calls);
		else
			printf("%u NULL call%s to program %u version %u answered inside TLS\n", o.calls,
			       o.calls == 1 ? "" : "s", o.prog, o.vers);
	}
	if (o.dump && pmap_dump(w, ssl))
		goto out_ssl;
	SSL_shutdown(ssl);
	ret = 0;
out_ssl:
	SSL_free(ssl);
	SSL_CTX_free(ctx);
out_fd:
	close(fd);
out:
	if (w) {
		jw_kbool(w, "ok", ret == 0);
		jw_obj_end(w);
		jw_free(w);
	}
	return ret;
}
