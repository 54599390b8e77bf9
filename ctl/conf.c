// SPDX-License-Identifier: GPL-2.0
/*
 * The configuration file, rpctls.conf(5): sections [global], [server],
 * [client] and [destination ADDR[/PREFIX]], lines "key = value", '#'
 * comments. Every error is reported as "FILE:LINE: what is wrong".
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "rpctls.h"

/* The TLS 1.3 suites Linux kTLS can carry. */
static const char *const ktls_suites[] = {
	"TLS_AES_128_GCM_SHA256",
	"TLS_AES_256_GCM_SHA384",
	"TLS_CHACHA20_POLY1305_SHA256",
};

void conf_defaults(struct conf *c)
{
	memset(c, 0, sizeof(*c));
	c->log_level = LOG_LVL_INFO;
	c->hs_threads = -1;		/* auto: one per CPU */
	c->srv_policy = RPCTLS_POLICY_OPTIONAL;
	c->cli_policy = RPCTLS_POLICY_REQUIRED;
	c->client_cert = CC_NONE;
	snprintf(c->ciphersuites, sizeof(c->ciphersuites), "%s:%s:%s", ktls_suites[0], ktls_suites[1],
		 ktls_suites[2]);
	c->hs_timeout_ms = 10000;
	c->queue_timeout_ms = 30000;
	c->hold_max = 4u << 20;
	c->hold_slots = 1024;
	c->max_handshakes = 64;
}

struct ctx {
	struct conf *c;
	const char *file;
	int line;
	enum { SEC_NONE, SEC_GLOBAL, SEC_SERVER, SEC_CLIENT, SEC_DEST } sec;
	struct conf_dest *dest;
	char seen[64][40];	/* keys set in the current section */
	int nseen;
};

static int bad(struct ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(struct ctx *x, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s:%d: %s\n", x->file, x->line, buf);
	return -1;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = 0;
	return s;
}

static int parse_policy(struct ctx *x, const char *v, uint8_t *out)
{
	if (!strcmp(v, "optional"))
		*out = RPCTLS_POLICY_OPTIONAL;
	else if (!strcmp(v, "required"))
		*out = RPCTLS_POLICY_REQUIRED;
	else
		return bad(x, "policy '%s': expected 'optional' or 'required'", v);
	return 0;
}

static int parse_bool(struct ctx *x, const char *k, const char *v, bool *out)
{
	if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "on") || !strcmp(v, "1"))
		*out = true;
	else if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "off") || !strcmp(v, "0"))
		*out = false;
	else
		return bad(x, "%s '%s': expected yes or no", k, v);
	return 0;
}

/* "10", "10s", "500ms": milliseconds, 1 ms to 1 hour. */
static int parse_duration(struct ctx *x, const char *k, const char *v, uint32_t *ms)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(v, &end);
	if (errno || end == v || d <= 0)
		return bad(x, "%s '%s': expected a positive duration such as 10s or 500ms", k, v);
	if (!*end || !strcmp(end, "s"))
		d *= 1000;
	else if (strcmp(end, "ms"))
		return bad(x, "%s '%s': unknown unit '%s' (s or ms)", k, v, end);
	if (d < 1 || d > 3600000)
		return bad(x, "%s '%s': must be between 1ms and 1 hour", k, v);
	*ms = (uint32_t)d;
	return 0;
}

static int parse_uint(struct ctx *x, const char *k, const char *v, uint32_t lo, uint32_t hi, uint32_t *out)
{
	if (parse_u32(v, out) || *out < lo || *out > hi)
		return bad(x, "%s '%s': expected a whole number from %u to %u", k, v, lo, hi);
	return 0;
}

