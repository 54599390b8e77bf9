// SPDX-License-Identifier: GPL-2.0
/*
 * rpctls: RPC-with-TLS (RFC 9289) for unmodified RPC programs.
 * The command line, bpftool style: a table of subcommands, unique prefixes
 * accepted, "help" at every level, -j/--json on every listing.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/libbpf.h>
#include <openssl/opensslv.h>
#include <openssl/crypto.h>

#include "rpctls.h"

bool json_output;
bool pretty_output;
int verbose;

static void usage(void)
{
	fprintf(stderr,
		"Usage: rpctls [OPTIONS] COMMAND [ARGS]\n"
		"\n"
		"RPC-with-TLS (RFC 9289) for unmodified RPC servers and clients: attach rpctls to\n"
		"a cgroup, and the RPC connections of the programs inside speak TLS 1.3 on kernel\n"
		"TLS sockets.\n"
		"\n"
		"Commands:\n"
		"  attach CGROUP [--role server|client|both] [-c FILE]   attach to a cgroup v2\n"
		"  detach CGROUP                                         detach from it\n"
		"  status                      what is attached where, programs, maps, counters\n"
		"  conns                       connections, their phase and TLS parameters\n"
		"  run [-c FILE] [--check]     the controller daemon, in the foreground\n"
		"  probe HOST[:PORT] [...]     ask an RPC server whether it speaks RPC-with-TLS\n"
		"  version                     versions of rpctls, libbpf and OpenSSL\n"
		"  help                        this text; `rpctls COMMAND help` for a command\n"
		"\n"
		"Options:\n"
		"  -j, --json      JSON output (listings)\n"
		"  -p, --pretty    indented JSON (implies -j)\n"
		"  -v, --verbose   more detail; twice: libbpf debug output\n"
		"  -h, --help      this text\n"
		"\n"
		"Commands may be abbreviated to a unique prefix. See rpctls(8) and rpctls.conf(5).\n");
}

bool wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "help") || !strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return true;
	return false;
}

int cmd_select(const struct cmd *cmds, int argc, char **argv, const char *what, void (*help)(void))
{
	const struct cmd *hit = NULL;
	int n = 0;

	if (argc < 1 || !strcmp(argv[0], "help") || !strcmp(argv[0], "-h") || !strcmp(argv[0], "--help")) {
		help();
		return argc < 1 ? 1 : 0;
	}
	for (const struct cmd *c = cmds; c->name; c++) {
		if (!strcmp(argv[0], c->name)) {
			hit = c;
			n = 1;
			break;
		}
		if (is_prefix(argv[0], c->name)) {
			hit = c;
			n++;
		}
	}
	if (n == 1)
		return hit->fn(argc, argv);
	if (n == 0)
		error("unknown %s '%s' (try `rpctls help`)", what, argv[0]);
	else
		error("ambiguous %s '%s'", what, argv[0]);
	return 1;
}

static int do_version(int argc, char **argv)
{
	if (json_output) {
		struct jw *w = jw_new(stdout, pretty_output);
		char lb[32];

		snprintf(lb, sizeof(lb), "%u.%u", libbpf_major_version(), libbpf_minor_version());
		jw_obj(w);
		jw_kstr(w, "version", RPCTLS_VERSION);
		jw_kstr(w, "git", RPCTLS_GITREV);
		jw_ku64(w, "abi", RPCTLS_ABI);
		jw_kstr(w, "libbpf", lb);
		jw_kstr(w, "openssl", OpenSSL_version(OPENSSL_VERSION));
		jw_obj_end(w);
		jw_free(w);
		return 0;
	}
	printf("rpctls %s (%s), BPF ABI %u\nlibbpf %u.%u, %s\n", RPCTLS_VERSION, RPCTLS_GITREV, RPCTLS_ABI,
	       libbpf_major_version(), libbpf_minor_version(), OpenSSL_version(OPENSSL_VERSION));
	return 0;
}

static int do_help(int argc, char **argv)
{
	usage();
	return 0;
}

static const struct cmd commands[] = {
	{ "attach", do_attach },
	{ "detach", do_detach },
	{ "status", do_status },
	{ "conns", do_conns },
	{ "run", do_run },
	{ "probe", do_probe },
	{ "version", do_version },
	{ "help", do_help },
	{ NULL, NULL },
};

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "pretty", no_argument, NULL, 'p' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{}
	};
	int c;

	/* Options before the command only; the command parses its own. */
	while ((c = getopt_long(argc, argv, "+jpvhV", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json_output = true;
			break;
		case 'p':
			json_output = pretty_output = true;
			break;
		case 'v':
			verbose++;
			break;
		case 'h':
			usage();
			return 0;
		case 'V':
			return do_version(0, NULL);
		default:
			usage();
			return 1;
		}
	}
	argc -= optind;
	argv += optind;
	/* -j is also accepted after the command, where listings are asked for. */
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-j") || !strcmp(argv[i], "--json") || !strcmp(argv[i], "-p") ||
		    !strcmp(argv[i], "--pretty")) {
			json_output = true;
			pretty_output |= argv[i][1] == 'p' || !strcmp(argv[i], "--pretty");
			memmove(&argv[i], &argv[i + 1], (size_t)(argc - i) * sizeof(*argv));
			argc--;
			i--;
		}
	}
	if (argc < 1) {
		usage();
		return 1;
	}
	return cmd_select(commands, argc, argv, "command", usage) ? 1 : 0;
}