/* "111, 2049 20048": at most @max ports. */
static int parse_ports(struct ctx *x, char *v, uint16_t *ports, int max, int *n)
{
	char *tok, *save = NULL;

	*n = 0;
	for (tok = strtok_r(v, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		uint32_t p;

		if (parse_u32(tok, &p) || p < 1 || p > 65535)
			return bad(x, "port '%s': expected 1 to 65535", tok);
		for (int i = 0; i < *n; i++)
			if (ports[i] == p)
				return bad(x, "port %u listed twice", p);
		if (*n == max)
			return bad(x, "more than %d ports", max);
		ports[(*n)++] = (uint16_t)p;
	}
	if (!*n)
		return bad(x, "ports: empty list");
	return 0;
}

static int parse_path(struct ctx *x, const char *k, const char *v, struct conf_path *out, bool dir_ok)
{
	struct stat st;

	if (strlen(v) >= sizeof(out->path))
		return bad(x, "%s: path too long", k);
	if (stat(v, &st))
		return bad(x, "%s %s: %s", k, v, strerror(errno));
	if (S_ISDIR(st.st_mode) && !dir_ok)
		return bad(x, "%s %s: is a directory, a file is expected", k, v);
	if (access(v, R_OK))
		return bad(x, "%s %s: %s", k, v, strerror(errno));
	snprintf(out->path, sizeof(out->path), "%s", v);
	out->line = x->line;
	return 0;
}

static int parse_suites(struct ctx *x, const char *v)
{
	char buf[sizeof(x->c->ciphersuites)], *tok, *save = NULL;

	if (strlen(v) >= sizeof(buf))
		return bad(x, "cipher_suites: too long");
	snprintf(buf, sizeof(buf), "%s", v);
	for (tok = strtok_r(buf, ":, \t", &save); tok; tok = strtok_r(NULL, ":, \t", &save)) {
		bool ok = false;

		for (size_t i = 0; i < ARRAY_SIZE(ktls_suites); i++)
			ok |= !strcmp(tok, ktls_suites[i]);
		if (!ok)
			return bad(x, "cipher suite '%s': not a TLS 1.3 suite kernel TLS can carry "
				      "(TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256)",
				   tok);
	}
	/* OpenSSL wants them separated by colons. */
	snprintf(x->c->ciphersuites, sizeof(x->c->ciphersuites), "%s", v);
	for (char *p = x->c->ciphersuites; *p; p++)
		if (*p == ',' || *p == ' ' || *p == '\t')
			*p = ':';
	return 0;
}

/* "192.0.2.1", "192.0.2.0/24", "2001:db8::/32" into the 128-bit form. */
static int parse_cidr(struct ctx *x, const char *v, struct conf_dest *d)
{
	char buf[128], *slash;
	uint32_t plen = 0;
	bool v4;

	if (strlen(v) >= sizeof(buf))
		return bad(x, "destination '%s': too long", v);
	snprintf(buf, sizeof(buf), "%s", v);
	slash = strchr(buf, '/');
	if (slash)
		*slash++ = 0;
	memset(d->addr, 0, sizeof(d->addr));
	if (inet_pton(AF_INET, buf, d->addr + 12) == 1) {
		d->addr[10] = d->addr[11] = 0xff;
		v4 = true;
	} else if (inet_pton(AF_INET6, buf, d->addr) == 1) {
		v4 = false;
	} else {
		return bad(x, "destination '%s': not an IPv4 or IPv6 address", v);
	}
	if (slash && (parse_u32(slash, &plen) || plen > (v4 ? 32u : 128u)))
		return bad(x, "destination '%s': prefix length must be 0 to %d", v, v4 ? 32 : 128);
	if (!slash)
		plen = v4 ? 32 : 128;
	d->prefixlen = (uint8_t)(v4 ? 96 + plen : plen);
	/* Clear the host bits, so that equal networks compare equal. */
	for (int bit = d->prefixlen; bit < 128; bit++)
		d->addr[bit / 8] &= (uint8_t)~(0x80 >> (bit % 8));
	return 0;
}

static int section(struct ctx *x, char *s)
{
	char *arg;

	x->nseen = 0;
	x->dest = NULL;
	arg = strpbrk(s, " \t");
	if (arg)
		*arg++ = 0;
	if (!strcmp(s, "global") && !arg)
		x->sec = SEC_GLOBAL;
	else if (!strcmp(s, "server") && !arg)
		x->sec = SEC_SERVER;
	else if (!strcmp(s, "client") && !arg)
		x->sec = SEC_CLIENT;
	else if (!strcmp(s, "destination")) {
		struct conf_dest d = { .policy = RPCTLS_POLICY_NONE, .prog = 100000, .vers = 4, .line = x->line };

		if (!arg || !*(arg = trim(arg)))
			return bad(x, "[destination] needs an address: [destination 192.0.2.1] or [destination 2001:db8::/32]");
		if (parse_cidr(x, arg, &d))
			return -1;
		for (int i = 0; i < x->c->n_dests; i++)
			if (x->c->dests[i].prefixlen == d.prefixlen && !memcmp(x->c->dests[i].addr, d.addr, 16))
				return bad(x, "destination %s already given at line %d", arg, x->c->dests[i].line);
		if (x->c->n_dests == CONF_MAX_DESTS)
			return bad(x, "more than %d destinations", CONF_MAX_DESTS);
		x->c->dests[x->c->n_dests] = d;
		x->dest = &x->c->dests[x->c->n_dests++];
		x->sec = SEC_DEST;
	} else
		return bad(x, "unknown section [%s%s%s]: expected [global], [server], [client] or [destination ADDR]",
			   s, arg ? " " : "", arg ? arg : "");
	return 0;
}

static int keyval(struct ctx *x, const char *k, char *v)
{
	struct conf *c = x->c;

	for (int i = 0; i < x->nseen; i++)
		if (!strcmp(x->seen[i], k))
			return bad(x, "'%s' set twice in this section", k);
	if (x->nseen < (int)ARRAY_SIZE(x->seen))
		snprintf(x->seen[x->nseen++], sizeof(x->seen[0]), "%s", k);
	if (!*v)
		return bad(x, "'%s' has no value", k);

	switch (x->sec) {
	case SEC_NONE:
		return bad(x, "'%s' outside a section: start with [server], [client] or [global]", k);
	case SEC_GLOBAL:
		if (!strcmp(k, "log_level")) {
			static const char *const lv[] = { "error", "warning", "info", "debug" };

			for (int i = 0; i < 4; i++)
				if (!strcmp(v, lv[i])) {
					c->log_level = i;
					return 0;
				}
			return bad(x, "log_level '%s': expected error, warning, info or debug", v);
		}
		if (!strcmp(k, "handshake_threads")) {
			uint32_t n;

			if (!strcmp(v, "auto")) {
				c->hs_threads = -1;
				return 0;
			}
			if (parse_uint(x, "handshake_threads (or auto)", v, 0, 64, &n))
				return -1;
			c->hs_threads = (int)n;
			return 0;
		}
		break;
	case SEC_SERVER:
		if (!strcmp(k, "ports"))
			return parse_ports(x, v, c->srv_ports, CONF_MAX_PORTS, &c->n_srv_ports);
		if (!strcmp(k, "policy"))
			return parse_policy(x, v, &c->srv_policy);
		if (!strcmp(k, "certificate"))
			return parse_path(x, k, v, &c->srv_cert, false);
		if (!strcmp(k, "key"))
			return parse_path(x, k, v, &c->srv_key, false);
		if (!strcmp(k, "ca"))
			return parse_path(x, k, v, &c->srv_ca, true);
		if (!strcmp(k, "crl"))
			return parse_path(x, k, v, &c->srv_crl, false);
		if (!strcmp(k, "client_certificate")) {
			if (!strcmp(v, "none") || !strcmp(v, "ignore"))
				c->client_cert = CC_NONE;
			else if (!strcmp(v, "request"))
				c->client_cert = CC_REQUEST;
			else if (!strcmp(v, "require"))
				c->client_cert = CC_REQUIRE;
			else
				return bad(x, "client_certificate '%s': expected none, request or require", v);
			return 0;
		}
		if (!strcmp(k, "cipher_suites"))
			return parse_suites(x, v);
		if (!strcmp(k, "handshake_timeout"))
			return parse_duration(x, k, v, &c->hs_timeout_ms);
		if (!strcmp(k, "queue_timeout"))
			return parse_duration(x, k, v, &c->queue_timeout_ms);
		if (!strcmp(k, "max_handshakes"))
			return parse_uint(x, k, v, 1, 65536, &c->max_handshakes);
		break;
	case SEC_CLIENT:
		if (!strcmp(k, "ca"))
			return parse_path(x, k, v, &c->cli_ca, true);
		if (!strcmp(k, "certificate"))
			return parse_path(x, k, v, &c->cli_cert, false);
		if (!strcmp(k, "key"))
			return parse_path(x, k, v, &c->cli_key, false);
		if (!strcmp(k, "crl"))
			return parse_path(x, k, v, &c->cli_crl, false);
		if (!strcmp(k, "policy"))
			return parse_policy(x, v, &c->cli_policy);
		if (!strcmp(k, "require_server_alpn"))
			return parse_bool(x, k, v, &c->require_server_alpn);
		if (!strcmp(k, "max_held_bytes"))
			return parse_uint(x, k, v, 4096, 1u << 30, &c->hold_max);
		if (!strcmp(k, "max_connections"))
			return parse_uint(x, k, v, 1, RPCTLS_MAX_SLOTS, &c->hold_slots);
		break;
	case SEC_DEST: {
		struct conf_dest *d = x->dest;
		int n;

		if (!strcmp(k, "ports")) {
			if (parse_ports(x, v, d->ports, DEST_MAX_PORTS, &n))
				return -1;
			d->nports = (uint8_t)n;
			return 0;
		}
		if (!strcmp(k, "policy"))
			return parse_policy(x, v, &d->policy);
		if (!strcmp(k, "program"))
			return parse_uint(x, k, v, 1, 0xffffffffu, &d->prog);
		if (!strcmp(k, "version"))
			return parse_uint(x, k, v, 0, 0xffffffffu, &d->vers);
		if (!strcmp(k, "name")) {
			if (strlen(v) >= sizeof(d->name))
				return bad(x, "name: too long");
			for (const char *p = v; *p; p++)
				if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' && *p != ':')
					return bad(x, "name '%s': not a host name or address", v);
			snprintf(d->name, sizeof(d->name), "%s", v);
			return 0;
		}
		break;
	}
	}
	return bad(x, "unknown key '%s' in this section (see rpctls.conf(5))", k);
}

int conf_load(struct conf *c, const char *path, bool missing_ok)
{
	struct ctx x = { .c = c, .file = path };
	char line[1024];
	FILE *f;
	int ret = 0;

	f = fopen(path, "re");
	if (!f) {
		if (missing_ok && errno == ENOENT)
			return 0;
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	snprintf(c->path, sizeof(c->path), "%s", path);
	while (fgets(line, sizeof(line), f)) {
		char *s, *eq, *hash;

		x.line++;
		if (!strchr(line, '\n') && !feof(f)) {
			ret = bad(&x, "line too long");
			break;
		}
		hash = strchr(line, '#');
		if (hash)
			*hash = 0;
		s = trim(line);
		if (!*s)
			continue;
		if (*s == '[') {
			char *end = strchr(s, ']');

			if (!end || *trim(end + 1)) {
				ret = bad(&x, "malformed section header: expected [name]");
				break;
			}
			*end = 0;
			if ((ret = section(&x, trim(s + 1))))
				break;
			continue;
		}
		eq = strchr(s, '=');
		if (!eq) {
			ret = bad(&x, "expected 'key = value' or '[section]'");
			break;
		}
		*eq = 0;
		if ((ret = keyval(&x, trim(s), trim(eq + 1))))
			break;
	}
	fclose(f);
	if (ret)
		return -1;

	/* Whole-file checks. */
	x.line = c->srv_key.line ? c->srv_key.line : c->srv_cert.line;
	if (!!c->srv_cert.path[0] != !!c->srv_key.path[0])
		return bad(&x, "[server] needs both certificate and key, or neither");
	x.line = c->cli_key.line ? c->cli_key.line : c->cli_cert.line;
	if (!!c->cli_cert.path[0] != !!c->cli_key.path[0])
		return bad(&x, "[client] needs both certificate and key, or neither");
	for (int i = 0; i < c->n_dests; i++) {
		if (c->dests[i].policy == RPCTLS_POLICY_NONE)
			c->dests[i].policy = c->cli_policy;
	}
	if (c->n_dests && !c->cli_ca.path[0]) {
		x.line = c->dests[0].line;
		return bad(&x, "destinations need [client] ca = FILE to check server certificates");
	}
	if (c->client_cert != CC_NONE && !c->srv_ca.path[0]) {
		x.line = 0;
		return bad(&x, "[server] client_certificate needs ca = FILE or DIR");
	}
	return 0;
}

static bool dest_in_conf(const struct conf *c, const struct dest_key *k)
{
	for (int i = 0; i < c->n_dests; i++)
		if (c->dests[i].prefixlen == k->prefixlen && !memcmp(c->dests[i].addr, k->addr, 16))
			return true;
	return false;
}

/*
 * Make the policy maps say what @c says. New entries go in first, stale ones
 * go after, so that a connection established meanwhile never finds a port
 * or destination that is protected in both configurations unprotected.
 */
int conf_apply_maps(const struct conf *c, const struct rpctls_fds *fds)
{
	__u16 pk, pnext;
	struct dest_key dk, dnext;
	void *prev;

	for (int i = 0; i < c->n_srv_ports; i++) {
		struct port_policy pp = { .policy = c->srv_policy };

		if (bpf_map_update_elem(fds->srv_ports, &c->srv_ports[i], &pp, BPF_ANY))
			return error("cannot set the policy of port %u: %s", c->srv_ports[i], strerror(errno));
	}
	for (int i = 0; i < c->n_dests; i++) {
		const struct conf_dest *d = &c->dests[i];
		struct dest_policy dp = { .policy = d->policy, .nports = d->nports, .dest_id = (__u32)i };

		dk.prefixlen = d->prefixlen;
		memcpy(dk.addr, d->addr, 16);
		for (int p = 0; p < d->nports; p++) {
			dp.ports[p] = d->ports[p];
			dp.port_policy[p] = d->policy;
		}
		if (bpf_map_update_elem(fds->cli_dests, &dk, &dp, BPF_ANY))
			return error("cannot set the policy of destination %d: %s", i, strerror(errno));
	}
	prev = NULL;
	while (bpf_map_get_next_key(fds->srv_ports, prev, &pnext) == 0) {
		bool keep = false;

		pk = pnext;
		for (int i = 0; i < c->n_srv_ports; i++)
			keep |= c->srv_ports[i] == pk;
		if (keep || bpf_map_delete_elem(fds->srv_ports, &pk))
			prev = &pk;
	}
	prev = NULL;
	while (bpf_map_get_next_key(fds->cli_dests, prev, &dnext) == 0) {
		dk = dnext;
		if (dest_in_conf(c, &dk) || bpf_map_delete_elem(fds->cli_dests, &dk))
			prev = &dk;
	}
	return 0;
}
